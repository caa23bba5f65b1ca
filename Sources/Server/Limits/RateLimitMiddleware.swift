// 429 with Retry-After once a key's bucket is empty. One middleware serves both limits: by
// client address (before authentication, so floods of bad tokens are limited too) and by user.
import Foundation
import HTTPTypes
import Hummingbird

struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = StockdropContext
    let limiter: RateLimiter
    let scope: String
    let key: @Sendable (Request, StockdropContext) -> String?

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        if let key = key(request, context) { try limiter.enforce(key, scope: scope) }
        return try await next(request, context)
    }
}

extension RateLimiter {
    /// 429 `rate_limited` with Retry-After when `key`'s bucket is empty; `scope` names the key
    /// in the message. Requests (through the middleware) and socket upgrades share it.
    func enforce(_ key: String, scope: String) throws {
        if let wait = admit(key) {
            throw APIError(
                .rateLimited, "more than \(String(format: "%g", limit.requestsPerSecond)) requests/s per \(scope)",
                retryAfterSeconds: wait)
        }
    }
}
