// A connection that has not yet sent one whole request head is still being negotiated (is it
// HTTP, or a WebSocket upgrade?), and until it is, none of Hummingbird's handlers is in its
// pipeline: nothing closed it when the server quiesced, nor when it stayed idle. One idle
// connection (a balancer's pre-opened one, a browser's preconnect, a half-sent head) made
// SIGTERM wait out the whole drain and the cancellation and then crash the process (exit 132
// after 20 s), and such connections were held for good. This handler, first in every
// connection's pipeline, closes the connection on quiescing or after the idle timeout while
// no request has been accepted on it; once one has, the HTTP or WebSocket handlers own it.
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

final class UnnegotiatedConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let idleTimeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(idleTimeout: TimeAmount) { self.idleTimeout = idleTimeout }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if timer == nil { arm(context) }
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !Self.negotiated(context.pipeline) {
            Self.close(context.channel)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes a connection still being negotiated as a client's half-close would: the upgrade
    /// handler then ends its negotiation as "input closed", which Hummingbird logs at trace; a
    /// plain close ended it as "inappropriate operation for state", an error line each time.
    static func close(_ channel: any Channel) {
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        channel.close(promise: nil)
    }

    private func arm(_ context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) {
            let context = loopBound.value
            if !Self.negotiated(context.pipeline) { Self.close(context.channel) }
        }
    }

    /// Whether a request head was read: the HTTP handlers (a request accepted) or the WebSocket
    /// ones (an upgrade made) replaced the negotiation.
    static func negotiated(_ pipeline: ChannelPipeline) -> Bool {
        let handlers = pipeline.syncOperations
        return (try? handlers.handler(type: HTTPConnectionStateHandler.self)) != nil
            || (try? handlers.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)) != nil
    }
}

/// A request the HTTP parser refuses before any was accepted on its connection (a control byte
/// in a header, a path with a space, no HTTP version) is answered 400 and the connection
/// closed, as NIO's own error handler would: nothing answered it, and the connection was held
/// until the server stopped. Last in the pipeline when the connection opens, behind the
/// parser; once a request was accepted, Hummingbird's handlers answer such errors.
final class MalformedRequestRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundOut = HTTPServerResponsePart

    static let body = APIError(.invalidParameter, "the request is not valid HTTP/1.1").jsonBody

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !UnnegotiatedConnectionGuard.negotiated(context.pipeline) else {
            context.fireErrorCaught(error)
            return
        }
        var body = context.channel.allocator.buffer(capacity: Self.body.utf8.count)
        body.writeString(Self.body)
        let head = HTTPResponseHead(
            version: .http1_1, status: .badRequest,
            headers: [
                "Content-Type": "application/json; charset=utf-8", "Content-Length": String(body.readableBytes),
                "Connection": "close", "Server": "stockdrop", "X-Request-Id": RequestID().description,
            ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            UnnegotiatedConnectionGuard.close(loopBound.value.channel)
        }
    }
}

/// A server's child channel with the guard first in its pipeline, and the refusal of malformed
/// requests last.
struct GuardedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let idleTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let idleTimeout = self.idleTimeout
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                UnnegotiatedConnectionGuard(idleTimeout: idleTimeout), position: .first)
        }.flatMap { base.setup(channel: channel, logger: logger) }.flatMapThrowing { value in
            try channel.pipeline.syncOperations.addHandler(MalformedRequestRefusal(), position: .last)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
