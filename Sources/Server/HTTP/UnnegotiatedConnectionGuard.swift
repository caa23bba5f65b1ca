// A connection that has not yet sent one whole request head is still being negotiated (is it
// HTTP, or a WebSocket upgrade?), and until it is, none of Hummingbird's handlers is in its
// pipeline: nothing closed it when the server quiesced, nor when it stayed idle. One idle
// connection (a balancer's pre-opened one, a browser's preconnect, a half-sent head) made
// SIGTERM wait out the whole drain and the cancellation and then crash the process (exit 132
// after 20 s), and such connections were held for good. This handler, first in every
// connection's pipeline, closes the connection on quiescing or after the idle timeout while
// no request has been accepted on it; once one has, the HTTP or WebSocket handlers own it.
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
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
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func arm(_ context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) {
            let context = loopBound.value
            if !Self.negotiated(context.pipeline) { context.close(promise: nil) }
        }
    }

    /// Whether a request head was read: the HTTP handlers (a request accepted) or the WebSocket
    /// ones (an upgrade made) replaced the negotiation.
    private static func negotiated(_ pipeline: ChannelPipeline) -> Bool {
        let handlers = pipeline.syncOperations
        return (try? handlers.handler(type: HTTPConnectionStateHandler.self)) != nil
            || (try? handlers.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)) != nil
    }
}

/// A server's child channel with the guard first in its pipeline.
struct GuardedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let idleTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let idleTimeout = self.idleTimeout
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                UnnegotiatedConnectionGuard(idleTimeout: idleTimeout), position: .first)
        }.flatMap { base.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
