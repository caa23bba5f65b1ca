// The outermost middleware: the client's address (through trusted proxies), a request id (the client's X-Request-Id when sane, else a fresh
// one) on the logger and the response, one structured log line per request, and the request
// metrics by route template (never the raw path, which would explode label cardinality).
import Foundation
import HTTPTypes
import Hummingbird
import Logging

struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = StockdropContext
    let metrics: ServerMetrics
    let proxies: TrustedProxies

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = Self.requestID(from: request.headers[.xRequestID])
        var context = context
        context.logger[metadataKey: "request_id"] = .string(requestID)
        if !proxies.ranges.isEmpty {
            context.clientAddress = proxies.client(peer: context.clientAddress, forwardedFor: request.headers[values: .xForwardedFor].joined(separator: ","))
        }
        var response = try await next(request, context)
        let elapsed = ContinuousClock.now - started
        response.headers[.xRequestID] = requestID
        // Unmatched paths share one label: raw paths would let any client mint new series.
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        metrics.recordRequest(route: route, method: request.method.rawValue, status: response.status.code, nanoseconds: elapsed.nanoseconds)
        if context.logger.logLevel <= .info {
            context.logger.info("request", metadata: [
                "method": .string(request.method.rawValue), "path": .string(request.uri.path), "route": .string(route),
                "status": .stringConvertible(response.status.code), "duration_ms": .string(String(format: "%.3f", elapsed.milliseconds)),
                "client": .string(context.clientAddress),
            ])
        }
        return response
    }

    static func requestID(from header: String?) -> String {
        if let header, (1...64).contains(header.utf8.count), header.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) }) {
            return header
        }
        return String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }
}
