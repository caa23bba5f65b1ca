// The request log's buffer: a burst that overflows it drops success lines, counts them and
// says so in the log, and loses no error line; the handler writes StreamLogHandler's format.
import Foundation
import Logging
import Synchronization
import Testing

@testable import Server

@Suite struct LogSinkTests {
    /// A pipe whose reader drains slowly, so the sink's buffer fills: what it read, once the
    /// write end is closed.
    final class SlowReader: @unchecked Sendable {
        let writeEnd: Int32
        private let readEnd: Int32
        private let done = DispatchSemaphore(value: 0)
        private let collected = Mutex<[UInt8]>([])

        init() {
            var ends: [Int32] = [0, 0]
            precondition(pipe(&ends) == 0)
            readEnd = ends[0]
            writeEnd = ends[1]
            // Not inherited by processes other tests spawn meanwhile. The reader does not wait
            // for the end of the pipe either (a child that inherited the write end before this
            // line would keep it open: this test hung a CI run so): it stops once it has read
            // every byte the sink wrote.
            _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
            let thread = Thread { [self] in
                var chunk = [UInt8](repeating: 0, count: 4_096)
                while true {
                    usleep(2_000)
                    let count = read(readEnd, &chunk, chunk.count)
                    if count <= 0 { break }
                    collected.withLock { $0.append(contentsOf: chunk[0..<count]) }
                }
                done.signal()
            }
            thread.start()
        }

        /// Once `bytes` were read (what the sink wrote): every line; after 30 s, what was read
        /// so far (the test then fails on the counts, it does not hang).
        func lines(bytes: Int) async throws -> [String] {
            let deadline = ContinuousClock.now + .seconds(30)
            while collected.withLock({ $0.count }) < bytes, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(1))
            }
            if collected.withLock({ $0.count }) < bytes {
                Issue.record("the pipe's reader got fewer bytes than written")
            }
            close(writeEnd)
            if done.wait(timeout: .now() + 1) == .success { close(readEnd) }
            return String(decoding: collected.withLock { $0 }, as: UTF8.self).split(separator: "\n").map(String.init)
        }
    }

    @Test func aBurstOfErrorsLosesNoErrorLineAndTheDroppedSuccessesAreCounted() async throws {
        let reader = SlowReader()
        let sink = LogSink(descriptor: reader.writeEnd, capacityBytes: 8_192, reservedBytes: 2_048)
        var configured = Logger(label: "test") { BufferedLogHandler(label: $0, sink: sink) }
        configured.logLevel = .info
        let logger = configured
        let perTask = 2_000
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for index in 0..<perTask {
                        logger.info("request", metadata: ["status": "200", "n": "\(task)-\(index)"])
                        logger.info("request", metadata: ["status": "503", "n": "\(task)-\(index)"])
                        if index % 100 == 0 { logger.error("engine trouble", metadata: ["n": "\(task)-\(index)"]) }
                    }
                }
            }
        }
        sink.flush()
        let lines = try await reader.lines(bytes: sink.writtenBytes)
        let errors = lines.filter { $0.contains("status=503") }
        let troubles = lines.filter { $0.contains("engine trouble") }
        let successes = lines.filter { $0.contains("status=200") }
        #expect(errors.count == 4 * perTask, "every 503 line is written")
        #expect(Set(errors).count == errors.count)
        #expect(troubles.count == 4 * perTask / 100)
        // The slow reader made the buffer overflow: successes were dropped, counted, and said.
        #expect(sink.dropped > 0)
        #expect(successes.count + sink.dropped == 4 * perTask)
        let notices = lines.filter { $0.contains("log buffer full") }
        #expect(!notices.isEmpty)
        let said = notices.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("dropped=") }.flatMap { Int($0.dropFirst(8)) }
        }
        #expect(said.reduce(0, +) == sink.dropped)
    }

    @Test func linesReadAsStreamLogHandlerWritesThem() {
        var metadata: Logger.Metadata = ["instance": "s1", "a": "1"]
        #expect(BufferedLogHandler.render(metadata) == "a=1 instance=s1")
        metadata = [:]
        #expect(BufferedLogHandler.render(metadata) == "")
        // libpq's errors carry a newline and a tab: one entry stays one line.
        metadata = ["error": "could not connect: No such file or directory\n\tIs the server running locally?"]
        #expect(
            BufferedLogHandler.render(metadata)
                == #"error=could not connect: No such file or directory\n\tIs the server running locally?"#)
        #expect(BufferedLogHandler.oneLine("bell\u{07}") == #"bell\u0007"#)
        #expect(LogSink.timestamp(0) == "1970-01-01T00:00:00+0000")
        #expect(LogSink.timestamp(1_796_148_000) == "2026-12-01T18:00:00+0000")
        #expect(BufferedLogHandler.isErrorLine(level: .info, metadata: ["status": .stringConvertible(404)]))
        #expect(!BufferedLogHandler.isErrorLine(level: .info, metadata: ["status": .stringConvertible(201)]))
        #expect(BufferedLogHandler.isErrorLine(level: .notice, metadata: [:]))
        #expect(!BufferedLogHandler.isErrorLine(level: .info, metadata: [:]))
        // The request line written straight to the sink reads as the handler writes it.
        let viaHandler =
            "2026-12-01T18:00:00+0000 info stockdrop: "
            + BufferedLogHandler.render([
                "hb.request.id": "abc", "instance": "s1~x", "method": "GET", "path": "/health", "route": "/health",
                "status": .stringConvertible(200), "duration_ms": "0.123", "client": "127.0.0.1",
            ]) + " [Server] request\n"
        #expect(
            RequestLogMiddleware.line(
                timestamp: "2026-12-01T18:00:00+0000", client: "127.0.0.1", duration: "0.123", requestID: "abc",
                instance: "s1~x", method: "GET", path: "/health", route: "/health", status: 200) == viaHandler)
        #expect(RequestLogMiddleware.milliseconds(.microseconds(12_345)) == "12.345")
        #expect(RequestLogMiddleware.milliseconds(.microseconds(5)) == "0.005")
        #expect(RequestLogMiddleware.milliseconds(.seconds(2)) == "2000.000")
    }
}
