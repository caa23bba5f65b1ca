// Request bodies are bounded before any route runs, not only where a route decodes one:
// otherwise a route that ignores its body (a reserve, a cancel) would have the server drain
// gigabytes for it. A declared length past the limit is refused at once; a chunked body is
// read up to the limit (and refused past it), so what reaches a route is at most that long.
// The refusal shuts the connection's input: the answer is written, the rest of the body is
// never read, and the connection then closes (Hummingbird would otherwise drain it to the end
// to reach the next request).
import HTTPTypes
import Hummingbird
import NIOCore

struct BodyLimitMiddleware: RouterMiddleware {
    typealias Context = StockdropContext

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let limit = context.maxUploadSize
        if let declared = request.headers[.contentLength], Int(declared).map({ $0 > limit }) ?? true {
            throw refusal(limit, context)
        }
        var request = request
        if request.headers[.contentLength] == nil, request.headers[.transferEncoding] != nil {
            do {
                _ = try await request.collectBody(upTo: limit)
            } catch is NIOTooManyBytesError {
                throw refusal(limit, context)
            }
        }
        return try await next(request, context)
    }

    private func refusal(_ limit: Int, _ context: Context) -> APIError {
        context.channel.close(mode: .input, promise: nil)
        return APIError(.payloadTooLarge, "the body is larger than \(limit) bytes")
    }
}
