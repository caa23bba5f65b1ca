// The cheapest point to refuse a reserve: on the event loop, right after the request head is
// decoded, before a task, the router, the token check or the engine see it. While the server
// is past its latency target (`OverloadMonitor`), a new `POST /v1/drops/{id}/reserve` is
// answered 503 `overloaded` with Retry-After here, and its body (if any) is dropped. Nothing
// else is refused here: purchases and cancels of live holds, reads and the operations routes
// go on. Every other request is counted in flight until its response ends, which is what the
// monitor's bound is measured against, and is stamped with the instant the server received it
// (`X-Stockdrop-Read-At`, replacing any the client sent; `KernelReceipt`): under load a request
// waits in its socket for the event loop, then for a task to take it up, and both waits are the
// server's, so its latency counts from this stamp, and a purchase is judged by it. A request is
// shed only when no earlier request of the same connection is still being answered, so answers
// never leave out of order.
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes

final class ShedHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let monitor: OverloadMonitor
    private let metrics: ServerMetrics
    /// Requests of this connection passed on and not yet answered.
    private var answering = 0
    /// The parts of a shed request still to come are dropped.
    private var dropping = false

    init(monitor: OverloadMonitor, metrics: ServerMetrics, draining: DrainingFlag) {
        self.monitor = monitor
        self.metrics = metrics
        self.draining = draining
    }

    /// Shed answers are written here, past the router's `CloseWhileDraining`: they say
    /// `Connection: close` during a drain themselves.
    private let draining: DrainingFlag

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(var request):
            // Shed only onto a writable connection: a client that sends without reading its
            // answers is left to Hummingbird's backpressure rather than buffered here.
            if answering == 0, monitor.shouldShed, context.channel.isWritable, Self.isReserve(request) {
                dropping = true
                shed(
                    context: context, requestID: RequestLogMiddleware.clientRequestID(request.headerFields[.xRequestID])
                )
                return
            }
            answering += 1
            monitor.began()
            let received =
                KernelReceipt.worthAsking(request, loopLagMicroseconds: monitor.loopLagMicroseconds)
                ? KernelReceipt.receivedAt(channel: context.channel) : NIODeadline.now()
            request.headerFields[.stockdropReadAt] = String(received.uptimeNanoseconds)
            context.fireChannelRead(wrapInboundOut(.head(request)))
            return
        case .body, .end:
            if dropping {
                if case .end = part { dropping = false }
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), answering > 0 {
            answering -= 1
            monitor.ended()
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Requests whose answers will never be written leave the count.
        while answering > 0 {
            answering -= 1
            monitor.ended()
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        while answering > 0 {
            answering -= 1
            monitor.ended()
        }
    }

    /// `requestID`: the client's own, when it sent a valid one; else one of ours. Every answer
    /// carries one (server.md), the shed ones too.
    private func shed(context: ChannelHandlerContext, requestID: String?) {
        let started = NIODeadline.now()
        let retryAfter = monitor.retryAfterSeconds
        var (response, body) = HandlerAnswer.parts(
            .serviceUnavailable, body: Self.body, extra: [.retryAfter: String(retryAfter)], requestID: requestID,
            allocator: context.channel.allocator)
        // Read once: the header and the close must agree.
        let closing = draining.isDraining
        if closing { response.headerFields[.connection] = "close" }
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        if closing {
            // As it said: the connection closes after this answer.
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        monitor.shedOne()
        metrics.recordRequest(
            route: RoutePaths.reserve, method: "POST", status: 503,
            nanoseconds: Int64((NIODeadline.now() - started).nanoseconds))
    }

    static let body = APIError(.overloaded, APIError.Code.overloaded.meaning).jsonBody

    private static let reservePrefix = Array(RoutePaths.parts(of: RoutePaths.reserve).prefix.utf8)
    private static let reserveSuffix = Array(RoutePaths.parts(of: RoutePaths.reserve).suffix.utf8)

    /// `POST` on `RoutePaths.reserve` (query ignored), by bytes: no allocation per request.
    static func isReserve(_ request: HTTPRequest) -> Bool {
        guard request.method == .post, let path = request.path else { return false }
        var utf8 = path.utf8[...]
        if let query = utf8.firstIndex(of: UInt8(ascii: "?")) { utf8 = utf8[..<query] }
        return utf8.count > reservePrefix.count + reserveSuffix.count && utf8.starts(with: reservePrefix)
            && utf8.reversed().starts(with: reserveSuffix.reversed())
    }
}
