// The store, measured: every batch either strategy commits passes through here, so batch sizes
// and commit latency are recorded without the engine knowing about metrics.
import Engine
import Foundation

struct InstrumentedStore: DropStore {
    let base: any DropStore
    let metrics: ServerMetrics
    var purchaseGraceMilliseconds: Int { base.purchaseGraceMilliseconds }

    func apply(_ batch: ClaimBatch) async throws -> BatchOutcome {
        // Sweeps (batches with no claims, only expiries) are not group commits of claims.
        guard !batch.items.isEmpty else { return try await base.apply(batch) }
        let started = ContinuousClock.now
        do {
            let outcome = try await base.apply(batch)
            metrics.recordBatch(
                claims: batch.items.count, nanoseconds: (ContinuousClock.now - started).nanoseconds, failed: false)
            return outcome
        } catch {
            metrics.recordBatch(claims: batch.items.count, nanoseconds: 0, failed: true)
            throw error
        }
    }

    func createDrop(_ spec: DropSpec) async throws -> DropRecord { try await base.createDrop(spec) }
    func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot] {
        try await base.listDrops(after: cursor, limit: limit)
    }
    func snapshot(of drop: DropID) async throws -> DropSnapshot? { try await base.snapshot(of: drop) }
    func recover(_ drop: DropID, epoch: Int64?) async throws -> DropRecovery? {
        try await base.recover(drop, epoch: epoch)
    }
    func acquireLease(on drop: DropID, for owner: LeaseOwner) async throws -> LeaseGrant? {
        try await base.acquireLease(on: drop, for: owner)
    }
    func renewLeases(_ epochs: [DropID: Int64], for owner: LeaseOwner) async throws -> LeaseRenewal {
        try await base.renewLeases(epochs, for: owner)
    }
    func releaseLeases(_ epochs: [DropID: Int64], of owner: LeaseOwner) async throws {
        try await base.releaseLeases(epochs, of: owner)
    }
    func reservations(of user: UserID) async throws -> [Reservation] { try await base.reservations(of: user) }
    func liveHold(of user: UserID, on drop: DropID) async throws -> Reservation? {
        try await base.liveHold(of: user, on: drop)
    }
    func dropsWithOverdueHolds(sweptBy owner: LeaseOwner?) async throws -> [DropID] {
        try await base.dropsWithOverdueHolds(sweptBy: owner)
    }
    func upsertUser(_ user: UserID, name: String, role: String) async throws {
        try await base.upsertUser(user, name: name, role: role)
    }
}
