// The leases of the in-memory store, with the rules of migration 5 (Migrations+Leases): a
// lease changes hands only once it lapsed, each change is a new epoch, a batch with a stale
// epoch is fenced, and a write without a lease is refused on a live lease and fences a lapsed
// one.
import Foundation

struct LeaseRow: Equatable {
    var owner: String?
    var epoch: Int64 = 0
    var expiresAt: Date?

    func isLive(at now: Date) -> Bool { owner != nil && (expiresAt.map { $0 > now } ?? false) }
}

extension InMemoryTables {
    mutating func acquireLease(on drop: DropID, for owner: LeaseOwner, now: Date) -> LeaseGrant? {
        guard let record = drops[drop], let recovery = recovery(of: drop) else { return nil }
        var lease = leases[drop] ?? LeaseRow()
        if let current = lease.owner, current != owner.instance, lease.isLive(at: now) {
            return .heldElsewhere(owner: current)
        }
        let previous = lease.owner == owner.instance ? nil : lease.owner
        lease.owner = owner.instance
        lease.epoch += 1
        lease.expiresAt = now.addingTimeInterval(Double(owner.leaseMilliseconds) / 1000)
        leases[record.id] = lease
        return .granted(recovery, epoch: lease.epoch, previousOwner: previous)
    }

    mutating func renewLeases(_ epochs: [DropID: Int64], for owner: LeaseOwner, now: Date) -> LeaseRenewal {
        var renewal = LeaseRenewal(renewed: [], lost: [])
        for (drop, epoch) in epochs {
            guard var lease = leases[drop], lease.owner == owner.instance, lease.epoch == epoch else {
                renewal.lost.insert(drop)
                continue
            }
            lease.expiresAt = now.addingTimeInterval(Double(owner.leaseMilliseconds) / 1000)
            leases[drop] = lease
            renewal.renewed.insert(drop)
        }
        return renewal
    }

    mutating func releaseLeases(_ epochs: [DropID: Int64], of owner: LeaseOwner, now: Date) {
        for (drop, epoch) in epochs {
            guard let lease = leases[drop], lease.owner == owner.instance, lease.epoch == epoch, lease.isLive(at: now)
            else {
                continue
            }
            leases[drop]?.expiresAt = now
        }
    }

    /// Whether `owner` (nil: a writer without a lease) may sweep the drop now.
    func maySweep(_ drop: DropID, owner: LeaseOwner?, now: Date) -> Bool {
        guard let lease = leases[drop], let current = lease.owner else { return true }
        return current == owner?.instance || !lease.isLive(at: now)
    }

    func epoch(of drop: DropID) -> Int64 { leases[drop]?.epoch ?? 0 }

    /// The lease check that comes first in stockdrop_apply_batch; throws what it refuses.
    mutating func admit(_ batch: ClaimBatch, now: Date) throws {
        guard drops[batch.dropID] != nil else { return }
        var lease = leases[batch.dropID] ?? LeaseRow()
        if let batchLease = batch.lease {
            guard batchLease.epoch == lease.epoch, lease.owner != nil else {
                throw EngineError(
                    .fenced, "the lease of drop \(batch.dropID) changed hands; the batch was refused",
                    owner: lease.owner)
            }
            lease.expiresAt = now.addingTimeInterval(Double(batchLease.milliseconds) / 1000)
        } else if let owner = lease.owner {
            guard !lease.isLive(at: now) else {
                throw EngineError(
                    .leased, "drop \(batch.dropID) is owned by instance \(owner); nothing was applied", owner: owner)
            }
            lease = LeaseRow(owner: nil, epoch: lease.epoch + 1, expiresAt: nil)
        }
        leases[batch.dropID] = lease
    }
}
