// `run --dashboard`: the tally and the online invariants as values (an acknowledged oversell,
// a buyer past the limit, rows past the stock, an acknowledgement with no row: each broken
// once, with its first counterexample), the address forms, and a real run in process whose
// event stream is read as a page reads it, with an oversell planted in its database mid-run:
// its invariant turns broken in a second's frame before the final one, and the checker agrees.
import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing

@testable import LoadGen

@Suite struct DashboardTests {
    static let drop = OnlineInvariants.Drop(id: 7, name: "Sneaker", stock: 2, perUserLimit: 1)

    static func purchase(user: UserID, reservation: ReservationID, at milliseconds: Int64) -> OperationRecord {
        OperationRecord(
            operation: .purchase, result: .ok, user: user, drop: drop.id, reservationID: reservation,
            intendedMicroseconds: milliseconds * 1_000, sentMicroseconds: milliseconds * 1_000,
            answeredMicroseconds: milliseconds * 1_000 + 500)
    }

    static func status(_ invariants: OnlineInvariants, _ name: String) -> OnlineInvariants.Status? {
        invariants.all.first { $0.name == name }?.status
    }

    @Test func purchasesAcknowledgedPastTheStockOrTheLimitBreakOnceWithTheFirstCounterexample() {
        var tally = DashboardTally(drops: [Self.drop])
        var invariants = OnlineInvariants(drops: [Self.drop])
        tally.absorb(Self.purchase(user: 5, reservation: 10, at: 100))
        // A replayed purchase answers with the same reservation: one unit, not two.
        tally.absorb(Self.purchase(user: 5, reservation: 10, at: 150))
        tally.absorb(Self.purchase(user: 6, reservation: 11, at: 200))
        invariants.judge(tally, rows: nil, atSeconds: 0.3)
        #expect(!invariants.anyBroken)
        tally.absorb(Self.purchase(user: 5, reservation: 12, at: 300))
        invariants.judge(tally, rows: nil, atSeconds: 0.4)
        guard case .broken(let oversold, let at) = Self.status(invariants, InvariantName.noOversell) else {
            Issue.record("a third purchase of two units is an oversell")
            return
        }
        #expect(oversold == "drop 7 (Sneaker): 3 purchases acknowledged to buyers by 0.3 s, stock 2")
        #expect(at == 0.3005)
        guard case .broken(let pastLimit, _) = Self.status(invariants, InvariantName.perUserLimits) else {
            Issue.record("a second purchase of one buyer past a limit of 1 breaks the limit")
            return
        }
        #expect(pastLimit == "user 5 on drop 7 (Sneaker): 2 purchases acknowledged by 0.3 s, limit 1")
        tally.absorb(Self.purchase(user: 8, reservation: 13, at: 900))
        invariants.judge(tally, rows: nil, atSeconds: 1)
        #expect(
            Self.status(invariants, InvariantName.noOversell) == .broken(counterexample: oversold, atSeconds: 0.3005))
        #expect(Self.status(invariants, InvariantName.acknowledgedWritesDurable) == .holds)
        #expect(Self.status(invariants, InvariantName.holdsExpire) == .judgedAtTheEnd)
    }

    @Test func rowsPastTheStockAndAnAcknowledgementWithoutItsRowBreakTheirInvariants() {
        var invariants = OnlineInvariants(drops: [Self.drop])
        let fine = RowFacts(
            drops: [.init(counters: .init(id: 7, totalStock: 2, sold: 1, reserved: 1), purchasedRows: 1, heldRows: 1)],
            buyersPastRule: [], missing: [], atSeconds: 1)
        invariants.judge(DashboardTally(drops: [Self.drop]), rows: fine, atSeconds: 1)
        #expect(!invariants.anyBroken)
        let acknowledged = DashboardTally.Acknowledged(
            reservation: 44, user: 9, drop: 7, answeredMicroseconds: 1_500_000)
        let bad = RowFacts(
            drops: [.init(counters: .init(id: 7, totalStock: 2, sold: 1, reserved: 1), purchasedRows: 1, heldRows: 2)],
            buyersPastRule: [.init(drop: 7, user: 9, purchased: 0, holding: 2, perUserLimit: 1)],
            missing: [.init(acknowledged: acknowledged, operation: .purchase, status: "EXPIRED")], atSeconds: 2)
        invariants.judge(DashboardTally(drops: [Self.drop]), rows: bad, atSeconds: 2)
        #expect(
            Self.status(invariants, InvariantName.noOversell)
                == .broken(
                    counterexample: "drop 7 (Sneaker): 1 purchased + 2 held in its rows at 2.0 s, stock 2", atSeconds: 2
                ))
        #expect(
            Self.status(invariants, InvariantName.perUserLimits)
                == .broken(
                    counterexample: "user 9 on drop 7 (Sneaker) in the rows at 2.0 s: 2 live holds at once",
                    atSeconds: 2))
        #expect(
            Self.status(invariants, InvariantName.acknowledgedWritesDurable)
                == .broken(
                    counterexample:
                        "reservation 44: a purchase acknowledged to user 9 at 1.5 s, its row is EXPIRED at 2.0 s",
                    atSeconds: 2))
    }

    @Test func lookupsFailedAreAskedAgainNextSecond() {
        var tally = DashboardTally(drops: [Self.drop])
        for reservation: Int64 in 1...3 {
            tally.absorb(Self.purchase(user: reservation, reservation: reservation, at: 1))
        }
        let first = tally.takeUnconfirmed(limit: 2)
        #expect(first.purchases.map(\.reservation) == [1, 2])
        tally.giveBack(holds: first.holds, purchases: first.purchases)
        #expect(tally.takeUnconfirmed(limit: 10).purchases.map(\.reservation) == [1, 2, 3])
        #expect(tally.takeUnconfirmed(limit: 10).purchases.isEmpty)
    }

    @Test func aTickNamesTheCommonestErrorCause() async throws {
        let board = LiveBoard(scenario: "causes")
        board.begin(strategy: .actor, drops: [Self.drop], plannedUsers: 1)
        let frames = board.subscribe()
        var counters = CounterReading(arrived: 1, sent: 3, ok: 0, rejected: 0, errors: 3, reserved: 0)
        counters.commonestError = "429 rate_limited"
        board.tick(
            ProgressTick(elapsedSeconds: 1, counters: counters, sentPerSecond: 3, availableStock: 2), rows: nil)
        var iterator = frames.makeAsyncIterator()
        var frame: DashboardFrame?
        while let json = await iterator.next() {
            let decoded = try JSONDecoder().decode(DashboardFrame.self, from: Data(json.utf8))
            if decoded.kind == .tick {
                frame = decoded
                break
            }
        }
        #expect(frame?.commonestError == "429 rate_limited")
    }

    @Test func addressesDefaultToLoopback() {
        #expect(DashboardServer.parseAddress("5665")! == ("127.0.0.1", 5665))
        #expect(DashboardServer.parseAddress(":0")! == ("127.0.0.1", 0))
        #expect(DashboardServer.parseAddress("0.0.0.0:5665")! == ("0.0.0.0", 5665))
        #expect(DashboardServer.parseAddress("[::1]:5665")! == ("::1", 5665))
        for bad in ["", "host:", "host:99999", "::1:80", "[::1]", "a:b"] {
            #expect(DashboardServer.parseAddress(bad) == nil, "\(bad)")
        }
    }

    /// A page's view of `/events`: every frame, in order, until the final one.
    static func readEvents(_ url: String, onFrame: @Sendable (DashboardFrame) async throws -> Void) async throws {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(120))
        #expect(response.headers.first(name: "content-type") == "text/event-stream")
        var pending = ""
        for try await chunk in response.body {
            pending += String(buffer: chunk)
            while let end = pending.range(of: "\n\n") {
                let event = pending[..<end.lowerBound]
                pending = String(pending[end.upperBound...])
                guard event.hasPrefix("data: ") else { continue }
                let frame = try JSONDecoder().decode(DashboardFrame.self, from: Data(event.dropFirst(6).utf8))
                try await onFrame(frame)
                if frame.kind == .final { return }
            }
        }
    }

    static let scenario = """
        name: dashboard
        seed: 3
        drops:
          - {name: Live Sneaker, priceCents: 100, stock: 20, reserveTTL: 400ms}
          - {name: Live Hoodie, priceCents: 100, stock: 5, perUserLimit: 1, reserveTTL: 300ms}
        users:
          - count: 600
            drop: Live Sneaker
            arrival: {rate: {perSecond: 100, for: 6s}}
            afterReserve: {purchase: 0.5, cancel: 0.2, abandon: 0.3}
          - count: 100
            drop: Live Hoodie
            arrival: burst
            thinkTime: {uniform: [5ms, 50ms]}
            afterReserve: {purchase: 0.7, cancel: 0.1, abandon: 0.2}
            onRejected: {retries: 3, backoff: 50ms}
        limits: {maxDuration: 15s}
        """

    /// A run of `scenario` in process with a dashboard, its event stream read as a page reads
    /// it (`onFrame` sees each frame as it comes, with the run's database): every frame, and
    /// the run's outcome. The final frame is the one the command sends (`finish`).
    static func watchedRun(
        _ name: String, strategy: Strategy,
        onFrame: @escaping @Sendable (DashboardFrame, PostgresPool) async throws -> Void = { _, _ in }
    ) async throws -> (frames: [DashboardFrame], outcome: RunOutcome) {
        let url = try await TestDatabase.fresh(name)
        let scenario = try ScenarioParser.parse(yaml: Self.scenario, file: "dashboard.yaml").get()
        let board = LiveBoard(scenario: scenario.name)
        let server = try await DashboardServer.start(host: "127.0.0.1", port: 0, board: board)
        var options = RunOptions(strategies: [strategy], databaseURL: url)
        options.board = board
        let run = Task { try await LoadRunner.run(scenario, options: options) { _, _ in } }
        let pool = PostgresPool(url: url, size: 1)
        let seen = Mutex<[DashboardFrame]>([])
        let reader = Task {
            try await Self.readEvents(server.url + "events") { frame in
                seen.withLock { $0.append(frame) }
                try await onFrame(frame, pool)
            }
        }
        do {
            let outcome = try await run.value
            board.finish(outcome.report, reportPath: "reports/x/report.html")
            try await reader.value
            await pool.close()
            // A page that connects after the end is sent every frame, the final one last.
            var replay: [String] = []
            for await frame in board.subscribe() { replay.append(frame) }
            #expect(replay.count == seen.withLock { $0.count })
            await server.stop()
            return (seen.withLock { $0 }, outcome)
        } catch {
            // Nothing left running behind a failed test.
            board.finish(failure: "\(error)")
            reader.cancel()
            await pool.close()
            await server.stop()
            throw error
        }
    }

    @Test(arguments: Strategy.allCases)
    func aCleanRunRaisesNoAlarm(strategy: Strategy) async throws {
        let (frames, outcome) = try await Self.watchedRun("dashboard_clean_\(strategy.rawValue)", strategy: strategy)
        let ticks = frames.filter { $0.kind == .tick }
        // About one a second of the 6 s run, but the board's clock is the wall's: a loaded
        // machine (the whole suite on two cores) has given this run 3. What is judged is every
        // tick there was, so it takes two, not a count of seconds.
        #expect(ticks.count >= 2)
        for tick in ticks {
            #expect(
                tick.invariants.allSatisfy { $0.status != "broken" }, "\(tick.elapsedSeconds) s: \(tick.invariants)")
        }
        #expect(outcome.report.strategies[0].invariantsBroken == 0)
        #expect(frames.last?.invariants.allSatisfy { $0.status == "holds" } == true, "\(frames.last?.invariants ?? [])")
        // Acknowledgements were looked up as they came: at some tick, none was waiting but the
        // last moments' (at most twice its last second's acknowledgements). A tick with none
        // waiting at all is not a loaded machine's to promise: the rowlock baseline on the fresh
        // clone's first suite answered until the load's end, and no tick saw zero. The last
        // answers are covered by the checker's verdict in the final frame.
        #expect(
            ticks.contains { tick in
                let lastSecond = ["reserve", "purchase"].reduce(0) { $0 + (tick.requestsPerSecond[$1]?["ok"] ?? 0) }
                return tick.unconfirmed <= 2 * lastSecond
            } && ticks.allSatisfy { $0.unconfirmed < 1_000 }, "\(ticks.map(\.unconfirmed))")
        // Holds were granted, so the rows and acknowledgements had something to judge (the
        // rowlock baseline on a loaded machine may see every purchase refused `expired`).
        #expect(ticks.contains { ($0.requestsTotal["reserve"]?["ok"] ?? 0) > 0 })
    }

    @Test func aPlantedOversellTurnsItsInvariantBrokenWhileTheRunGoes() async throws {
        let planted = Mutex(false)
        let (frames, outcome) = try await Self.watchedRun("dashboard_planted", strategy: .actor) { frame, pool in
            // About a second into the load, units that nobody sold appear in the rows.
            guard frame.kind == .tick, frame.users.arrived > 0, !planted.withLock({ $0 }) else { return }
            planted.withLock { $0 = true }
            try await pool.query(
                """
                INSERT INTO reservations (drop_id, user_id, status, expires_at)
                SELECT $1, 9000000 + n, 'ACTIVE', now() + interval '1 hour' FROM generate_series(1, 21) AS n
                """, [.int64(frame.drops[0].id)])
        }
        let ticks = frames.filter { $0.kind == .tick }
        #expect(ticks.count >= 3)
        #expect(zip(ticks, ticks.dropFirst()).allSatisfy { $0.elapsedSeconds < $1.elapsedSeconds })
        #expect(ticks.last?.users.arrived == 700 && ticks.last?.users.planned == 700)
        #expect(
            ticks.contains {
                ($0.requestsTotal["reserve"]?["ok"] ?? 0) > 0 && $0.latencyMilliseconds["all"]?.total != nil
            })
        #expect(ticks.contains { $0.drops[0].sold ?? 0 > 0 })
        let brokenTick = try #require(
            ticks.first { $0.invariants.contains { $0.name == InvariantName.noOversell && $0.status == "broken" } },
            "no second's frame showed the planted oversell")
        let oversell = try #require(brokenTick.invariants.first { $0.name == InvariantName.noOversell })
        #expect(oversell.counterexample?.contains("held in its rows") == true, "\(oversell)")
        #expect(
            brokenTick.invariants.first { $0.name == InvariantName.holdsExpire }?.status == "judged at the end")
        // Seen while buyers were still arriving (the plant came a second in, arrivals go on for 6).
        #expect(brokenTick.users.arrived < 700, "the break showed only after the load: \(brokenTick.elapsedSeconds) s")
        // No false alarm: before the plant every invariant held, and the two the plant does not
        // touch held all along.
        let plantedAt = try #require(ticks.firstIndex { $0.users.arrived > 0 })
        for tick in ticks[...plantedAt] {
            #expect(tick.invariants.allSatisfy { $0.status != "broken" }, "\(tick.invariants)")
        }
        for tick in ticks {
            for name in [InvariantName.perUserLimits, InvariantName.acknowledgedWritesDurable] {
                #expect(
                    tick.invariants.first { $0.name == name }?.status == "holds", "\(name) at \(tick.elapsedSeconds) s")
            }
        }
        #expect(ticks.contains { $0.unconfirmed == 0 } && ticks.allSatisfy { $0.unconfirmed < 1_000 })
        // The checker at the end says the same, and the stream's last frame carries its verdict
        // and the report the page turns into.
        #expect(outcome.report.exitCode == ExitStatus.invariantBroken)
        let final = try #require(frames.last)
        #expect(final.kind == .final && final.verdict?.exitCode == ExitStatus.invariantBroken)
        #expect(final.reportHTML?.contains("<svg") == true)
        #expect(final.invariants.contains { $0.name == InvariantName.noOversell && $0.status == "broken" })
    }

    @Test func aPortInUseIsAUsageErrorBeforeAnyLoad() async throws {
        let holder = try await DashboardServer.start(host: "127.0.0.1", port: 0, board: LiveBoard(scenario: "holder"))
        let (exit, output) = try await VerdictFileTests.run(
            VerdictFileTests.binary,
            ["run", "scenarios/ci.yaml", "--strategy", "actor", "--dashboard", "127.0.0.1:\(holder.port)"])
        await holder.stop()
        #expect(exit == .exited(ExitStatus.usage), "\(output)")
        #expect(output.contains("--dashboard: cannot listen on 127.0.0.1:\(holder.port)"), "\(output)")
        #expect(!output.contains("report:"), "no load was sent: \(output)")
    }
}
