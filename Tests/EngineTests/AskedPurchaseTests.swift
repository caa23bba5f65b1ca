// A purchase asked while its hold was live, whose batch reaches the database only after the
// hold's expiry (here: the test holds the drop's row lock past it), buys the hold: the wait
// inside the server is not the buyer's (migration 9). On the real database, both strategies.
import Foundation
import TestSupport
import Testing

@testable import Engine

@Suite("purchases asked in time, on PostgreSQL") struct AskedPurchaseTests {
    @Test(arguments: Strategy.allCases)
    func aPurchaseAskedInTimeBuysTheHoldThoughItsBatchRunsAfterExpiry(strategy: Strategy) async throws {
        let url = try await TestDatabase.fresh("asked_in_time_\(strategy)")
        let pool = PostgresPool(url: url, size: 4)
        // A long grace: a loaded machine may take more than the default's second between the
        // lock's release and the purchase's batch.
        let store = PostgresStore(pool: pool, purchaseGraceMilliseconds: 30_000)
        let engine: any Inventory = strategy == .actor ? ActorEngine(store: store) : RowLockEngine(store: store)
        let drop = try await engine.createDrop(
            DropSpec(name: "Asked in time", priceCents: 100, totalStock: 2, reserveTTLMilliseconds: 1_000))
        guard case .reserved(let hold) = try await engine.reserve(drop: drop.id, user: 1) else {
            Issue.record("expected a hold")
            return
        }
        let locker = try await PostgresConnection.connect(url)
        try await locker.execute("BEGIN")
        try await locker.query("SELECT id FROM drops WHERE id = $1 FOR UPDATE", [.int64(drop.id)])
        // Another buyer's batch goes first and waits for the lock (the actor's purchase then
        // queues behind that batch in flight; rowlock's waits for the lock itself).
        let other = Task { try await engine.reserve(drop: drop.id, user: 2) }
        #expect(try await lockWaiters(url, atLeast: 1) >= 1)
        let purchase = Task {
            try await engine.purchase(drop: drop.id, user: 1, idempotencyKey: "k-1", askedAt: hold.createdAt)
        }
        if strategy == .rowlock { #expect(try await lockWaiters(url, atLeast: 2) >= 2) }
        try await waitPast(hold.expiresAt)
        try await locker.execute("ROLLBACK")
        await locker.close()

        guard case .reserved = try await other.value else {
            Issue.record("the other buyer takes the second unit")
            return
        }
        guard case .purchased(let bought, replayed: false) = try await purchase.value else {
            Issue.record("a purchase asked while the hold was live buys it")
            return
        }
        #expect(bought.reservationID == hold.id)
        #expect(bought.createdAt > hold.expiresAt, "decided after the hold's expiry")
        let asked = try #require(
            try await pool.query(
                "SELECT (extract(epoch FROM asked_at) * 1000000)::bigint AS asked FROM purchases WHERE id = $1",
                [.int64(bought.id)]
            ).first)
        #expect(try asked.int64("asked") == hold.createdAt.epochMicroseconds, "asked_at records the ask")
        await engine.shutdown()
        await pool.close()
    }

    /// The batch function's grace, for a caller that states none, is the engine's default.
    @Test func theBatchFunctionsDefaultGraceIsTheEngines() async throws {
        let url = try await TestDatabase.fresh("asked_grace_constant")
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let definition = try #require(
            try await connection.query(
                "SELECT pg_get_functiondef('stockdrop_apply_claims'::regproc) AS body"
            ).first
        ).string("body")
        #expect(definition.contains("coalesce(p_grace_ms, \(Defaults.purchaseGraceMilliseconds))"))
    }

    /// Sessions waiting for a lock, once there are `atLeast` (or after 10 s).
    private func lockWaiters(_ url: String, atLeast count: Int) async throws -> Int {
        let observer = try await PostgresConnection.connect(url)
        defer { Task { await observer.close() } }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while true {
            let waiting =
                try await observer.query(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).first?.int("n") ?? 0
            if waiting >= count || ContinuousClock.now >= deadline { return waiting }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private func waitPast(_ instant: Date) async throws {
        let seconds = instant.timeIntervalSinceNow + 0.05
        if seconds > 0 { try await Task.sleep(for: .milliseconds(Int(seconds * 1_000))) }
    }
}
