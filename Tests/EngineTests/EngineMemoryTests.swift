import Foundation
import TestSupport
import Testing

// The engine's memory against the real database: every bug here left memory answering what
// PostgreSQL would not (a wedged drop, holds no one sweeps after a restart, a reload that
// read a half-written drop, a reply decoded with made-up defaults).
@testable import Engine

@Suite("engine memory on PostgreSQL") struct EngineMemoryTests {
    private func engine(
        _ strategy: Strategy, url: String, idleSweepSeconds: TimeInterval = 1
    ) -> (any Inventory, PostgresPool) {
        let pool = PostgresPool(url: url, size: 4)
        let store = PostgresStore(pool: pool)
        switch strategy {
        case .actor: return (ActorEngine(store: store, idleSweepInterval: idleSweepSeconds), pool)
        case .rowlock: return (RowLockEngine(store: store), pool)
        }
    }

    private func activeHolds(_ url: String, drop: DropID) async throws -> (rows: Int, counter: Int) {
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let row = try #require(
            try await connection.query(
                """
                SELECT (SELECT count(*) FROM reservations WHERE drop_id = $1 AND status = 'ACTIVE') AS active, reserved
                FROM drops WHERE id = $1
                """, [.int64(drop)]
            ).first)
        return (try row.int("active"), try row.int("reserved"))
    }

    /// Sessions of the database at `url` waiting for a lock, once there are `atLeast` (or after
    /// 10 s): the event a test waits for before it lets the lock go, so it proves the wait
    /// happened.
    private func sessionsWaitingOnALock(_ url: String, atLeast count: Int = 1) async throws -> Int {
        let observer = try await PostgresConnection.connect(url)
        defer { Task { await observer.close() } }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while true {
            let waiting =
                try await observer.query(
                    """
                    SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                    """
                ).first?.int("n") ?? 0
            if waiting >= count || ContinuousClock.now >= deadline { return waiting }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits (bounded) until the wall clock passes `instant`: holds expire by the database's
    /// clock, which no test can move.
    private func waitPast(_ instant: Date) async throws {
        let seconds = instant.timeIntervalSinceNow + 0.05
        if seconds > 0 { try await Task.sleep(for: .milliseconds(Int(seconds * 1_000))) }
    }

    /// The wedged drop, end to end: a key spent on drop A reused on drop B is refused with its
    /// own code; the hold on B can still be cancelled, and a hold left to expire frees its unit
    /// for the next buyer instead of staying "reserved" for good. The hold lasts 8 s: 2 s ran
    /// out before the cancel in a fresh clone's first run, every suite at once on two cores.
    @Test(arguments: Strategy.allCases) func aKeyReusedOnAnotherDropNeverWedgesIt(strategy: Strategy) async throws {
        let url = try await TestDatabase.fresh("memory_key_reuse_\(strategy)")
        let (inventory, pool) = engine(strategy, url: url)
        let a = try await inventory.createDrop(DropSpec(name: "A", priceCents: 100, totalStock: 1))
        let b = try await inventory.createDrop(
            DropSpec(name: "B", priceCents: 100, totalStock: 1, reserveTTLMilliseconds: 8_000))
        _ = try await inventory.reserve(drop: a.id, user: 1)
        guard case .purchased = try await inventory.purchase(drop: a.id, user: 1, idempotencyKey: "order-1") else {
            Issue.record("the first purchase")
            return
        }
        _ = try await inventory.reserve(drop: b.id, user: 1)
        #expect(try await inventory.purchase(drop: b.id, user: 1, idempotencyKey: "order-1") == .idempotencyKeyReused)
        guard case .cancelled = try await inventory.cancel(drop: b.id, user: 1) else {
            Issue.record("the hold stays cancellable")
            return
        }
        guard case .reserved(let hold) = try await inventory.reserve(drop: b.id, user: 1) else {
            Issue.record("the unit came back")
            return
        }
        #expect(try await inventory.purchase(drop: b.id, user: 1, idempotencyKey: "order-1") == .idempotencyKeyReused)
        // An unbought hold keeps its unit the purchase grace past its expiry.
        try await waitPast(Reservation.graceEnds(createdAt: hold.createdAt, expiresAt: hold.expiresAt))
        guard case .reserved = try await inventory.reserve(drop: b.id, user: 2) else {
            Issue.record("an expired hold must free its unit for the next buyer")
            return
        }
        await inventory.shutdown()
        await pool.close()
    }

    /// After a restart, a drop no request touches still has its overdue holds swept, so its
    /// reads stop showing them as reserved.
    @Test(arguments: Strategy.allCases)
    func overdueHoldsOfAnUntouchedDropAreSweptAfterARestart(strategy: Strategy) async throws {
        let url = try await TestDatabase.fresh("memory_startup_sweep_\(strategy)")
        // The process that made the holds dies before they are due: no timer of its own may
        // sweep them (on a loaded machine 300 ms passed before a graceful shutdown began).
        let beforePool = PostgresPool(url: url, size: 2)
        let before = ActorEngine(store: PostgresStore(pool: beforePool), drivesTimers: false)
        let drop = try await before.createDrop(
            DropSpec(name: "Idle", priceCents: 100, totalStock: 5, reserveTTLMilliseconds: 1_000))
        // Together, so they share a batch: a later batch would expire an earlier hold itself.
        let expiries = try await withThrowingTaskGroup(of: Date?.self) { group in
            for user in 1...3 {
                group.addTask {
                    guard case .reserved(let hold) = try await before.reserve(drop: drop.id, user: UserID(user)) else {
                        return nil
                    }
                    return hold.expiresAt
                }
            }
            return try await group.reduce(into: [Date]()) { if let expiry = $1 { $0.append(expiry) } }
        }
        await before.shutdown()
        await beforePool.close()
        try await waitPast(expiries.max() ?? Date())
        #expect(try await activeHolds(url, drop: drop.id).rows > 0, "nobody swept the overdue holds yet")

        let (after, pool) = engine(strategy, url: url, idleSweepSeconds: 0.1)
        let deadline = Date().addingTimeInterval(10)
        var holds = try await activeHolds(url, drop: drop.id)
        while holds.rows > 0 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            holds = try await activeHolds(url, drop: drop.id)
        }
        #expect(holds.rows == 0 && holds.counter == 0)
        #expect(try await after.snapshot(of: drop.id)?.drop.available == 5)
        await after.shutdown()
        await pool.close()
    }

    /// A reload that fails on the real database fails the callers waiting for it, and the next
    /// request reloads: the batch's session is killed while it waits for the drop's lock (so the
    /// machine reloads), then the reload's session, with a caller queued behind it.
    @Test func aFailedReloadFailsItsCallersAndTheNextRequestReloads() async throws {
        let url = try await TestDatabase.fresh("memory_reload_fails")
        let pool = PostgresPool(url: url, size: 4)
        let engine = ActorEngine(store: PostgresStore(pool: pool))
        let drop = try await engine.createDrop(DropSpec(name: "Reload", priceCents: 100, totalStock: 3))
        _ = try await engine.reserve(drop: drop.id, user: 1)
        let locker = try await PostgresConnection.connect(url)
        try await locker.execute("BEGIN")
        try await locker.query("SELECT id FROM drops WHERE id = $1 FOR UPDATE", [.int64(drop.id)])

        let batch = Task { try await engine.reserve(drop: drop.id, user: 2) }
        #expect(try await killSessionWaitingOnALock(url), "the batch waits for the drop's lock")
        await #expect(throws: EngineError.self) { try await batch.value }

        let reloadWaits = try await sessionsWaitingOnALock(url)
        #expect(reloadWaits == 1, "the reload waits for the drop's lock")
        let queued = Task { try await engine.reserve(drop: drop.id, user: 3) }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while await engine.queuedClaims() == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(try await killSessionWaitingOnALock(url), "the reload is still waiting")
        do {
            _ = try await queued.value
            Issue.record("a caller queued behind a failed reload was answered")
        } catch let error as EngineError {
            #expect(error.code == .storeUnavailable && error.code.appliedNothing, "\(error)")
        }

        try await locker.execute("ROLLBACK")
        await locker.close()
        guard case .reserved = try await engine.reserve(drop: drop.id, user: 4) else {
            Issue.record("the next request reloads and reserves")
            return
        }
        let rows = try await activeHolds(url, drop: drop.id)
        #expect(rows.rows == 2 && rows.counter == 2, "users 1 and 4 hold: \(rows)")
        #expect(await engine.activeHoldCount(of: drop.id) == 2, "memory equals the rows")
        await engine.shutdown()
        await pool.close()
    }

    /// Terminates every session waiting for a lock, once there is one (waiting up to 10 s):
    /// true if one was terminated.
    private func killSessionWaitingOnALock(_ url: String) async throws -> Bool {
        guard try await sessionsWaitingOnALock(url) > 0 else { return false }
        let killer = try await PostgresConnection.connect(url)
        defer { Task { await killer.close() } }
        let killed = try await killer.query(
            """
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
            """)
        return (try killed.first?.int("n") ?? 0) > 0
    }

    /// The same sweep on the in-memory store, with time in the test's hands: a drop no actor
    /// holds is swept by a batch of its own; a drop with a live actor by that actor.
    @Test func theIdleSweepOnTheInMemoryStore() async throws {
        let clock = ManualClock()
        let store = InMemoryStore(clock: clock)
        let idle = try await store.createDrop(
            DropSpec(name: "Idle", priceCents: 100, totalStock: 2, reserveTTLMilliseconds: 1_000))
        let live = try await store.createDrop(
            DropSpec(name: "Live", priceCents: 100, totalStock: 1, reserveTTLMilliseconds: 1_000))
        _ = try await store.apply(
            ClaimBatch(dropID: idle.id, items: [ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2)]))
        let engine = ActorEngine(store: store, clock: clock, drivesTimers: false)
        _ = try await engine.reserve(drop: live.id, user: 3)
        clock.advance(by: 5)
        try await engine.sweepOverdueDrops()
        await engine.drainAll()
        #expect(try await store.snapshot(of: idle.id)?.drop.reserved == 0)
        #expect(try await store.snapshot(of: live.id)?.drop.reserved == 0)
        #expect(await engine.activeHoldCount(of: idle.id) == nil, "no actor loaded for a drop nobody asked for")
        #expect(await engine.activeHoldCount(of: live.id) == 0)
        await engine.shutdown()
    }

    /// A clock that is cancelled while it sleeps stops at once: an engine on a test's clock
    /// shuts down.
    @Test func anEngineOnAManualClockShutsDown() async {
        let engine = ActorEngine(
            store: InMemoryStore(clock: ManualClock()), clock: ManualClock(), idleSweepInterval: 60)
        await engine.shutdown()
    }

    /// A reload waits for a batch in flight and reads the drop as it committed: never the old
    /// counters beside the new holds. The database's default isolation is set to SERIALIZABLE
    /// here; the reload asks for READ COMMITTED itself and still succeeds.
    @Test func aReloadReadsOneSnapshotUnderTheDropsLock() async throws {
        let url = try await TestDatabase.fresh("memory_reload_snapshot")
        let setup = try await PostgresConnection.connect(url)
        try await setup.execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = ''serializable''', current_database()); END $$"
        )
        await setup.close()
        let pool = PostgresPool(url: url, size: 2)
        let store = PostgresStore(pool: pool)
        let drop = try await store.createDrop(DropSpec(name: "Locked", priceCents: 100, totalStock: 5))
        _ = try await store.recover(drop.id)  // the pool's connections exist before the writer starts

        let writer = try await PostgresConnection.connect(url)
        try await writer.execute("BEGIN")
        try await writer.query("SELECT id FROM drops WHERE id = $1 FOR UPDATE", [.int64(drop.id)])
        try await writer.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, expires_at) VALUES ($1, 1, 'ACTIVE', now() + interval '1 minute')
            """, [.int64(drop.id)])
        try await writer.query("UPDATE drops SET reserved = reserved + 1 WHERE id = $1", [.int64(drop.id)])
        let reload = Task { try await store.recover(drop.id) }
        // Commit only once the reload is seen waiting for the drop's lock.
        let waiting = try await sessionsWaitingOnALock(url)
        #expect(waiting == 1, "the reload waits for the writer's lock")
        try await writer.execute("COMMIT")
        let recovery = try #require(try await reload.value)
        #expect(
            recovery.drop.reserved == 1 && recovery.activeHolds.count == 1,
            "the reload saw \(recovery.drop.reserved) / \(recovery.activeHolds.count)")
        await writer.close()
        await pool.close()
    }

    /// One key spent at the same moment on two drops: the second batch waits on the key's
    /// index entry, and when the first commits it answers `idempotency_key_reused` for that
    /// purchase instead of failing every caller in it.
    @Test func aKeySpentConcurrentlyOnAnotherDropFailsOnlyThatPurchase() async throws {
        let url = try await TestDatabase.fresh("memory_key_race")
        let pool = PostgresPool(url: url, size: 2)
        let store = PostgresStore(pool: pool)
        let a = try await store.createDrop(DropSpec(name: "A", priceCents: 100, totalStock: 1))
        let b = try await store.createDrop(DropSpec(name: "B", priceCents: 100, totalStock: 2))
        _ = try await store.apply(ClaimBatch(dropID: a.id, items: [ClaimItem(.reserve, user: 1)]))
        _ = try await store.apply(
            ClaimBatch(dropID: b.id, items: [ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2)]))

        let first = try await PostgresConnection.connect(url)
        try await first.execute("BEGIN")
        try await first.query("SELECT * FROM stockdrop_apply_batch($1, '{2}', '{1}', '{order-1}')", [.int64(a.id)])
        let second = Task {
            try await store.apply(
                ClaimBatch(
                    dropID: b.id,
                    items: [
                        ClaimItem(.purchase, user: 1, idempotencyKey: "order-1"),
                        ClaimItem(.purchase, user: 2, idempotencyKey: "order-2"),
                    ]))
        }
        let waiting = try await sessionsWaitingOnALock(url)
        #expect(waiting == 1, "the second batch waits on the key")
        try await first.execute("COMMIT")
        await first.close()
        let outcome = try await second.value
        #expect(outcome.results.first == .rejected(.idempotencyKeyReused))
        guard case .purchased(_, replayed: false) = outcome.results.last else {
            Issue.record("the other purchase in the batch goes through: \(outcome.results)")
            return
        }
        #expect(outcome.sold == 1 && outcome.reserved == 1, "user 1's hold on B stays")
        await pool.close()
    }

    /// A purchase asked while its hold was live, whose batch reaches the database only after
    /// the hold's expiry (the test holds the drop's row lock, and moves the hold's times back
    /// meanwhile), buys the hold: the wait inside the server is not the buyer's (migration 9).
    @Test(arguments: Strategy.allCases)
    func aPurchaseAskedInTimeBuysTheHoldThoughItsBatchRunsAfterExpiry(strategy: Strategy) async throws {
        let url = try await TestDatabase.fresh("asked_in_time_\(strategy)")
        let pool = PostgresPool(url: url, size: 4)
        // A long grace (and a hold whose TTL allows it): a loaded machine may take more than
        // the default's second between the lock's release and the purchase's batch.
        let store = PostgresStore(pool: pool, purchaseGraceMilliseconds: 30_000)
        let engine: any Inventory = strategy == .actor ? ActorEngine(store: store) : RowLockEngine(store: store)
        let drop = try await engine.createDrop(
            DropSpec(name: "Asked in time", priceCents: 100, totalStock: 2, reserveTTLMilliseconds: 60_000))
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
        #expect(try await sessionsWaitingOnALock(url) >= 1)
        let askedAt = Date().addingTimeInterval(-10)
        let purchase = Task {
            try await engine.purchase(drop: drop.id, user: 1, idempotencyKey: "k-1", askedAt: askedAt)
        }
        if strategy == .rowlock { #expect(try await sessionsWaitingOnALock(url, atLeast: 2) >= 2) }
        // The hold ran out while the batches waited: 60 s long, expired 50 ms ago, asked 10 s
        // before that. (The reservation's row is not locked; the drop's is.)
        try await pool.query(
            """
            UPDATE reservations SET created_at = clock_timestamp() - interval '60.05 seconds',
                                    expires_at = clock_timestamp() - interval '50 milliseconds'
            WHERE id = $1
            """, [.int64(hold.id)])
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
        let row = try #require(
            try await pool.query(
                """
                SELECT (extract(epoch FROM p.asked_at) * 1000000)::bigint AS asked, p.created_at > r.expires_at AS late
                FROM purchases p JOIN reservations r ON r.id = p.reservation_id WHERE p.id = $1
                """, [.int64(bought.id)]
            ).first)
        #expect(try row.bool("late"), "decided after the hold's expiry")
        #expect(try row.int64("asked") == askedAt.epochMicroseconds, "asked_at records the ask")
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

    /// A reply without its counters row is malformed: never zeros and the current time.
    @Test func aMalformedBatchReplyIsRefused() throws {
        let batch = ClaimBatch(dropID: 1, items: [ClaimItem(.reserve, user: 1)])
        let columns = [
            "ord", "code", "reservation_id", "user_id", "purchase_id", "created_us", "expires_us", "ended_us",
            "sold", "reserved", "price_cents", "idempotency_key", "lease_holder", "total_stock",
        ]
        let soldOut: [String?] = ["1", "sold_out", nil, "1", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil]
        let counters: [String?] = [
            "0", "counters", nil, nil, nil, "1800000000000000", nil, nil, "0", "1", "100", nil, nil, "5",
        ]
        #expect(throws: PostgresError.self) {
            try PostgresStore.outcome(of: batch, rows: PostgresRows(columns: columns, cells: soldOut, affectedRows: 0))
        }
        #expect(throws: PostgresError.self) {
            try PostgresStore.outcome(
                of: batch, rows: PostgresRows(columns: columns, cells: soldOut + soldOut + counters, affectedRows: 0))
        }
        let outcome = try PostgresStore.outcome(
            of: batch, rows: PostgresRows(columns: columns, cells: soldOut + counters, affectedRows: 0))
        #expect(outcome.results == [.rejected(.soldOut)] && outcome.reserved == 1)
        #expect(outcome.committedAt == Date(timeIntervalSince1970: 1_800_000_000))
        #expect(outcome.totalStock == 5, "the counters row carries the drop's total")
    }
}
