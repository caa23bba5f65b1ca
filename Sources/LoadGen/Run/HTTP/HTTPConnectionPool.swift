// The harness's control connections to a server: its probes, the drops it creates, /metrics
// before and after the load, and single claims from tests. A few keep-alive connections on
// NIO, requests spread round-robin and pipelined on each (the server answers a connection's
// requests in order), a deadline per request, and a reconnect when a connection drops. A
// run's buyers never come through here: they each have a connection of their own while a
// request is out (`HTTPLane`), so one buyer never waits behind another's request.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

public struct HTTPReply: Sendable {
    public let status: Int
    public let body: ByteBuffer
    /// Retry-After, in seconds, when the server sent one as a number.
    public var retryAfterSeconds: Int? = nil
}

public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case timeout, connection }
    public let kind: Kind
    public let message: String
    public var description: String { message }
}

public final class HTTPConnectionPool: Sendable {
    let host: String
    let port: Int
    private let group: any EventLoopGroup
    private let connections: [Connection]
    private let nextConnection = Atomic<Int>(0)
    private let timeout: TimeAmount

    /// The pool has event loop threads of its own, closed with it.
    public init(
        host: String, port: Int, connections: Int, timeoutMilliseconds: Int,
        eventLoopThreads: Int = LoadDefaults.httpEventLoopThreads
    ) {
        self.host = host
        self.port = port
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoopThreads)
        self.timeout = .milliseconds(Int64(timeoutMilliseconds))
        self.connections = (0..<max(1, connections)).map { _ in Connection() }
    }

    /// Sends one request and waits for its reply, a connection failure, or the deadline.
    public func send(
        method: HTTPMethod, path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil
    ) async throws -> HTTPReply {
        var request = ByteBuffer()
        request.writeString("\(method.rawValue) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n")
        for (name, value) in headers { request.writeString("\(name): \(value)\r\n") }
        request.writeString("Content-Length: \(body?.readableBytes ?? 0)\r\n\r\n")
        if var body { request.writeBuffer(&body) }
        return try await send(raw: request)
    }

    /// Sends a request already written as bytes (`ClaimRequestBytes`).
    func send(raw request: ByteBuffer) async throws -> HTTPReply {
        let index = nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count
        let channel = try await channel(of: connections[index])
        let slot = ReplySlot()
        let pending = PendingRequest(bytes: request, slot: slot, timeout: timeout)
        return try await withCheckedThrowingContinuation { continuation in
            slot.arm(continuation)
            channel.writeAndFlush(pending).whenFailure { error in
                slot.resolve(.failure(HTTPClientError(kind: .connection, message: "write failed: \(error)")))
            }
        }
    }

    public func close() async {
        for connection in connections {
            if let channel = connection.current() { try? await channel.close() }
        }
        try? await group.shutdownGracefully()
    }

    private func channel(of connection: Connection) async throws -> any Channel {
        if let channel = connection.current(), channel.isActive { return channel }
        let future: EventLoopFuture<any Channel> = connection.connecting { [group, host, port] in
            ClientBootstrap(group: group)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ResponseHandler())
                    }
                }
                .connect(host: host, port: port)
        }
        do {
            return try await future.get()
        } catch {
            connection.failed(future)
            throw HTTPClientError(kind: .connection, message: "cannot connect to \(host):\(port): \(error)")
        }
    }
}

/// One keep-alive connection, (re)connected on demand; concurrent callers share one attempt.
final class Connection: Sendable {
    private enum State {
        case none
        case connecting(EventLoopFuture<any Channel>)
        case connected(any Channel)
    }
    private let state = Mutex<State>(.none)

    func current() -> (any Channel)? {
        state.withLock { if case .connected(let channel) = $0 { channel } else { nil } }
    }

    func connecting(_ connect: () -> EventLoopFuture<any Channel>) -> EventLoopFuture<any Channel> {
        state.withLock { state in
            switch state {
            case .connecting(let future): return future
            case .connected(let channel) where channel.isActive: return channel.eventLoop.makeSucceededFuture(channel)
            default:
                let future = connect()
                state = .connecting(future)
                future.whenSuccess { [weak self] channel in self?.state.withLock { $0 = .connected(channel) } }
                return future
            }
        }
    }

    func failed(_ future: EventLoopFuture<any Channel>) {
        state.withLock { state in
            if case .connecting(let pending) = state, pending === future { state = .none }
        }
    }
}

/// Where one request's reply lands: the first of reply, failure and deadline wins.
final class ReplySlot: Sendable {
    private struct State {
        var continuation: CheckedContinuation<HTTPReply, any Error>?
        var resolved = false
    }
    private let state = Mutex(State())

    func arm(_ continuation: CheckedContinuation<HTTPReply, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func resolve(_ result: Result<HTTPReply, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<HTTPReply, any Error>? in
            guard !state.resolved else { return nil }
            state.resolved = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(with: result)
    }
}

struct PendingRequest: Sendable {
    let bytes: ByteBuffer
    let slot: ReplySlot
    let timeout: TimeAmount
}

/// Writes pipelined requests and matches replies to them in order, and times out the ones
/// past their deadline. Replies come in request order, so the oldest request waiting is the
/// first past its deadline: one sweep per connection a few times a second checks from there,
/// where a timer per request (armed and cancelled on NIO's heap of scheduled tasks) cost 18%
/// of the generator's CPU at 16k requests/s.
final class ResponseHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = ByteBuffer

    /// Requests written and not yet answered, from `waitingStart`, with their deadlines.
    private var waiting: [(slot: ReplySlot, deadline: NIODeadline, timeout: TimeAmount)] = []
    private var waitingStart = 0
    /// Requests before this index were already timed out (their replies still come, in order).
    private var timedOutThrough = 0
    private var sweep: RepeatedTask?
    private var parser = HTTPResponseParser()
    private var flushPending = false

    func handlerAdded(context: ChannelHandlerContext) {
        // The sweep runs on this handler's event loop and is cancelled when it is removed.
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        sweep = context.eventLoop.scheduleRepeatedTask(
            initialDelay: LoadDefaults.httpDeadlineSweep, delay: LoadDefaults.httpDeadlineSweep
        ) { _ in handler.value.timeOutOverdue() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        sweep?.cancel()
        sweep = nil
    }

    private func timeOutOverdue() {
        let now = NIODeadline.now()
        var index = max(timedOutThrough, waitingStart)
        while index < waiting.count, waiting[index].deadline <= now {
            let timeout = waiting[index].timeout
            waiting[index].slot.resolve(
                .failure(
                    HTTPClientError(kind: .timeout, message: "no reply within \(timeout.nanoseconds / 1_000_000) ms")))
            index += 1
        }
        timedOutThrough = index
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append((request.slot, .now() + request.timeout, request.timeout))
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    /// Requests written in one event-loop tick leave in one syscall: `send` asks for a flush
    /// after each write, and a flush already pending covers them all (a writev per request
    /// cost 17% of the generator's CPU at 15k req/s).
    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        context.eventLoop.assumeIsolated().execute {
            self.flushPending = false
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        parser.append(&bytes)
        do {
            while let response = try parser.next() { answered(response) }
        } catch {
            failAll("the server's answer was not HTTP: \(error)")
            context.close(promise: nil)
        }
    }

    private func answered(_ response: HTTPResponseParser.Response) {
        guard waitingStart < waiting.count else { return }
        let slot = waiting[waitingStart].slot
        waitingStart += 1
        if waitingStart > 1_024, waitingStart * 2 > waiting.count {
            waiting.removeFirst(waitingStart)
            timedOutThrough = max(0, timedOutThrough - waitingStart)
            waitingStart = 0
        }
        slot.resolve(
            .success(
                HTTPReply(status: response.status, body: response.body, retryAfterSeconds: response.retryAfterSeconds)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let response = try? parser.finish() { answered(response) }
        failAll("the server closed the connection")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll("connection error: \(error)")
        context.close(promise: nil)
    }

    private func failAll(_ message: String) {
        let pending = waiting[waitingStart...]
        waiting = []
        waitingStart = 0
        timedOutThrough = 0
        for (slot, _, _) in pending { slot.resolve(.failure(HTTPClientError(kind: .connection, message: message))) }
    }
}
