// A store whose lease grants wait until the test opens the gate: claims then arrive at a drop
// whose actor is still being activated, as they do at a sale's first instant, when thousands
// of buyers come while the drop is loaded.
import Engine
import Foundation
import Synchronization

final class GatedLeaseStore: DropStore {
    let base: InMemoryStore
    private let gate = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))
    /// What a lease grant throws once the gate opens (nil: it asks the base store).
    let failure: EngineError?

    init(_ base: InMemoryStore, failing failure: EngineError? = nil) {
        self.base = base
        self.failure = failure
    }

    /// Lets every lease grant asked for so far, and every later one, go ahead.
    func open() {
        let waiting = gate.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func acquireLease(on drop: DropID, for owner: LeaseOwner) async throws -> LeaseGrant? {
        await withCheckedContinuation { continuation in
            let open = gate.withLock { state in
                if !state.open { state.waiting.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
        if let failure { throw failure }
        return try await base.acquireLease(on: drop, for: owner)
    }

    var purchaseGraceMilliseconds: Int { base.purchaseGraceMilliseconds }
    func createDrop(_ spec: DropSpec) async throws -> DropRecord { try await base.createDrop(spec) }
    func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot] {
        await base.listDrops(after: cursor, limit: limit)
    }
    func snapshot(of drop: DropID) async throws -> DropSnapshot? { await base.snapshot(of: drop) }
    func recover(_ drop: DropID, epoch: Int64?) async throws -> DropRecovery? {
        try await base.recover(drop, epoch: epoch)
    }
    func renewLeases(_ epochs: [DropID: Int64], for owner: LeaseOwner) async throws -> LeaseRenewal {
        await base.renewLeases(epochs, for: owner)
    }
    func releaseLeases(_ epochs: [DropID: Int64], of owner: LeaseOwner) async throws {
        await base.releaseLeases(epochs, of: owner)
    }
    func apply(_ batch: ClaimBatch) async throws -> BatchOutcome { try await base.apply(batch) }
    func reservations(of user: UserID) async throws -> [Reservation] { await base.reservations(of: user) }
    func liveHold(of user: UserID, on drop: DropID) async throws -> Reservation? {
        await base.liveHold(of: user, on: drop)
    }
    func dropsWithOverdueHolds(sweptBy owner: LeaseOwner?) async throws -> [DropID] {
        await base.dropsWithOverdueHolds(sweptBy: owner)
    }
    func upsertUser(_ user: UserID, name: String, role: String) async throws {
        await base.upsertUser(user, name: name, role: role)
    }
}
