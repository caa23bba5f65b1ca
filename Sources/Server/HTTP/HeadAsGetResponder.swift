// HEAD is answered for every GET route (RFC 9110: the same status and headers, no content):
// load balancers and uptime probes send it, and the router alone answered 405. It wraps the
// router's responder, since the router matches a route (by method) before any middleware runs.
import HTTPTypes
import Hummingbird

struct HeadAsGetResponder<Base: HTTPResponder>: HTTPResponder {
    typealias Context = Base.Context
    let base: Base

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await base.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var response = try await base.respond(to: Request(head: head, body: request.body), context: context)
        // No content, but the GET's length (RFC 9110 §8.6): an empty body alone sent
        // `Content-Length: 0`, which a cache or a probe reads as the resource's size.
        response.body = ResponseBody(contentLength: response.body.contentLength) { writer in
            try await writer.finish(nil)
        }
        return response
    }
}
