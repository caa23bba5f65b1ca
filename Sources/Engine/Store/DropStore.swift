// Where drops live. PostgreSQL is the source of truth; the in-memory store exists for
// deterministic simulation. Both pass one contract test suite (DropStoreContract).
import Foundation

public protocol DropStore: Sendable {
    func createDrop(_ spec: DropSpec) async throws -> DropRecord
    /// Drops ordered by id, after the cursor, at most `limit`, each with its last 3 purchases.
    func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot]
    func snapshot(of drop: DropID) async throws -> DropSnapshot?
    /// The drop and its live state, or nil for an unknown drop. With an epoch, only while the
    /// drop's lease still has it (else `EngineError.fenced`): an owner's reload, which moves
    /// the lease to the next epoch (`DropRecovery.epoch`) under the same lock, fencing every
    /// batch sent under the old one.
    func recover(_ drop: DropID, epoch: Int64?) async throws -> DropRecovery?
    /// Takes the drop's lease for `owner` unless another instance holds a live one, and loads
    /// the drop under the same lock; nil for an unknown drop. Each grant is a new epoch.
    func acquireLease(on drop: DropID, for owner: LeaseOwner) async throws -> LeaseGrant?
    /// Extends the leases `owner` still holds under these epochs, without waiting on a drop
    /// whose batch is in flight.
    func renewLeases(_ epochs: [DropID: Int64], for owner: LeaseOwner) async throws -> LeaseRenewal
    /// Lets these leases of `owner` lapse now, if they still have these epochs (a graceful
    /// shutdown, a drop handed back), so another instance takes them over at once.
    func releaseLeases(_ epochs: [DropID: Int64], of owner: LeaseOwner) async throws
    /// Applies a batch in one transaction under the drop's lock; all or nothing. A batch with
    /// a lease is refused (`fenced`) unless its epoch is the drop's; one without is refused
    /// (`leased`) while an instance holds a live lease on the drop.
    func apply(_ batch: ClaimBatch) async throws -> BatchOutcome
    /// `apply`, calling `locked` once the store holds the drop's lock for this batch (at most
    /// once, perhaps never if the batch fails): a batch applied after that waits for this
    /// one, so a caller may send the next batch then and know the two apply in that order.
    func apply(_ batch: ClaimBatch, locked: @escaping @Sendable () -> Void) async throws -> BatchOutcome
    /// A user's reservations on every drop, newest first.
    func reservations(of user: UserID) async throws -> [Reservation]
    /// The user's ACTIVE hold on the drop, if any (the hold an `already_holding` names).
    func liveHold(of user: UserID, on drop: DropID) async throws -> Reservation?
    /// Drops that have ACTIVE holds past their expiry and the purchase grace after it, by the
    /// store's clock (holds a batch would sweep), and that `owner`
    /// may sweep: its own, and those whose lease has lapsed or was never taken (nil: only
    /// those).
    func dropsWithOverdueHolds(sweptBy owner: LeaseOwner?) async throws -> [DropID]
    /// How long past `expires_at` an unbought hold keeps its unit for a purchase asked in time
    /// (`Defaults.purchaseGraceMilliseconds` unless a test asks for another): the store sweeps
    /// by it, and the actors on it sweep their memory by it.
    var purchaseGraceMilliseconds: Int { get }
    /// Records a user's display name (for the purchase feed).
    func upsertUser(_ user: UserID, name: String, role: String) async throws
}

extension DropStore {
    /// A store that cannot tell when it took the lock says so once the batch is applied.
    public func apply(_ batch: ClaimBatch, locked: @escaping @Sendable () -> Void) async throws -> BatchOutcome {
        let outcome = try await apply(batch)
        locked()
        return outcome
    }
    public func recover(_ drop: DropID) async throws -> DropRecovery? { try await recover(drop, epoch: nil) }
    public func dropsWithOverdueHolds() async throws -> [DropID] { try await dropsWithOverdueHolds(sweptBy: nil) }
}
