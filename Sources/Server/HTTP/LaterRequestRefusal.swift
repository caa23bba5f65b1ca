// A request the HTTP parser refuses after others were read on the same keep-alive connection
// got Hummingbird's bare 400 (no body, no request id): the same bytes sent first on a
// connection are answered 400 `invalid_parameter` in JSON (`MalformedRequestRefusal`), and so
// is a body whose framing breaks (`ErrorMiddleware`). Behind the HTTP/1 codec, this handler
// answers the later one the same way, after every request read before it has its answer (so
// answers never leave out of order), and then closes the connection: nothing after a head the
// parser refused can be read in step; every error after it (the decoder, once failed, fails
// again on each byte that follows) is swallowed, so Hummingbird neither answers a second time
// nor closes the connection before the refusal is written. An error inside a request's body
// goes on to the route, which answers it (`ErrorMiddleware`) when it reads its body.
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

final class LaterRequestRefusal: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Whole requests (head to end) passed on, and answers ended.
    private var requestsRead = 0
    private var answersEnded = 0
    /// A head was passed on and its end has not come yet.
    private var readingRequest = false
    private var state = State.reading

    private enum State { case reading, refusing, refused }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: readingRequest = true
        case .body: break
        case .end:
            readingRequest = false
            requestsRead += 1
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let ended = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        if ended {
            answersEnded += 1
            refuseOnceAnswered(context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state {
        case .refusing, .refused:
            return
        case .reading:
            guard error is HTTPParserError, !readingRequest else {
                context.fireErrorCaught(error)
                return
            }
            state = .refusing
            refuseOnceAnswered(context)
        }
    }

    private func refuseOnceAnswered(_ context: ChannelHandlerContext) {
        guard state == .refusing, answersEnded >= requestsRead else { return }
        state = .refused
        let (head, body) = HandlerAnswer.parts(
            .badRequest, body: MalformedRequestRefusal.body, extra: [.connection: "close"],
            allocator: context.channel.allocator)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
