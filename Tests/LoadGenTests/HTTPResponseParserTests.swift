import NIOCore
import Testing

// The generator's response parser: whole answers however the bytes are split, framed by
// Content-Length, chunks or the close, and a clear error for what is not HTTP.
@testable import LoadGen

@Suite struct HTTPResponseParserTests {
    static let sample =
        "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\ncontent-length: 18\r\nX-Request-Id: a\r\n\r\n"
        + #"{"error":{"code"}}"#

    /// Feeds `text` in pieces of `size` bytes and returns every response parsed.
    static func parse(_ text: String, piecesOf size: Int, finish: Bool = false) throws -> [HTTPResponseParser.Response]
    {
        var parser = HTTPResponseParser()
        var responses: [HTTPResponseParser.Response] = []
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            var piece = ByteBuffer(bytes: bytes[start..<min(bytes.count, start + size)])
            parser.append(&piece)
            while let response = try parser.next() { responses.append(response) }
            start += size
        }
        if finish, let last = try parser.finish() { responses.append(last) }
        return responses
    }

    @Test(arguments: [1, 2, 3, 7, 64, 10_000])
    func readsAWholeAnswerHoweverTheBytesAreSplit(_ size: Int) throws {
        let responses = try Self.parse(Self.sample + Self.sample, piecesOf: size)
        #expect(responses.count == 2)
        for response in responses {
            #expect(response.status == 409 && response.keepAlive)
            #expect(String(buffer: response.body) == #"{"error":{"code"}}"#)
        }
    }

    @Test func readsRetryAfterAndConnectionClose() throws {
        let text =
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        let response = try #require(try Self.parse(text, piecesOf: 5).first)
        #expect(response.status == 503 && response.retryAfterSeconds == 2 && !response.keepAlive)
    }

    @Test func readsChunkedBodiesWithExtensionsAndTrailers() throws {
        let text =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        for size in [1, 4, 1_000] {
            let responses = try Self.parse(text, piecesOf: size)
            #expect(responses.map { String(buffer: $0.body) } == ["Wikipedia", "abc"])
        }
    }

    @Test func aBodyFramedByTheCloseEndsWithIt() throws {
        let text = "HTTP/1.0 200 OK\r\n\r\nall of it"
        #expect(try Self.parse(text, piecesOf: 3).isEmpty)
        let response = try #require(try Self.parse(text, piecesOf: 3, finish: true).first)
        #expect(String(buffer: response.body) == "all of it" && !response.keepAlive)
    }

    @Test func noBodyFor204And304AndInterimAnswersAreSkipped() throws {
        let text =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
        #expect(try Self.parse(text, piecesOf: 2).map(\.status) == [204, 304])
    }

    @Test(arguments: [
        "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ])
    func refusesWhatIsNotAnAnswer(_ text: String) {
        #expect(throws: HTTPResponseParser.Malformed.self) { try Self.parse(text, piecesOf: 4) }
    }

    @Test func aConnectionClosedMidAnswerIsAnError() throws {
        var parser = HTTPResponseParser()
        var bytes = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
        parser.append(&bytes)
        #expect(try parser.next() == nil)
        #expect(throws: HTTPResponseParser.Malformed.self) { try parser.finish() }
    }

    @Test func anEndlessHeadIsRefused() {
        let text = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Filler: 0123456789\r\n", count: 1_000)
        #expect(throws: HTTPResponseParser.Malformed.self) { try Self.parse(text, piecesOf: 512) }
    }

    @Test func claimRequestsAreTheBytesTheRoutesExpect() {
        var buffer = ByteBuffer()
        ClaimRequestBytes.write(
            .purchase, drop: 42, idempotencyKey: "u7-d42", host: "127.0.0.1:8080", token: "t0k", into: &buffer)
        #expect(
            String(buffer: buffer)
                == "POST /v1/drops/42/purchase HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer t0k\r\n"
                + "Idempotency-Key: u7-d42\r\nContent-Length: 0\r\n\r\n")
        for (value, text) in [(Int64(0), "0"), (9, "9"), (10, "10"), (Int64.max, String(Int64.max))] {
            var digits = ByteBuffer()
            ClaimRequestBytes.writeDecimal(value, into: &digits)
            #expect(String(buffer: digits) == text)
        }
    }
}
