// A claim as the bytes that go on the wire, written straight into the connection's buffer:
// the request line, Host, the bearer token and, for a purchase, the Idempotency-Key. No header
// list, no strings per request; the same requests `HTTPTarget`'s methods send, by the paths the
// server's routes declare (docs/server.md).
import Engine
import NIOCore

enum ClaimRequestBytes {
    static func write(
        _ operation: OperationKind, drop: DropID, idempotencyKey: @autoclosure () -> String, host: String,
        token: String, into buffer: inout ByteBuffer
    ) {
        switch operation {
        case .reserve: buffer.writeStaticString("POST /v1/drops/")
        case .purchase: buffer.writeStaticString("POST /v1/drops/")
        case .cancel: buffer.writeStaticString("DELETE /v1/drops/")
        }
        writeDecimal(drop, into: &buffer)
        switch operation {
        case .reserve: buffer.writeStaticString("/reserve HTTP/1.1\r\nHost: ")
        case .purchase: buffer.writeStaticString("/purchase HTTP/1.1\r\nHost: ")
        case .cancel: buffer.writeStaticString("/reservation HTTP/1.1\r\nHost: ")
        }
        buffer.writeString(host)
        buffer.writeStaticString("\r\nAuthorization: Bearer ")
        buffer.writeString(token)
        if operation == .purchase {
            buffer.writeStaticString("\r\nIdempotency-Key: ")
            buffer.writeString(idempotencyKey())
        }
        buffer.writeStaticString("\r\nContent-Length: 0\r\n\r\n")
    }

    /// A non-negative id in decimal, without a String in between.
    static func writeDecimal(_ value: Int64, into buffer: inout ByteBuffer) {
        precondition(value >= 0, "ids are positive")
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        var rest = UInt64(value)
        withUnsafeMutableBytes(of: &digits) { bytes in
            repeat {
                bytes[23 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[(24 - count)...]))
        }
    }
}
