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
    /// Where a row's instant lies after `advance(seconds)`: memory moves its clock, so rows stay
    /// put; PostgreSQL moves the rows back instead.
    let afterAdvance: @Sendable (Date, TimeInterval) -> Date
    let close: @Sendable () async -> Void

    static func memory(purchaseGraceMilliseconds: Int = Defaults.purchaseGraceMilliseconds) -> StoreUnderTest {
        let clock = ManualClock()
        return StoreUnderTest(
            name: "memory", store: InMemoryStore(clock: clock, purchaseGraceMilliseconds: purchaseGraceMilliseconds),
            advance: { clock.advance(by: $0) },
            afterAdvance: { instant, _ in instant }, close: {})
    }

    static func postgres(
        _ suite: String, purchaseGraceMilliseconds: Int = Defaults.purchaseGraceMilliseconds
    ) async throws -> StoreUnderTest {
        let url = try await TestDatabase.fresh(suite)
        let pool = PostgresPool(url: url, size: 4)
        return StoreUnderTest(
            name: "postgres", store: PostgresStore(pool: pool, purchaseGraceMilliseconds: purchaseGraceMilliseconds),
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
            afterAdvance: { instant, seconds in instant.addingTimeInterval(-seconds) }, close: { await pool.close() })
    }

    /// `purchaseGraceMilliseconds`: a test that must act within the grace on PostgreSQL, whose
    /// clock runs on while a loaded machine pauses, asks for a long one.
    static func make(
        _ kind: String, suite: String, purchaseGraceMilliseconds: Int = Defaults.purchaseGraceMilliseconds
    ) async throws -> StoreUnderTest {
        kind == "memory"
            ? memory(purchaseGraceMilliseconds: purchaseGraceMilliseconds)
            : try await postgres(suite, purchaseGraceMilliseconds: purchaseGraceMilliseconds)
    }
}
