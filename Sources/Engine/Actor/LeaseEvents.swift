// Counts of what leases did on this engine, for operators (/metrics, /ready) and for tests
// that must prove a takeover or a fenced batch happened.
import Synchronization

public struct LeaseStatistics: Sendable, Equatable {
    /// Drops whose actor runs here now.
    public var ownedDrops = 0
    /// Leases taken over from another instance after they lapsed.
    public var takeovers = 0
    /// Batches the store refused because the lease had changed hands.
    public var fencedBatches = 0
    /// Lease renewals that found the lease gone.
    public var leasesLost = 0
    /// Drops given up to the instance their claims kept coming from.
    public var handedBack = 0

    public init(
        ownedDrops: Int = 0, takeovers: Int = 0, fencedBatches: Int = 0, leasesLost: Int = 0, handedBack: Int = 0
    ) {
        self.ownedDrops = ownedDrops
        self.takeovers = takeovers
        self.fencedBatches = fencedBatches
        self.leasesLost = leasesLost
        self.handedBack = handedBack
    }
}

final class LeaseEvents: Sendable {
    private let takeovers = Atomic<Int>(0)
    private let fenced = Atomic<Int>(0)
    private let lost = Atomic<Int>(0)
    private let given = Atomic<Int>(0)

    func tookOver() { takeovers.add(1, ordering: .relaxed) }
    func fencedBatch() { fenced.add(1, ordering: .relaxed) }
    func leaseLost() { lost.add(1, ordering: .relaxed) }
    func handedBack() { given.add(1, ordering: .relaxed) }

    func statistics(ownedDrops: Int) -> LeaseStatistics {
        LeaseStatistics(
            ownedDrops: ownedDrops, takeovers: takeovers.load(ordering: .relaxed),
            fencedBatches: fenced.load(ordering: .relaxed), leasesLost: lost.load(ordering: .relaxed),
            handedBack: given.load(ordering: .relaxed))
    }
}
