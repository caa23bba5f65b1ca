// The HTTP lanes against a server that counts what it sees: buyers with requests out at once
// are on connections of their own (a connection never carries a second request before the
// first is answered), connections are reused between buyers, and a request that waited for a
// free connection at the bound has that wait recorded as the harness's, apart from the time
// the server took.
import Engine
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LoadGen

@Suite struct HTTPLaneTests {
    /// Answers every request `409 sold_out` after `delay`, and counts: requests, the
    /// connections they came on, and any request that arrived on a connection whose previous
    /// request was not answered yet (pipelining).
    final class CountingServer: Sendable {
        let requests = Atomic<Int>(0)
        let overlapping = Atomic<Int>(0)
        let connections = Atomic<Int>(0)
        let mostAnswering = Atomic<Int>(0)
        let answering = Atomic<Int>(0)
        let delay: TimeAmount
        private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        private let channel = Mutex<(any Channel)?>(nil)

        init(delay: TimeAmount) { self.delay = delay }

        func start() async throws -> Int {
            let bound = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1_024)
                .childChannelInitializer { [self] channel in
                    connections.add(1, ordering: .relaxed)
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            channel.withLock { $0 = bound }
            return bound.localAddress!.port!
        }

        func stop() async {
            let bound = channel.withLock { $0 }
            try? await bound?.close()
            try? await group.shutdownGracefully()
        }

        static let answer =
            "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 53\r\n\r\n"
            + #"{"error":{"code":"sold_out","message":"every unit."}}"#

        /// Reads request heads (no bodies: the lanes send Content-Length: 0) and answers each.
        final class Handler: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            let server: CountingServer
            var pending = ""
            var outstanding = 0

            init(server: CountingServer) { self.server = server }

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                pending += String(buffer: unwrapInboundIn(data))
                while let end = pending.range(of: "\r\n\r\n") {
                    pending = String(pending[end.upperBound...])
                    server.requests.add(1, ordering: .relaxed)
                    if outstanding > 0 { server.overlapping.add(1, ordering: .relaxed) }
                    outstanding += 1
                    let now = server.answering.add(1, ordering: .relaxed).newValue
                    var most = server.mostAnswering.load(ordering: .relaxed)
                    while now > most {
                        let (done, seen) = server.mostAnswering.compareExchange(
                            expected: most, desired: now, ordering: .relaxed)
                        if done { break }
                        most = seen
                    }
                    let loop = context.eventLoop.assumeIsolated()
                    loop.scheduleTask(in: server.delay) {
                        self.outstanding -= 1
                        self.server.answering.subtract(1, ordering: .relaxed)
                        context.writeAndFlush(NIOAny(ByteBuffer(string: CountingServer.answer)), promise: nil)
                    }
                }
            }
        }
    }

    static func buyers(_ count: Int) -> [VirtualUser] {
        (0..<count).map { index in
            VirtualUser(
                user: UserID(index + 1), drop: 5, arrivalMicroseconds: 0,
                behaviour: Population(
                    count: count, drop: .one(0), arrival: .burst, thinkTime: .fixed(milliseconds: 1),
                    afterReserve: AfterReserve(purchase: 1, cancel: 0, abandon: 0), onRejected: .none, onError: .none),
                random: SplitMix64(seed: UInt64(index)))
        }
    }

    /// Runs `buyers` once each against `server` on one lane with at most `bound` connections.
    static func run(_ buyers: [VirtualUser], on port: Int, bound: Int) async throws -> [OperationRecord] {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let spool = HistorySpool()
        let lane = HTTPLane(
            eventLoop: group.next(), users: buyers, tokens: buyers.map { "token-\($0.user)" },
            servers: [("127.0.0.1", port)], maxConnectionsPerServer: bound, timeoutMilliseconds: 10_000,
            clock: RunClock(), stopMicroseconds: 60_000_000, live: LiveCounters(), spool: spool)
        let (outcome, figures) = await lane.run()
        try await group.shutdownGracefully()
        #expect(outcome.neverSent == 0)
        #expect(figures.connectFailures == 0 && figures.connectionsOpened <= bound)
        return try spool.all()
    }

    @Test func twoBuyersNeverShareAConnectionWhileBothHaveRequestsOut() async throws {
        let server = CountingServer(delay: .milliseconds(20))
        let port = try await server.start()
        let records = try await Self.run(Self.buyers(200), on: port, bound: 64)
        await server.stop()
        #expect(records.count == 200 && records.allSatisfy { $0.result == .rejected(.soldOut) })
        #expect(server.requests.load(ordering: .relaxed) == 200)
        #expect(server.overlapping.load(ordering: .relaxed) == 0, "no request waited behind another on its connection")
        // 200 buyers at once, at most 64 connections: exactly 64 opened and each reused, with
        // several requests out at once (on different connections, by the count above).
        #expect(server.connections.load(ordering: .relaxed) == 64)
        #expect(server.mostAnswering.load(ordering: .relaxed) >= 2)
    }

    @Test func aWaitForAFreeConnectionIsTheHarnesssNotTheServers() async throws {
        let server = CountingServer(delay: .milliseconds(50))
        let port = try await server.start()
        let records = try await Self.run(Self.buyers(3), on: port, bound: 1)
        await server.stop()
        #expect(server.connections.load(ordering: .relaxed) == 1 && server.overlapping.load(ordering: .relaxed) == 0)
        let byWait = records.sorted { $0.connectionWaitMicroseconds < $1.connectionWaitMicroseconds }
        // The first buyer opened the connection (set-up, not a wait); the others waited for it,
        // the last for two answers of 50 ms each.
        #expect(byWait[0].connectionWaitMicroseconds == 0 && byWait[0].connectMicroseconds > 0)
        #expect(byWait[1].connectionWaitMicroseconds >= 45_000 && byWait[2].connectionWaitMicroseconds >= 95_000)
        for record in records {
            // The wait is in the harness's delay, never in the server's send→answer.
            #expect(record.harnessDelayMicroseconds >= record.connectionWaitMicroseconds)
            #expect(record.sentMicroseconds >= record.intendedMicroseconds + record.connectionWaitMicroseconds)
        }
        var run = StrategyResult.empty(records: records)
        run.connections = ConnectionFigures(boundPerServer: 1, opened: 1, failedToOpen: 0)
        run.harnessThreads = 1
        let timing = TimingFigures(run, records: records)
        #expect(timing.connectionWaits == 2 && timing.connects == 1)
        #expect(timing.harnessLimited, "two of three requests held past 10 ms by the harness")
        #expect(timing.harnessLimitedBecause.first?.contains("waited for a free connection at the bound of 1") == true)
        // From the intended time the last buyer waited for two answers and its own.
        let reserve = try #require(timing.operations["reserve"])
        #expect(reserve.fromIntendedMilliseconds.max >= 145)
        #expect(reserve.withoutHarnessDelayMilliseconds.max < reserve.fromIntendedMilliseconds.max)
    }
}

extension StrategyResult {
    /// A run with only these records, for building its figures in tests.
    static func empty(records: [OperationRecord]) -> StrategyResult {
        StrategyResult(
            strategy: .actor, databaseURL: "", drops: [5], totalStock: 1,
            history: ClientHistory(records: records, startedAtEpochMicroseconds: 0, cutOff: [:]),
            loadSeconds: 1, plannedUsers: records.count, neverSent: 0, stockSamples: [],
            check: CheckReport(
                invariants: [], oversold: 0, lostWrites: 0, sold: 0, unsold: 0, dropsChecked: 1))
    }
}
