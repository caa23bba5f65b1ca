// Reads HTTP/1.x responses off a connection's bytes, as wrk does with its C parser: the status,
// the body and whether the connection stays open, with no header dictionary and no strings
// per header. The load generator needs nothing else of an answer, and NIOHTTP1's decoder
// allocated a head with every header's name and value per response. Bodies are framed by
// Content-Length, chunked transfer coding, or the end of the connection (RFC 9112 section 6).
import NIOCore

struct HTTPResponseParser {
    struct Response: Equatable {
        var status: Int
        var body: ByteBuffer
        /// False when the server said `Connection: close` (or an HTTP/1.0 server did not say
        /// keep-alive), or framed the body by closing: the connection is not reused.
        var keepAlive: Bool
        /// `Retry-After` in seconds, when the server sent it as a number (503 `overloaded`).
        var retryAfterSeconds: Int?
    }

    struct Malformed: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// A head past this is not an API answer (the server's are a few hundred bytes).
    static let maxHeadBytes = 16 * 1024
    /// Nor is a body past this (the largest answer the generator reads is a page of drops).
    static let maxBodyBytes = 8 * 1024 * 1024

    private enum Framing: Equatable {
        case length(Int)
        case chunked
        case untilClose
    }

    private struct Head {
        var status: Int
        var framing: Framing
        var keepAlive: Bool
        var retryAfterSeconds: Int?
    }

    private var buffer = ByteBuffer()
    /// Where the search for the end of the head resumes: bytes before it were already looked at.
    private var scanned = 0
    private var head: Head?
    /// A chunked body so far.
    private var body = ByteBuffer()

    /// Appends bytes read from the connection.
    mutating func append(_ bytes: inout ByteBuffer) {
        if buffer.readableBytes == 0 && head == nil {
            buffer = bytes
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next whole response, or nil until more bytes come; throws on bytes that are not one.
    mutating func next() throws -> Response? {
        while true {
            if head == nil {
                guard let parsed = try parseHead() else { return nil }
                // 1xx answers are interim (the final one follows on the same connection).
                if (100..<200).contains(parsed.status) { continue }
                head = parsed
            }
            guard let head else { return nil }
            let bodyBytes: ByteBuffer
            switch head.framing {
            case .length(let length):
                guard buffer.readableBytes >= length else { return nil }
                bodyBytes = buffer.readSlice(length: length)!
            case .chunked:
                guard let whole = try readChunks() else { return nil }
                bodyBytes = whole
            case .untilClose:
                return nil
            }
            self.head = nil
            compact()
            return Response(
                status: head.status, body: bodyBytes, keepAlive: head.keepAlive,
                retryAfterSeconds: head.retryAfterSeconds)
        }
    }

    /// The connection closed: a body framed by the close is complete now; anything else left
    /// half read is an error (nil when nothing was pending).
    mutating func finish() throws -> Response? {
        guard let head else {
            guard buffer.readableBytes == 0 else { throw Malformed(description: "the connection closed mid-head") }
            return nil
        }
        guard head.framing == .untilClose else { throw Malformed(description: "the connection closed mid-body") }
        self.head = nil
        let body = buffer.readSlice(length: buffer.readableBytes)!
        return Response(status: head.status, body: body, keepAlive: false, retryAfterSeconds: head.retryAfterSeconds)
    }

    /// Whether bytes of a response not yet whole are waiting.
    var isPartway: Bool { head != nil || buffer.readableBytes > 0 }

    private mutating func compact() {
        if buffer.readableBytes == 0 {
            buffer.clear()
            scanned = 0
        }
    }

    // MARK: - The head

    private mutating func parseHead() throws -> Head? {
        let found: (head: Head, length: Int)? = try buffer.withUnsafeReadableBytes { bytes in
            guard let end = Self.endOfHead(bytes, from: scanned) else {
                scanned = max(0, bytes.count - 3)
                guard bytes.count <= Self.maxHeadBytes else {
                    throw Malformed(description: "a response head longer than \(Self.maxHeadBytes) bytes")
                }
                return nil
            }
            return (try Self.head(UnsafeRawBufferPointer(rebasing: bytes[..<end])), end + 4)
        }
        guard let found else { return nil }
        buffer.moveReaderIndex(forwardBy: found.length)
        scanned = 0
        return found.head
    }

    /// The index of the CRLF CRLF that ends the head, searching from `start`.
    private static func endOfHead(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var index = start
        while index + 3 < bytes.count {
            if bytes[index + 3] != 0x0A {
                // The fourth byte is not LF, so no match starts at index, index+1 or index+2
                // unless that byte is CR.
                index += bytes[index + 3] == 0x0D ? 1 : 4
                continue
            }
            if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, bytes[index + 2] == 0x0D { return index }
            index += 1
        }
        return nil
    }

    private static func head(_ bytes: UnsafeRawBufferPointer) throws -> Head {
        // "HTTP/1.1 200 OK": the version, a space, three digits.
        guard bytes.count >= 12, bytes.starts(with: "HTTP/1.".utf8), bytes[8] == 0x20,
            let status = digits(bytes[9..<12]), status >= 100
        else {
            throw Malformed(description: "not an HTTP/1.x status line")
        }
        let http10 = bytes[7] == UInt8(ascii: "0")
        var keepAlive = !http10
        var length: Int?
        var chunked = false
        var retryAfter: Int?
        var lineStart = (bytes.firstIndex(of: 0x0A) ?? bytes.count) + 1
        while lineStart < bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: 0x0A) ?? bytes.count
            var line = bytes[lineStart..<lineEnd]
            if line.last == 0x0D { line = line.dropLast() }
            lineStart = lineEnd + 1
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw Malformed(description: "a header line without a colon")
            }
            let name = line[..<colon]
            let value = trimmed(line[(colon + 1)...])
            if equalsIgnoringCase(name, "content-length") {
                guard let parsed = digits(value), parsed <= maxBodyBytes else {
                    throw Malformed(description: "a Content-Length that is not a length up to \(maxBodyBytes)")
                }
                guard length == nil || length == parsed else { throw Malformed(description: "two Content-Lengths") }
                length = parsed
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                chunked = endsWithIgnoringCase(value, "chunked")
                guard chunked else { throw Malformed(description: "a transfer coding other than chunked") }
            } else if equalsIgnoringCase(name, "connection") {
                if containsIgnoringCase(value, "close") { keepAlive = false }
                if containsIgnoringCase(value, "keep-alive") { keepAlive = true }
            } else if equalsIgnoringCase(name, "retry-after") {
                retryAfter = digits(value)
            }
        }
        let framing: Framing
        if status == 204 || status == 304 || (100..<200).contains(status) {
            framing = .length(0)
        } else if chunked {
            framing = .chunked
        } else if let length {
            framing = .length(length)
        } else {
            framing = .untilClose
            keepAlive = false
        }
        return Head(status: status, framing: framing, keepAlive: keepAlive, retryAfterSeconds: retryAfter)
    }

    // MARK: - Chunks

    /// The whole chunked body once its last chunk and trailer are in, else nil (what was read
    /// so far is kept in `body`).
    private mutating func readChunks() throws -> ByteBuffer? {
        while true {
            let sizeLine: (size: Int, length: Int)? = try buffer.withUnsafeReadableBytes { bytes in
                guard let lf = bytes.firstIndex(of: 0x0A) else {
                    guard bytes.count < 1_024 else { throw Malformed(description: "a chunk size line too long") }
                    return nil
                }
                var line = bytes[..<lf]
                if line.last == 0x0D { line = line.dropLast() }
                if let semicolon = line.firstIndex(of: UInt8(ascii: ";")) { line = line[..<semicolon] }
                guard let size = Self.hexadecimal(Self.trimmed(line)) else {
                    throw Malformed(description: "a bad chunk size")
                }
                return (size, lf + 1)
            }
            guard let sizeLine else { return nil }
            if sizeLine.size == 0 {
                // The last chunk: then optional trailer fields, then an empty line.
                let trailerEnd: Int? = buffer.withUnsafeReadableBytes { bytes in
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[sizeLine.length...])
                    if rest.starts(with: [0x0D, 0x0A]) { return sizeLine.length + 2 }
                    return Self.endOfHead(rest, from: 0).map { sizeLine.length + $0 + 4 }
                }
                guard let trailerEnd else { return nil }
                buffer.moveReaderIndex(forwardBy: trailerEnd)
                defer { body = ByteBuffer() }
                return body
            }
            guard body.readableBytes + sizeLine.size <= Self.maxBodyBytes else {
                throw Malformed(description: "a chunked body past \(Self.maxBodyBytes) bytes")
            }
            // The chunk's data and its CRLF must all be here.
            guard buffer.readableBytes >= sizeLine.length + sizeLine.size + 2 else { return nil }
            buffer.moveReaderIndex(forwardBy: sizeLine.length)
            var chunk = buffer.readSlice(length: sizeLine.size)!
            body.writeBuffer(&chunk)
            guard buffer.readBytes(length: 2) == [0x0D, 0x0A] else {
                throw Malformed(description: "a chunk not followed by CRLF")
            }
        }
    }

    // MARK: - Bytes

    private static func digits(_ bytes: Slice<UnsafeRawBufferPointer>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 12 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    private static func hexadecimal(_ bytes: Slice<UnsafeRawBufferPointer>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 8 else { return nil }
        var value = 0
        for byte in bytes {
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: return nil
            }
            value = value * 16 + Int(digit)
        }
        return value
    }

    private static func trimmed(_ bytes: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var slice = bytes
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 { (0x41...0x5A).contains(byte) ? byte + 0x20 : byte }

    /// `name` is lowercase ASCII.
    private static func equalsIgnoringCase(_ bytes: Slice<UnsafeRawBufferPointer>, _ name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        return name.withUTF8Buffer { expected in
            zip(bytes, expected).allSatisfy { lowercased($0) == $1 }
        }
    }

    private static func endsWithIgnoringCase(_ bytes: Slice<UnsafeRawBufferPointer>, _ word: StaticString) -> Bool {
        guard bytes.count >= word.utf8CodeUnitCount else { return false }
        return equalsIgnoringCase(bytes.suffix(word.utf8CodeUnitCount), word)
    }

    private static func containsIgnoringCase(_ bytes: Slice<UnsafeRawBufferPointer>, _ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        var start = bytes.startIndex
        while start + count <= bytes.endIndex {
            if equalsIgnoringCase(bytes[start..<start + count], word) { return true }
            start += 1
        }
        return false
    }
}
