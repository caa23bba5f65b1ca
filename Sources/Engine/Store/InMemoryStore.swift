// A store in memory with the same contract as PostgreSQL's (DropStoreContract proves it):
// for deterministic simulation with a ManualClock and injected faults. Its "tables" are a
// value, so a simulation can ask what a batch would be answered at this instant without
// applying it (`dryRun`), and hold the engine's memory to exactly that.
import Foundation

public actor InMemoryStore: DropStore {
    /// Faults a simulation can inject into the next calls.
    public struct Faults: Sendable {
        /// Probability that a batch fails before applying anything (the store says so).
        public var failBeforeCommit = 0.0
        /// Probability that a batch commits but its caller hears an error (an ack lost).
        public var failAfterCommit = 0.0
        /// Probability that loading a drop for an actor fails.
        public var failRecovery = 0.0
        public init() {}
    }

    private let clock: any WallClock
    private var tables = InMemoryTables()
    private var faults = Faults()
    private var random: SplitMix64

    public nonisolated let purchaseGraceMilliseconds: Int

    public init(
        clock: any WallClock, seed: UInt64 = 1, purchaseGraceMilliseconds: Int = Defaults.purchaseGraceMilliseconds
    ) {
        self.clock = clock
        random = SplitMix64(seed: seed)
        self.purchaseGraceMilliseconds = purchaseGraceMilliseconds
        tables.purchaseGraceMilliseconds = purchaseGraceMilliseconds
    }

    public func setFaults(_ faults: Faults) { self.faults = faults }

    /// Batches refused because they vouched for a user who held a live unit (the only thing
    /// the tables refuse): a wrong memory, which a simulation reports.
    public private(set) var refusedVouches = 0

    /// Every reservation and purchase, for checking invariants over the "tables".
    public func contents() -> (drops: [DropRecord], reservations: [Reservation], purchases: [Purchase]) {
        (
            tables.drops.values.sorted { $0.id < $1.id },
            tables.reservationsByID.values.sorted { $0.id < $1.id },
            tables.purchasesByID.values.sorted { $0.id < $1.id }
        )
    }

    public func createDrop(_ spec: DropSpec) throws -> DropRecord {
        guard spec.problems.isEmpty else { throw EngineError(.invalidDrop, spec.problems.joined(separator: "; ")) }
        return tables.createDrop(spec, now: clock.now())
    }

    public func listDrops(after cursor: DropID?, limit: Int) -> [DropSnapshot] {
        tables.drops.values.filter { $0.id > (cursor ?? 0) }.sorted { $0.id < $1.id }.prefix(max(0, limit))
            .map {
                DropSnapshot(drop: $0, recentPurchases: tables.recentPurchases(of: $0.id), committedAt: clock.now())
            }
    }

    public func snapshot(of drop: DropID) -> DropSnapshot? {
        tables.drops[drop].map {
            DropSnapshot(drop: $0, recentPurchases: tables.recentPurchases(of: drop), committedAt: clock.now())
        }
    }

    public func recover(_ drop: DropID, epoch: Int64?) throws -> DropRecovery? {
        if random.chance(faults.failRecovery) {
            throw EngineError(.storeUnavailable, "injected fault: loading the drop failed")
        }
        if let epoch, tables.drops[drop] != nil {
            if tables.epoch(of: drop) != epoch {
                throw EngineError(
                    .fenced, "the lease of drop \(drop) moved past epoch \(epoch)", owner: tables.leases[drop]?.owner)
            }
            tables.leases[drop, default: LeaseRow()].epoch = epoch + 1
        }
        var recovery = tables.recovery(of: drop)
        recovery?.epoch = epoch.map { $0 + 1 }
        return recovery
    }

    public func acquireLease(on drop: DropID, for owner: LeaseOwner) throws -> LeaseGrant? {
        if random.chance(faults.failRecovery) {
            throw EngineError(.storeUnavailable, "injected fault: loading the drop failed")
        }
        return tables.acquireLease(on: drop, for: owner, now: clock.now())
    }

    public func renewLeases(_ epochs: [DropID: Int64], for owner: LeaseOwner) -> LeaseRenewal {
        tables.renewLeases(epochs, for: owner, now: clock.now())
    }

    public func releaseLeases(_ epochs: [DropID: Int64], of owner: LeaseOwner) {
        tables.releaseLeases(epochs, of: owner, now: clock.now())
    }

    public func reservations(of user: UserID) -> [Reservation] {
        tables.reservationsByID.values.filter { $0.userID == user }.sorted { $0.id > $1.id }
    }

    public func liveHold(of user: UserID, on drop: DropID) -> Reservation? {
        reservations(of: user).first { $0.dropID == drop && $0.status == .active }
    }

    public func dropsWithOverdueHolds(sweptBy owner: LeaseOwner?) -> [DropID] {
        let now = clock.now()
        return Set(
            tables.reservationsByID.values.filter {
                $0.status == .active
                    && Reservation.graceEnds(
                        createdAt: $0.createdAt, expiresAt: $0.expiresAt, capMilliseconds: purchaseGraceMilliseconds)
                        <= now
            }.map(\.dropID)
        )
        .filter { tables.maySweep($0, owner: owner, now: now) }.sorted()
    }

    public func upsertUser(_ user: UserID, name: String, role: String) { tables.users[user] = name }

    public func apply(_ batch: ClaimBatch) throws -> BatchOutcome {
        if random.chance(faults.failBeforeCommit) {
            throw EngineError(.batchFailed, "injected fault: batch refused before commit")
        }
        // All or nothing, as a transaction: a refused batch leaves the tables as they were,
        // its lease renewal included.
        var next = tables
        try next.admit(batch, now: clock.now())
        let outcome: BatchOutcome
        do {
            outcome = try next.apply(batch, now: clock.now())
        } catch {
            refusedVouches += 1
            throw error
        }
        tables = next
        if random.chance(faults.failAfterCommit) {
            throw EngineError(.outcomeUnknown, "injected fault: batch committed but its acknowledgement was lost")
        }
        return outcome
    }

    /// What `batch` would be answered if it were applied now; nothing changes.
    public func dryRun(_ batch: ClaimBatch) throws -> BatchOutcome {
        var copy = tables
        return try copy.apply(batch, now: clock.now())
    }
}
