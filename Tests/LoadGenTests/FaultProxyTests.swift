// The proxy the nemesis pauses: bytes flow through it, stop while it is paused (a statement
// then meets the client's answer deadline), and flow again on resume, including on the
// connections opened during the pause.
import Engine
import Foundation
import LoadGen
import TestSupport
import Testing

@Suite struct FaultProxyTests {
    /// The acquire deadline far below connect_timeout: a waiter must give up while the holder
    /// still tries to connect, even when a loaded machine runs the timers late (a first run in
    /// a fresh clone once saw the holder's connect fail first and hand its slot on).
    static let deadlines = DatabaseDeadlines(
        connectSeconds: 4, statementMilliseconds: 500, answerMilliseconds: 1_000, acquireMilliseconds: 300)

    @Test func aPausedProxyHangsStatementsUntilTheDeadlineAndResumes() async throws {
        let url = try await TestDatabase.fresh("fault_proxy", migrated: false)
        let proxy = try await FaultProxy.start(upstream: .unixSocket(try TestDatabase.socketPath(of: url)))
        let proxied = try TestDatabase.url(url, throughPort: proxy.port)
        let connection = try await PostgresConnection.connect(proxied, deadlines: Self.deadlines)
        #expect(try await connection.query("SELECT 1 AS one").first?.int("one") == 1)

        proxy.pause()
        let started = ContinuousClock.now
        let hung = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 2 AS two") }
        #expect(hung?.kind == .timeout)
        #expect(started.duration(to: .now) >= .milliseconds(900))
        #expect(await connection.isHealthy == false)
        // A connect during the pause gives up after connect_timeout.
        await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect(proxied, deadlines: Self.deadlines)
        }
        // A pooled caller waits at most the acquire deadline for a connection in use.
        let pool = PostgresPool(url: proxied, size: 1, deadlines: Self.deadlines)
        async let holder: Void = { _ = try? await pool.query("SELECT pg_sleep(0)") }()
        try await Task.sleep(for: .milliseconds(100))
        let waitStarted = ContinuousClock.now
        let waited = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 3") }
        #expect(waited?.kind == .timeout)
        #expect(waitStarted.duration(to: .now) < .seconds(5))
        await holder

        proxy.resume()
        let fresh = try await PostgresConnection.connect(proxied, deadlines: Self.deadlines)
        #expect(try await fresh.query("SELECT 4 AS four").first?.int("four") == 4)
        #expect(try await pool.query("SELECT 5 AS five").first?.int("five") == 5)
        await fresh.close()
        await connection.close()
        await pool.close()
        await proxy.stop()
    }

    /// A batch whose answer never comes back is in doubt, whether it committed (its reply was
    /// lost) or never arrived (its connection was cut first); the drop's memory is then rebuilt
    /// from the database, so the retry's answer is what happened: the hold it made, or a new one.
    @Test func aClaimWhoseAnswerIsLostIsInDoubtAndItsRetryFindsWhatHappened() async throws {
        let url = try await TestDatabase.fresh("fault_proxy_in_doubt")
        let proxy = try await FaultProxy.start(upstream: .unixSocket(try TestDatabase.socketPath(of: url)))
        let deadlines = DatabaseDeadlines(
            connectSeconds: 2, statementMilliseconds: 500, answerMilliseconds: 1_000, acquireMilliseconds: 5_000)
        let pool = PostgresPool(url: try TestDatabase.url(url, throughPort: proxy.port), size: 2, deadlines: deadlines)
        let engine = ActorEngine(store: PostgresStore(pool: pool), owner: .unique(leaseMilliseconds: 30_000))
        let reader = try await PostgresConnection.connect(url)
        func holds(of user: UserID, on drop: DropID) async throws -> Int {
            try await reader.query(
                "SELECT count(*) AS n FROM reservations WHERE drop_id = $1 AND user_id = $2 AND status = 'ACTIVE'",
                [.int64(drop), .int64(user)]
            ).first?.int("n") ?? -1
        }
        /// A claim tried again while the drop's reload (started by the failure, perhaps on a
        /// connection the fault also broke) may still fail as unavailable: nothing applied, so
        /// tried again, as a client would.
        func retried(_ user: UserID, on drop: DropID) async throws -> ReserveOutcome {
            for _ in 0..<20 {
                do {
                    return try await engine.reserve(drop: drop, user: user)
                } catch let error as EngineError where error.code == .storeUnavailable {
                    try await Task.sleep(for: .milliseconds(300))
                }
            }
            return try await engine.reserve(drop: drop, user: user)
        }
        let drop = try await engine.createDrop(DropSpec(name: "In doubt", priceCents: 100, totalStock: 10)).id
        guard case .reserved = try await engine.reserve(drop: drop, user: 1) else {
            Issue.record("the first hold")
            return
        }

        // Applied, its reply lost.
        proxy.loseReplies()
        let lost = await #expect(throws: EngineError.self) { try await engine.reserve(drop: drop, user: 2) }
        #expect(lost?.code == .outcomeUnknown, "\(String(describing: lost))")
        proxy.resume()
        #expect(try await holds(of: 2, on: drop) == 1, "the statement reached the database and committed")
        guard case .alreadyHolding(let hold) = try await retried(2, on: drop) else {
            Issue.record("the retry finds the hold its lost answer made")
            return
        }
        #expect(hold?.userID == 2)

        // Never arrived: every connection was cut (a restarted host, not back yet) before the
        // batch went out on one of them. The client cannot tell that from a lost answer: in
        // doubt, or refused as unavailable if the break was seen before sending; either way
        // nothing was applied, and the retry makes the hold. The host stays away until the
        // check: with only the cut, a pool that had already replaced its broken connection
        // (a lease renewal or the reload found it first, seen in a full suite) sent the claim
        // on a new one, and it was made.
        proxy.dropConnections()
        proxy.pause()
        try await Task.sleep(for: .milliseconds(300))
        do {
            let outcome = try await engine.reserve(drop: drop, user: 3)
            Issue.record("a batch on a cut connection answered \(outcome)")
        } catch let error as EngineError {
            #expect([.outcomeUnknown, .storeUnavailable].contains(error.code), "\(error)")
        }
        #expect(try await holds(of: 3, on: drop) == 0, "nothing was applied")
        proxy.resume()
        let retry = try await retried(3, on: drop)
        guard case .reserved(let made) = retry else {
            let rows = try await reader.query(
                "SELECT id, user_id, status, created_at::text AS at FROM reservations WHERE drop_id = $1 ORDER BY id",
                [.int64(drop)]
            ).rows.map {
                "\(try $0.int64("id")) u\(try $0.int64("user_id")) \(try $0.string("status")) \(try $0.string("at"))"
            }
            Issue.record("the retry of a claim that never arrived makes the hold, not \(retry); rows \(rows)")
            return
        }
        let madeRows = try await holds(of: 3, on: drop)
        #expect(made.userID == 3 && madeRows == 1)

        await engine.shutdown()
        await reader.close()
        await pool.close()
        await proxy.stop()
    }
}
