import DequeModule
// One event loop's share of a run's users over HTTP, as one wrk thread drives its connections:
// the users' schedule, their connections and their answers all live on that loop, so a
// request costs no task, no continuation and no hop between threads (those hops were most of
// the generator's CPU when every request was a task writing to a pipelined connection).
//
// A user's request never waits behind another user's: it takes an idle connection to its
// server, or opens one while the lane is under its bound, and the connection carries nothing
// else until the answer is read (no pipelining). Past the bound the request queues for the
// next free connection; that wait is the harness's own and is recorded as such. Opening a
// connection is part of the request that needed it, and is recorded apart too.
import Engine
import Foundation
import HeapModule
import NIOCore
import NIOPosix

/// Lane state is touched only on `eventLoop` (every entry point hops there or is called
/// from a handler of one of its channels), so it needs no lock.
final class HTTPLane: @unchecked Sendable {
    struct Server {
        let host: String
        let port: Int
        /// `Host: …\r\nAuthorization: Bearer ` and the like, written once per request.
        let hostHeader: String
        let maxConnections: Int
        /// Connections open or opening.
        var open = 0
        var connecting = 0
        var idle: [LaneConnection] = []
        /// Requests waiting for a connection (the bound reached, or too many connects out).
        var waiting: Deque<LaneRequest> = []
    }

    let eventLoop: any EventLoop
    private let clock: RunClock
    private let stopMicroseconds: Int64
    private let timeoutMicroseconds: Int64
    private let live: LiveCounters
    private let spool: HistorySpool
    private var users: [VirtualUser]
    private let tokens: [String]
    private var due = Heap<UserScheduler.Due>()
    private var finished = 0
    private var servers: [Server]
    /// Connections with a request out, for the deadline sweep (swap-removed by index).
    private var busy: [LaneConnection] = []
    private var timer: Scheduled<Void>?
    private var timerAtMicroseconds = Int64.max
    private var sweep: RepeatedTask?
    private let done: EventLoopPromise<UserScheduler.Outcome>
    private var figures = LaneFigures()
    /// The lane's thread's CPU time when it started, to charge the lane's own work.
    private var threadCPUAtStart: Int64 = 0

    init(
        eventLoop: any EventLoop, users: [VirtualUser], tokens: [String], servers: [(host: String, port: Int)],
        maxConnectionsPerServer: Int, timeoutMilliseconds: Int, clock: RunClock, stopMicroseconds: Int64,
        live: LiveCounters, spool: HistorySpool
    ) {
        precondition(users.count == tokens.count && !servers.isEmpty)
        self.eventLoop = eventLoop
        self.users = users
        self.tokens = tokens
        self.servers = servers.map {
            Server(
                host: $0.host, port: $0.port, hostHeader: "\($0.host):\($0.port)",
                maxConnections: max(1, maxConnectionsPerServer))
        }
        self.timeoutMicroseconds = Int64(timeoutMilliseconds) * 1_000
        self.clock = clock
        self.stopMicroseconds = stopMicroseconds
        self.live = live
        self.spool = spool
        self.done = eventLoop.makePromise()
    }

    /// Runs every user of the lane to the end (or the stop), then closes its connections.
    func run() async -> (UserScheduler.Outcome, LaneFigures) {
        eventLoop.execute { self.start() }
        let outcome = (try? await done.futureResult.get()) ?? UserScheduler.Outcome()
        let figures = try? await eventLoop.submit { () -> LaneFigures in
            self.closeAll()
            self.figures.threadCPUMicroseconds = ProcessLimits.threadCPUMicroseconds() - self.threadCPUAtStart
            return self.figures
        }.get()
        return (outcome, figures ?? LaneFigures())
    }

    private func start() {
        threadCPUAtStart = ProcessLimits.threadCPUMicroseconds()
        let (first, finishedAtStart) = UserScheduler.firstRequests(&users, stopMicroseconds: stopMicroseconds)
        due = Heap(first)
        finished = finishedAtStart
        sweep = eventLoop.scheduleRepeatedTask(
            initialDelay: LoadDefaults.httpDeadlineSweep, delay: LoadDefaults.httpDeadlineSweep
        ) { [self] _ in sweepDeadlines() }
        checkDone()
        pump()
    }

    // MARK: - The schedule

    /// Sends every request that is due, then sleeps until the next one is.
    private func pump() {
        let now = clock.nowMicroseconds
        while let next = due.min, next.atMicroseconds <= now {
            due.removeMin()
            dispatch(next, now: now)
        }
        guard let next = due.min else { return }
        // Woken on tick boundaries: the requests due within a tick leave together, and a
        // timer (a syscall and a wake-up) per request would cost more than the request.
        let tick = Int64(LoadDefaults.schedulerTickMicroseconds)
        let wake = max((next.atMicroseconds + tick - 1) / tick * tick, now + 1)
        guard wake < timerAtMicroseconds || timer == nil else { return }
        timer?.cancel()
        timerAtMicroseconds = wake
        timer = eventLoop.scheduleTask(in: .microseconds(wake - now)) { [self] in
            timer = nil
            timerAtMicroseconds = .max
            pump()
        }
    }

    private func dispatch(_ entry: UserScheduler.Due, now: Int64) {
        let index = Int(entry.index)
        if users[index].arrive() { live.arrived.add(1, ordering: .relaxed) }
        let request = LaneRequest(
            index: entry.index, operation: entry.operation, intendedMicroseconds: entry.atMicroseconds,
            readyMicroseconds: now)
        let server = serverIndex(of: users[index].user)
        // First come, first served: a request never overtakes one already waiting.
        servers[server].waiting.append(request)
        serveWaiting(server, now: now)
    }

    /// Users are spread over the servers by id, as `HTTPTarget.pool(for:)` does, so a user's
    /// requests all reach one instance.
    private func serverIndex(of user: UserID) -> Int {
        Int(UInt64(bitPattern: user) % UInt64(servers.count))
    }

    // MARK: - Connections

    /// Why a connect failed, in the system's words (`Connection refused`), not NIO's nested
    /// description of every attempt: the report shows it as the cause's example.
    static func connectFailure(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError, let last = error.connectionErrors.last?.error {
            return connectFailure(last)
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        return "\(error)"
    }

    private func connect(_ server: Int, for request: LaneRequest, now: Int64) {
        servers[server].open += 1
        servers[server].connecting += 1
        figures.connectionsOpened += 1
        let connection = LaneConnection(lane: self, server: server)
        var waited = request
        waited.waitMicroseconds = now - request.readyMicroseconds
        let request = waited
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.microseconds(timeoutMicroseconds))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LaneResponseHandler(connection: connection))
                }
            }
            .connect(host: servers[server].host, port: servers[server].port)
            .whenComplete { [self] result in
                servers[server].connecting -= 1
                let connected = clock.nowMicroseconds
                var request = request
                request.connectMicroseconds = max(1, connected - now)
                switch result {
                case .success(let channel):
                    connection.channel = channel
                    send(request, on: connection, now: connected)
                    // A slot for another connect is free: requests waiting may take it.
                    serveWaiting(server, now: connected)
                case .failure(let error):
                    servers[server].open -= 1
                    figures.connectFailures += 1
                    // Never written: nothing can have been applied.
                    let reply = LaneReply.failed(
                        "cannot connect to \(servers[server].hostHeader): \(Self.connectFailure(error))")
                    finish(request, reply, sentMicroseconds: connected, now: connected)
                    serveWaiting(server, now: connected)
                    pump()
                }
            }
    }

    private func send(_ request: LaneRequest, on connection: LaneConnection, now: Int64) {
        guard let channel = connection.channel, !connection.retired else {
            // It closed while idle: forget it and try again for this request.
            retire(connection)
            dispatchAgain(request, now: now)
            return
        }
        var request = request
        if request.connectMicroseconds == 0 { request.waitMicroseconds = now - request.readyMicroseconds }
        let index = Int(request.index)
        connection.request = request
        connection.sentMicroseconds = now
        connection.busyIndex = busy.count
        busy.append(connection)
        live.sent.add(1, ordering: .relaxed)
        var bytes = channel.allocator.buffer(capacity: 160 + tokens[index].utf8.count)
        ClaimRequestBytes.write(
            request.operation, drop: users[index].drop, idempotencyKey: users[index].idempotencyKey,
            host: servers[connection.server].hostHeader, token: tokens[index], into: &bytes)
        channel.writeAndFlush(bytes, promise: nil)
    }

    /// A request whose connection went away before it was written goes through dispatch again
    /// (it keeps its ready time, so any further wait is still counted).
    private func dispatchAgain(_ request: LaneRequest, now: Int64) {
        let server = serverIndex(of: users[Int(request.index)].user)
        servers[server].waiting.prepend(request)
        serveWaiting(server, now: now)
    }

    /// A connection is free (or a slot to open one): the longest-waiting request takes it.
    private func serveWaiting(_ server: Int, now: Int64) {
        while !servers[server].waiting.isEmpty {
            if let connection = servers[server].idle.popLast() {
                send(servers[server].waiting.removeFirst(), on: connection, now: now)
            } else if servers[server].open < servers[server].maxConnections,
                servers[server].connecting < LoadDefaults.httpConnectsInFlight
            {
                connect(server, for: servers[server].waiting.removeFirst(), now: now)
            } else {
                return
            }
        }
    }

    private func release(_ connection: LaneConnection, now: Int64) {
        let server = connection.server
        if let waiting = servers[server].waiting.popFirst() {
            send(waiting, on: connection, now: now)
        } else {
            servers[server].idle.append(connection)
        }
    }

    private func retire(_ connection: LaneConnection) {
        guard !connection.retired else { return }
        connection.retired = true
        servers[connection.server].open -= 1
        if let position = servers[connection.server].idle.firstIndex(where: { $0 === connection }) {
            servers[connection.server].idle.remove(at: position)
        }
        connection.channel?.close(promise: nil)
    }

    private func removeFromBusy(_ connection: LaneConnection) {
        let position = connection.busyIndex
        guard position >= 0, position < busy.count, busy[position] === connection else { return }
        let last = busy.removeLast()
        if position < busy.count {
            busy[position] = last
            last.busyIndex = position
        }
        connection.busyIndex = -1
    }

    // MARK: - Answers

    /// A whole response arrived on `connection`.
    func answered(_ connection: LaneConnection, _ response: HTTPResponseParser.Response) {
        let now = clock.nowMicroseconds
        guard let request = connection.request else {
            // Nothing was asked: a server's parting answer (a 408 on an idle connection, say).
            retire(connection)
            serveWaiting(connection.server, now: now)
            return
        }
        connection.request = nil
        removeFromBusy(connection)
        finish(request, .response(response), sentMicroseconds: connection.sentMicroseconds, now: now)
        if response.keepAlive {
            release(connection, now: now)
        } else {
            retire(connection)
            serveWaiting(connection.server, now: now)
        }
        pump()
    }

    /// The connection closed or broke; a request it carried may or may not have been applied.
    func lost(_ connection: LaneConnection, _ reason: String) {
        let now = clock.nowMicroseconds
        if let request = connection.request {
            connection.request = nil
            removeFromBusy(connection)
            finish(request, .indeterminate(reason), sentMicroseconds: connection.sentMicroseconds, now: now)
        }
        retire(connection)
        serveWaiting(connection.server, now: now)
        pump()
    }

    private func sweepDeadlines() {
        let now = clock.nowMicroseconds
        var index = 0
        while index < busy.count {
            let connection = busy[index]
            guard now - connection.sentMicroseconds >= timeoutMicroseconds, let request = connection.request else {
                index += 1
                continue
            }
            // Its answer may still come: the connection cannot carry another request now.
            connection.request = nil
            removeFromBusy(connection)
            finish(request, .timeout, sentMicroseconds: connection.sentMicroseconds, now: now)
            retire(connection)
            serveWaiting(connection.server, now: now)
        }
        pump()
    }

    /// Records what the user saw, and steps it to its next request.
    private func finish(_ request: LaneRequest, _ reply: LaneReply, sentMicroseconds: Int64, now: Int64) {
        let index = Int(request.index)
        let answer: Answer
        switch reply {
        case .response(let response):
            answer = HTTPTarget.answer(
                request.operation, status: response.status, body: response.body,
                retryAfterSeconds: response.retryAfterSeconds)
        case .failed(let reason): answer = .failure(.failed, ErrorCause("cannot connect", reason))
        case .indeterminate(let reason): answer = .failure(.error, ErrorCause("connection lost", reason))
        case .timeout:
            answer = .failure(.timeout, ErrorCause("timeout", "no answer within \(timeoutMicroseconds / 1_000) ms"))
        }
        live.record(answer, request.operation)
        let record = OperationRecord(
            operation: request.operation, result: answer.result, user: users[index].user, drop: users[index].drop,
            reservationID: answer.reservationID, purchaseID: answer.purchaseID,
            intendedMicroseconds: request.intendedMicroseconds, sentMicroseconds: sentMicroseconds,
            answeredMicroseconds: now, connectMicroseconds: request.connectMicroseconds,
            connectionWaitMicroseconds: request.waitMicroseconds)
        live.latency(record)
        spool.append(record)
        switch users[index].answered(answer, nowMicroseconds: now, stopMicroseconds: stopMicroseconds) {
        case .send(let operation, let at):
            due.insert(UserScheduler.Due(atMicroseconds: at, index: request.index, operation: operation))
        case .finished:
            finished += 1
            checkDone()
        }
    }

    private func checkDone() {
        guard finished == users.count else { return }
        done.succeed(UserScheduler.outcome(of: users))
    }

    private func closeAll() {
        timer?.cancel()
        sweep?.cancel()
        for server in servers.indices {
            for connection in servers[server].idle { connection.channel?.close(promise: nil) }
            servers[server].idle = []
        }
        for connection in busy { connection.channel?.close(promise: nil) }
        busy = []
    }
}

/// What a lane counted of its connections.
struct LaneFigures: Sendable, Equatable {
    var connectionsOpened = 0
    var connectFailures = 0
    /// CPU time of the lane's own thread over its run.
    var threadCPUMicroseconds: Int64 = 0

    static func + (a: LaneFigures, b: LaneFigures) -> LaneFigures {
        LaneFigures(
            connectionsOpened: a.connectionsOpened + b.connectionsOpened,
            connectFailures: a.connectFailures + b.connectFailures,
            threadCPUMicroseconds: a.threadCPUMicroseconds + b.threadCPUMicroseconds)
    }
}

/// One request on its way: whose, what, and the times the record needs.
struct LaneRequest {
    let index: Int32
    let operation: OperationKind
    let intendedMicroseconds: Int64
    /// When the lane took it off the schedule (late by its own delay if after `intended`).
    let readyMicroseconds: Int64
    /// Spent opening the connection it went out on (0: an open one was free).
    var connectMicroseconds: Int64 = 0
    /// Spent waiting for a free connection at the bound: the harness's time.
    var waitMicroseconds: Int64 = 0
}

enum LaneReply {
    case response(HTTPResponseParser.Response)
    /// Never written (the connection could not be made).
    case failed(String)
    /// Written, and the connection went away before the answer.
    case indeterminate(String)
    case timeout
}

/// A keep-alive connection of a lane, with at most one request out.
final class LaneConnection: @unchecked Sendable {
    /// Strong: a channel's last events (its close) may come after the lane's run ended.
    let lane: HTTPLane
    let server: Int
    var channel: (any Channel)?
    var parser = HTTPResponseParser()
    var request: LaneRequest?
    var sentMicroseconds: Int64 = 0
    var busyIndex = -1
    var retired = false

    init(lane: HTTPLane, server: Int) {
        self.lane = lane
        self.server = server
    }
}

/// Reads a lane connection's bytes into responses and hands each to the lane.
final class LaneResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let connection: LaneConnection
    private var lost = false

    init(connection: LaneConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        connection.parser.append(&bytes)
        do {
            while let response = try connection.parser.next() {
                connection.lane.answered(connection, response)
            }
        } catch {
            gone("the server's answer was not HTTP: \(error)")
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let response = try? connection.parser.finish() {
            connection.lane.answered(connection, response)
        }
        gone("the server closed the connection")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        gone("connection error: \(error)")
        context.close(promise: nil)
    }

    private func gone(_ reason: String) {
        guard !lost else { return }
        lost = true
        connection.lane.lost(connection, reason)
    }
}
