// HEAD is answered for every GET route (RFC 9110: the same status and headers, no content):
// load balancers and uptime probes send it, and the router alone answered 405. It wraps the
// router's responder, since the router matches a route (by method) before any middleware runs.
// The context says the request was a HEAD, so the logs and metrics name the method the client
// sent.
import HTTPTypes
import Hummingbird

/// A request context that can say the request it carries was a HEAD answered as a GET.
protocol HeadAnsweringContext: RequestContext {
    var answersHead: Bool { get set }
}

extension HeadAnsweringContext {
    /// The method the client sent.
    func clientMethod(of request: Request) -> HTTPRequest.Method { answersHead ? .head : request.method }
}

struct HeadAsGetResponder<Base: HTTPResponder>: HTTPResponder where Base.Context: HeadAnsweringContext {
    typealias Context = Base.Context
    let base: Base

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await base.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var context = context
        context.answersHead = true
        var response = try await base.respond(to: Request(head: head, body: request.body), context: context)
        // No content, but the GET's length (RFC 9110 §8.6): an empty body alone sent
        // `Content-Length: 0`, which a cache or a probe reads as the resource's size.
        response.body = ResponseBody(contentLength: response.body.contentLength) { writer in
            try await writer.finish(nil)
        }
        return response
    }
}
