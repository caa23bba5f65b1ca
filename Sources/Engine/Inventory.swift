// What every strategy offers: the same operations with the same outcomes, so the load
// harness and the server can swap the actor engine for the rowlock baseline.
import Foundation

public enum Strategy: String, Sendable, CaseIterable, Codable {
    case actor, rowlock
}

public protocol Inventory: Sendable {
    var strategy: Strategy { get }
    func createDrop(_ spec: DropSpec) async throws -> DropRecord
    func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot]
    func snapshot(of drop: DropID) async throws -> DropSnapshot?
    /// Where the drop's claims are decided (`DropRoute`): asked before a claim by a caller that
    /// can send it elsewhere; the three claims below ask it themselves.
    func route(_ drop: DropID) async throws -> DropRoute
    func reserve(drop: DropID, user: UserID) async throws -> ReserveOutcome
    /// `askedAt`: when the buyer asked (nil: now); see `DropClaims.purchase`.
    func purchase(drop: DropID, user: UserID, idempotencyKey: String?, askedAt: Date?) async throws -> PurchaseOutcome
    func cancel(drop: DropID, user: UserID) async throws -> CancelOutcome
    func reservations(of user: UserID) async throws -> [Reservation]
    /// The user's live hold on the drop, read from the store (what `already_holding` names
    /// when the strategy does not know it).
    func liveHold(of user: UserID, on drop: DropID) async throws -> Reservation?
    /// Stops accepting work, lets batches in flight commit and answers every waiting caller.
    func shutdown() async
    /// Leases, when the strategy has them (actor); nil otherwise.
    var leases: (any DropLeases)? { get }
    /// Batch and queue figures, when the strategy batches (actor); nil otherwise.
    var batches: (any BatchFigures)? { get }
}

extension Inventory {
    /// A purchase asked now.
    public func purchase(drop: DropID, user: UserID, idempotencyKey: String?) async throws -> PurchaseOutcome {
        try await purchase(drop: drop, user: user, idempotencyKey: idempotencyKey, askedAt: nil)
    }

    /// Validates before any store sees the spec; both strategies share it.
    static func validated(_ spec: DropSpec) throws -> DropSpec {
        guard spec.problems.isEmpty else { throw EngineError(.invalidDrop, spec.problems.joined(separator: "; ")) }
        return spec
    }
}
