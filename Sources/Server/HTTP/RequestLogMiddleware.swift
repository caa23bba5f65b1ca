// The outermost middleware: the client's address (through trusted proxies), a request id (the client's X-Request-Id when sane, else a fresh
// one) on the logger and the response, one structured log line per request, and the request
// metrics by route template (never the raw path, which would explode label cardinality).
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = StockdropContext
    let metrics: ServerMetrics
    let proxies: TrustedProxies
    /// The share of successful requests logged (1: all, the default); errors always are.
    var successSample = 1.0
    /// With a sink (`stockdrop serve`), the request line is written straight into it, in the
    /// handler's format: building a metadata dictionary per request and rendering it again
    /// cost a fifth of what the server answered at the default level (GET /health 33,119
    /// against 43,819 req/s at warning).
    var sink: LogSink? = nil
    var instance = ""

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        // From when the server received the request (ShedHandler's stamp), so the waits for the
        // event loop and for a task to take it up count as the server's; without it, from here.
        let started = Self.readAt(request.headers[.stockdropReadAt], now: NIODeadline.now())
        var context = context
        // Hummingbird already tags the logger with its own id (`hb.request.id`); a client's id
        // replaces it only when the client sent one, since every metadata change costs the
        // log handler a re-render (measured: 4% of the server's CPU at 15k req/s).
        let requestID: String
        if let clientID = Self.clientRequestID(request.headers[.xRequestID]) {
            requestID = clientID
            context.logger[metadataKey: "hb.request.id"] = .string(clientID)
        } else {
            requestID = context.id
        }
        if !proxies.ranges.isEmpty {
            context.clientAddress = proxies.client(
                peer: context.clientAddress,
                forwardedFor: request.headers[values: .xForwardedFor].joined(separator: ","))
        }
        var response = try await next(request, context)
        let elapsed = Duration.nanoseconds((NIODeadline.now() - started).nanoseconds)
        response.headers[.xRequestID] = requestID
        // Unmatched paths share one label: raw paths would let any client mint new series.
        let route = context.endpointPath.flatMap { $0 == "NotFound" ? nil : $0 } ?? "unmatched"
        let method = context.clientMethod(of: request).rawValue
        metrics.recordRequest(
            route: route, method: method, status: response.status.code,
            nanoseconds: elapsed.nanoseconds)
        let status = response.status.code
        if context.logger.logLevel <= .info,
            BufferedLogHandler.isErrorStatus(status) || successSample >= 1 || Double.random(in: 0..<1) < successSample
        {
            if let sink {
                sink.append(
                    Self.line(
                        timestamp: sink.timestampNow(), client: context.clientAddress,
                        duration: Self.milliseconds(elapsed), requestID: requestID, instance: instance,
                        method: method, path: request.uri.path, route: route, status: status),
                    droppable: !BufferedLogHandler.isErrorStatus(status))
                return response
            }
            context.logger.info(
                "request",
                metadata: [
                    "method": .string(method), "path": .string(request.uri.path),
                    "route": .string(route),
                    "status": .stringConvertible(status),
                    "duration_ms": .string(Self.milliseconds(elapsed)),
                    "client": .string(context.clientAddress),
                ])
        }
        return response
    }

    /// The instant in `X-Stockdrop-Read-At` (monotonic nanoseconds, as `ShedHandler` stamps it),
    /// or `now` when there is none or it is not a past instant of this clock.
    static func readAt(_ header: String?, now: NIODeadline) -> NIODeadline {
        guard let header, let nanoseconds = UInt64(header), nanoseconds <= now.uptimeNanoseconds else { return now }
        return NIODeadline.uptimeNanoseconds(nanoseconds)
    }

    /// The wall-clock instant the server received the request (`readAt`'s stamp, moved onto
    /// `wallNow` by the time elapsed since): when a buyer asked, for the engine's purchase rule.
    static func readAtWallClock(_ header: String?, now: NIODeadline, wallNow: Date) -> Date {
        let elapsedNanoseconds = now.uptimeNanoseconds - readAt(header, now: now).uptimeNanoseconds
        return wallNow.addingTimeInterval(-Double(elapsedNanoseconds) / 1e9)
    }

    /// The line `BufferedLogHandler` would write for this request (its metadata sorted by key).
    static func line(
        timestamp: String, client: String, duration: String, requestID: String, instance: String, method: String,
        path: String, route: String, status: Int
    ) -> String {
        "\(timestamp) info stockdrop: client=\(client) duration_ms=\(duration) hb.request.id=\(requestID) instance=\(instance) method=\(method) path=\(path) route=\(route) status=\(status) [Server] request\n"
    }

    /// `12.345`: milliseconds with three decimals, without Foundation's String(format:),
    /// which cost more than the rest of the line.
    static func milliseconds(_ duration: Duration) -> String {
        let micros = max(0, duration.microseconds)
        let fraction = micros % 1_000
        return "\(micros / 1_000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }

    /// The client's X-Request-Id when it is 1 to 64 letters, digits or dashes (anything else
    /// could forge log lines).
    static func clientRequestID(_ header: String?) -> String? {
        guard let header, (1...64).contains(header.utf8.count),
            header.utf8.allSatisfy({
                $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A)
            })
        else { return nil }
        return header
    }
}
