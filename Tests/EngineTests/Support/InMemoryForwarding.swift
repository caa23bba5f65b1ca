// Test stores that hold back one part of the store (lease grants, batches) and pass the rest
// to an in-memory store unchanged: the passing, written once.
import Engine
import Foundation

protocol InMemoryForwarding: DropStore {
    var base: InMemoryStore { get }
}

extension InMemoryForwarding {
    var purchaseGraceMilliseconds: Int { base.purchaseGraceMilliseconds }
    func acquireLease(on drop: DropID, for owner: LeaseOwner) async throws -> LeaseGrant? {
        try await base.acquireLease(on: drop, for: owner)
    }
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
