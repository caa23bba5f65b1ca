// `run --dashboard HOST:PORT`: the live page at `/`, its server-sent events at `/events` (every
// frame so far, then one a second and the final one), `/frames` (the same as one JSON array,
// for scripts) and `/report` once the run has one. Bound before the load starts, so a port in
// use is a usage error and not a run that went unwatched.
import Engine
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

public final class DashboardServer: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The address it listens on (the port the system chose when asked for 0).
    public let host: String
    public let port: Int
    private let running: Task<Void, any Error>
    /// Event streams still writing: `stop` lets them send the final frame first.
    private let streaming: Counter

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    private let group: ServiceGroup

    private init(
        host: String, port: Int, group: ServiceGroup, running: Task<Void, any Error>, streaming: Counter
    ) {
        self.group = group
        self.host = host
        self.port = port
        self.running = running
        self.streaming = streaming
    }

    public var url: String { HTTPAddress.url(host: host, port: port) + "/" }

    /// Listens on `host:port` and serves `board`; throws when it cannot listen there.
    public static func start(host: String, port: Int, board: LiveBoard) async throws -> DashboardServer {
        let streaming = Counter()
        let router = Router()
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: .init(
                    byteBuffer: ByteBuffer(string: DashboardPage.html(scenario: board.scenario, shard: board.shard))))
        }
        router.get("/events") { _, _ in
            let frames = board.subscribe()
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
                body: ResponseBody { writer in
                    streaming.value.add(1, ordering: .relaxed)
                    defer { streaming.value.subtract(1, ordering: .relaxed) }
                    // A page that loses the stream (the run ended, or a network blip) asks
                    // again after a second and is sent every frame again.
                    try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
                    for await frame in frames {
                        try await writer.write(ByteBuffer(string: "data: \(frame)\n\n"))
                    }
                    try await writer.finish(nil)
                })
        }
        router.get("/frames") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: "[" + board.frames.joined(separator: ",") + "]")))
        }
        router.get("/report") { _, _ in
            guard let html = board.reportHTML else {
                return Response(
                    status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: "the run has no report yet\n")))
            }
            return Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: html)))
        }
        // Quiet: the run's own output is the terminal's; a page that went away is not news.
        var logger = Logger(label: "dashboard")
        logger.logLevel = .critical
        // The first of: the server listening (its port), or its run ending (the error).
        let (started, signal) = AsyncStream.makeStream(of: Result<Int, any Error>.self)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "stockdrop-dashboard"),
            onServerRunning: { channel in signal.yield(.success(channel.localAddress?.port ?? port)) },
            logger: logger)
        var configuration = ServiceGroupConfiguration(services: [application], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        configuration.maximumCancellationDuration = .seconds(1)
        let group = ServiceGroup(configuration: configuration)
        let running = Task {
            do {
                try await group.run()
                signal.yield(.failure(Failure(description: "the dashboard stopped before it listened")))
            } catch {
                signal.yield(.failure(error))
                throw error
            }
        }
        for await first in started {
            switch first {
            case .success(let listening):
                return DashboardServer(
                    host: host, port: listening, group: group, running: running, streaming: streaming)
            case .failure(let error):
                throw Failure(description: "cannot listen on \(host):\(port): \(error)")
            }
        }
        throw Failure(description: "cannot listen on \(host):\(port)")
    }

    /// Stops serving, once the event streams have sent what they had (the final frame ends
    /// each of them; at most 3 s for a page that reads slowly).
    public func stop() async {
        let deadline = ContinuousClock.now + .seconds(3)
        while streaming.value.load(ordering: .relaxed) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        await group.triggerGracefulShutdown()
        _ = await running.result
    }

    /// `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (loopback when no host is given); nil
    /// when malformed.
    public static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        var host = "127.0.0.1"
        var portText = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else if let colon = text.lastIndex(of: ":") {
            if colon != text.startIndex { host = String(text[..<colon]) }
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard let port = Int(portText), (0...65_535).contains(port), !host.isEmpty else { return nil }
        return (host, port)
    }
}
