// Where drops live. PostgreSQL is the source of truth; the in-memory store exists for
// deterministic simulation. Both pass one contract test suite (DropStoreContract).
import Foundation

public protocol DropStore: Sendable {
    func createDrop(_ spec: DropSpec) async throws -> DropRecord
    /// Drops ordered by id, after the cursor, at most `limit`, each with its last 3 purchases.
    func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot]
    func snapshot(of drop: DropID) async throws -> DropSnapshot?
    /// The drop and its live state, or nil for an unknown drop.
    func recover(_ drop: DropID) async throws -> DropRecovery?
    /// Applies a batch in one transaction under the drop's lock; all or nothing.
    func apply(_ batch: ClaimBatch) async throws -> BatchOutcome
    /// A user's reservations on every drop, newest first.
    func reservations(of user: UserID) async throws -> [Reservation]
    /// Drops that have ACTIVE holds past their expiry by the store's clock.
    func dropsWithOverdueHolds() async throws -> [DropID]
    /// Records a user's display name (for the purchase feed).
    func upsertUser(_ user: UserID, name: String, role: String) async throws
}
