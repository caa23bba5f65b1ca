// The stores the contract suite runs against, each with a way to move its time forward.
import Engine
import Foundation
import TestSupport

struct StoreUnderTest: Sendable {
    let name: String
    let store: any DropStore
    /// Moves the store's notion of time forward by `seconds` (ManualClock for memory; for
    /// PostgreSQL, whose clock cannot move, every hold and lease is shifted back by as much).
    let advance: @Sendable (TimeInterval) async throws -> Void
    let close: @Sendable () async -> Void

    static func memory() -> StoreUnderTest {
        let clock = ManualClock()
        return StoreUnderTest(
            name: "memory", store: InMemoryStore(clock: clock), advance: { clock.advance(by: $0) }, close: {})
    }

    static func postgres(_ suite: String) async throws -> StoreUnderTest {
        let url = try await TestDatabase.fresh(suite)
        let pool = PostgresPool(url: url, size: 4)
        return StoreUnderTest(
            name: "postgres", store: PostgresStore(pool: pool),
            advance: { seconds in
                try await pool.query(
                    """
                    UPDATE reservations SET created_at = created_at - $1 * interval '1 second',
                                            expires_at = expires_at - $1 * interval '1 second'
                    WHERE status = 'ACTIVE'
                    """, [.double(seconds)])
                try await pool.query(
                    "UPDATE drops SET lease_expires_at = lease_expires_at - $1 * interval '1 second' WHERE lease_owner IS NOT NULL",
                    [.double(seconds)])
            },
            close: { await pool.close() })
    }

    static func make(_ kind: String, suite: String) async throws -> StoreUnderTest {
        kind == "memory" ? memory() : try await postgres(suite)
    }
}
