// The hiredis wrapper against a real redis-server on a Unix socket of the test's own.
import Foundation
import Server
import Testing

@Suite("hiredis wrapper") struct RedisConnectionTests {
    @Test func commandsAndPublishReachARealServer() async throws {
        let redis = try RedisTestServer()
        defer { redis.stop() }
        let connection = try RedisConnection(url: redis.url)
        #expect(try connection.command(["PING"]) == .status("PONG"))
        #expect(try connection.command(["SET", "stock:1", "42 ✓"]) == .status("OK"))
        #expect(try connection.command(["GET", "stock:1"]) == .string("42 ✓"))
        #expect(try connection.command(["GET", "missing"]) == .null)
        #expect(try connection.publish(channel: "events", message: "{}") == 0)
        #expect(throws: RedisError.self) { try connection.command(["NOSUCHCOMMAND"]) }
        #expect(throws: RedisError.self) { try RedisConnection(url: "unix:///nonexistent/redis.sock") }
    }
}

/// A redis-server started for one test, listening only on a Unix socket in a temp directory.
struct RedisTestServer {
    let directory: String
    let process: Process
    var url: String { "unix://\(directory)/redis.sock" }

    /// A new server, or (with `directory`) one restarted on a stopped one's socket path.
    init(directory existing: String? = nil) throws {
        directory = existing ?? NSTemporaryDirectory() + "stockdrop-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = ["--port", "0", "--unixsocket", "\(directory)/redis.sock", "--save", "", "--appendonly", "no", "--dir", directory]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for the socket to accept, bounded at 10 s.
        for _ in 0..<1000 {
            if (try? RedisConnection(url: url)) != nil { return }
            usleep(10_000)
        }
        kill(process.processIdentifier, SIGKILL)
        throw RedisError(message: "redis-server did not start")
    }

    func stop(keepDirectory: Bool = false) {
        // SIGKILL: a child spawned from a dispatch thread inherits its blocked SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        if !keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}
