// The hiredis wrapper against a real redis-server on a Unix socket of the test's own.
import Engine
import Foundation
import Server
import Testing

@Suite("hiredis wrapper") struct RedisConnectionTests {
    @Test func commandsAndPublishReachARealServer() async throws {
        let redis = try await RedisTestServer()
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

    /// A password in the URL is sent (AUTH), a wrong one is refused without being repeated in
    /// the error, and logs see the URL with its password replaced.
    @Test func aPasswordInTheURLAuthenticatesAndIsNeverShown() async throws {
        let redis = try await RedisTestServer(password: "s3cret p@ss")
        defer { redis.stop() }
        let connection = try RedisConnection(url: redis.url)
        #expect(try connection.command(["PING"]) == .status("PONG"))
        let wrong = redis.url.replacingOccurrences(of: "s3cret%20p%40ss", with: "nope")
        do {
            _ = try RedisConnection(url: wrong)
            Issue.record("a wrong password must be refused")
        } catch let error as RedisError {
            #expect(!error.message.contains("nope") && error.message.contains("***"))
        }
        #expect(RedactedURL.of("redis://app:s3cret@127.0.0.1:6379") == "redis://app:***@127.0.0.1:6379")
        #expect(RedactedURL.of("unix:///tmp/redis.sock") == "unix:///tmp/redis.sock")
    }
}

/// A redis-server started for one test, listening only on a Unix socket in a temp directory.
struct RedisTestServer {
    let directory: String
    let process: Process
    /// With a password, the server listens on a loopback TCP port instead and requires it.
    let password: String?
    let port: Int
    var url: String {
        guard let password else { return "unix://\(directory)/redis.sock" }
        let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? password
        return "redis://:\(encoded)@127.0.0.1:\(port)"
    }

    /// A new server, or (with `directory`) one restarted on a stopped one's socket path.
    init(directory existing: String? = nil, password: String? = nil) async throws {
        self.password = password
        port = password == nil ? 0 : Self.freePort()
        directory = existing ?? NSTemporaryDirectory() + "stockdrop-redis-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments =
            [
                "--port", "\(port)", "--unixsocket", "\(directory)/redis.sock", "--save", "", "--appendonly", "no",
                "--dir", directory,
            ]
            + (password.map { ["--bind", "127.0.0.1", "--requirepass", $0] } ?? [])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for the socket to accept, bounded at 10 s.
        for _ in 0..<1000 {
            if (try? RedisConnection(url: url)) != nil { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(process.processIdentifier, SIGKILL)
        throw RedisError(message: "redis-server did not start")
    }

    /// A loopback TCP port nothing listens on now (the kernel's pick for an ephemeral bind).
    static func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func stop(keepDirectory: Bool = false) {
        // SIGKILL: a child spawned from a dispatch thread inherits its blocked SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        if !keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }
}
