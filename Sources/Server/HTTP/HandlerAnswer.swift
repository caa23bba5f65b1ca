// An answer a channel handler writes itself, before the router sees the request (a shed
// reserve, a request the parser refused): a JSON body and the headers every answer carries.
import HTTPTypes
import Hummingbird
import NIOCore

enum HandlerAnswer {
    /// The head and body of `status` with `body`, `extra` headers, and `requestID` (the
    /// client's own when it sent a valid one; else one of ours).
    static func parts(
        _ status: HTTPResponse.Status, body text: String, extra: HTTPFields = [:], requestID: String? = nil,
        allocator: ByteBufferAllocator
    ) -> (head: HTTPResponse, body: ByteBuffer) {
        var body = allocator.buffer(capacity: text.utf8.count)
        body.writeString(text)
        var head = HTTPResponse(
            status: status,
            headerFields: [
                .contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes),
                .xRequestID: requestID ?? RequestID().description, .server: "stockdrop",
            ])
        head.headerFields.append(contentsOf: extra)
        return (head, body)
    }
}
