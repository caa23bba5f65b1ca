// What lets a drop's actor send its next batch before the last one's verdict: PostgresStore
// says a batch holds the drop's row lock only once it does, and a batch sent after that word,
// on another connection, waits for the lock and is applied after it.
import Engine
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite("batches behind the drop's lock") struct BatchLockOrderTests {
    /// What the store's word of the lock set off.
    final class Seen: Sendable {
        let locked = Mutex(false)
        let behind = Mutex<Task<BatchOutcome, any Error>?>(nil)
    }

    /// A fresh database with one drop, and another connection inside a transaction that has
    /// run `lock` (given the drop's id) and holds what it took until the test commits it.
    static func blocked(
        _ name: String, stock: Int, poolSize: Int, lock: (DropID) -> String
    ) async throws -> (PostgresPool, PostgresStore, DropRecord, PostgresConnection) {
        let url = try await TestDatabase.fresh(name)
        let pool = PostgresPool(url: url, size: poolSize)
        let store = PostgresStore(pool: pool)
        let drop = try await store.createDrop(DropSpec(name: name, priceCents: 1, totalStock: stock))
        let blocker = try await PostgresConnection.connect(url)
        try await blocker.execute("BEGIN; \(lock(drop.id))")
        return (pool, store, drop, blocker)
    }

    @Test func theLockIsReportedWhenHeldAndABatchSentThenAppliesAfter() async throws {
        // Another transaction holds the drop's lock until the test lets it go.
        let (pool, store, drop, blocker) = try await Self.blocked("batch_lock_order", stock: 5_000, poolSize: 3) {
            "SELECT 1 FROM drops WHERE id = \($0) FOR UPDATE"
        }

        let seen = Seen()
        // A large first batch (a thousand reserves) keeps the lock a while after it is taken.
        let first = ClaimBatch(dropID: drop.id, items: (1...1_000).map { ClaimItem(.reserve, user: UserID($0)) })
        let firstApplied = Task {
            try await store.apply(first) {
                seen.locked.withLock { $0 = true }
                // As the actor does: the next batch goes on word of the lock, on another connection.
                let cancel = ClaimBatch(dropID: drop.id, items: [ClaimItem(.cancel, user: 1)])
                seen.behind.withLock { $0 = Task { try await store.apply(cancel) } }
            }
        }
        // While the other transaction holds the lock, no word of it may come (this wait can
        // only let a defect pass, never fail a sound store).
        try await Task.sleep(for: .milliseconds(300))
        #expect(!seen.locked.withLock { $0 }, "the lock was reported while another held it")
        try await blocker.execute("COMMIT")
        await blocker.close()

        let firstOutcome = try await firstApplied.value
        #expect(seen.locked.withLock { $0 })
        #expect(firstOutcome.results.allSatisfy { if case .reserved = $0 { true } else { false } })
        let second = try #require(seen.behind.withLock { $0 })
        let cancelled = try await second.value
        guard case .cancelled(let hold) = cancelled.results.first else {
            Issue.record("the cancel sent behind the lock must find user 1's hold: \(cancelled.results)")
            return
        }
        #expect(hold.userID == 1)
        #expect(cancelled.reserved == 999)
        await pool.close()
    }

    /// The word comes while the batch is still running, not with its commit: the database
    /// holds a pipeline's answers until its end unless asked to flush, and a word that came
    /// only after the commit would leave the next batch no time to wait on the lock. Here the
    /// batch cannot finish (another transaction holds the reservations table), yet its word
    /// must come.
    @Test func theLockIsReportedBeforeTheBatchCanCommit() async throws {
        let (pool, store, drop, blocker) = try await Self.blocked("batch_lock_word", stock: 10, poolSize: 2) { _ in
            "LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE"
        }
        let seen = Seen()
        let applied = Task {
            try await store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1)])) {
                seen.locked.withLock { $0 = true }
            }
        }
        try await ActivationOrderTests.waitUntil("the word of the lock, the batch still blocked") {
            seen.locked.withLock { $0 }
        }
        try await blocker.execute("COMMIT")
        await blocker.close()
        guard case .reserved(let hold) = try await applied.value.results.first else {
            Issue.record("the batch reserves once the table is free")
            return
        }
        #expect(hold.userID == 1)
        await pool.close()
    }
}
