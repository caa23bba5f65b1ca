// A store in memory with the same contract as PostgreSQL's (DropStoreContract proves it):
// for deterministic simulation with a ManualClock and injected faults.
import Foundation

public actor InMemoryStore: DropStore {
    /// Faults a simulation can inject into the next batches.
    public struct Faults: Sendable {
        /// Probability that a batch fails before applying anything.
        public var failBeforeCommit = 0.0
        /// Probability that a batch commits but its caller hears an error (an ack lost).
        public var failAfterCommit = 0.0
        public init() {}
    }

    private let clock: any WallClock
    private var drops: [DropID: DropRecord] = [:]
    private var reservationsByID: [ReservationID: Reservation] = [:]
    private var reservationIDsByDrop: [DropID: [ReservationID]] = [:]
    private var purchasesByID: [PurchaseID: Purchase] = [:]
    private var users: [UserID: String] = [:]
    private var nextID: Int64 = 1
    private var faults = Faults()
    private var random: SplitMix64

    public init(clock: any WallClock, seed: UInt64 = 1) {
        self.clock = clock
        random = SplitMix64(seed: seed)
    }

    public func setFaults(_ faults: Faults) { self.faults = faults }

    /// Every reservation and purchase, for checking invariants over the "tables".
    public func contents() -> (drops: [DropRecord], reservations: [Reservation], purchases: [Purchase]) {
        (drops.values.sorted { $0.id < $1.id },
         reservationsByID.values.sorted { $0.id < $1.id },
         purchasesByID.values.sorted { $0.id < $1.id })
    }

    public func createDrop(_ spec: DropSpec) throws -> DropRecord {
        guard spec.problems.isEmpty else { throw EngineError(.invalidDrop, spec.problems.joined(separator: "; ")) }
        let record = DropRecord(id: takeID(), spec: spec, sold: 0, reserved: 0, createdAt: clock.now())
        drops[record.id] = record
        return record
    }

    public func listDrops(after cursor: DropID?, limit: Int) -> [DropSnapshot] {
        drops.values.filter { $0.id > (cursor ?? 0) }.sorted { $0.id < $1.id }.prefix(max(0, limit))
            .map { DropSnapshot(drop: $0, recentPurchases: recentPurchases(of: $0.id)) }
    }

    public func snapshot(of drop: DropID) -> DropSnapshot? {
        drops[drop].map { DropSnapshot(drop: $0, recentPurchases: recentPurchases(of: drop)) }
    }

    public func recover(_ drop: DropID) -> DropRecovery? {
        guard let record = drops[drop] else { return nil }
        let holds = holds(of: drop).filter { $0.status == .active }
        let purchases = purchasesByID.values.filter { $0.dropID == drop }.sorted { $0.id < $1.id }
        let counts = purchases.reduce(into: [UserID: Int]()) { $0[$1.userID, default: 0] += 1 }
        return DropRecovery(drop: record, activeHolds: holds, purchasedCounts: counts, purchases: purchases)
    }

    public func reservations(of user: UserID) -> [Reservation] {
        reservationsByID.values.filter { $0.userID == user }.sorted { $0.id > $1.id }
    }

    public func dropsWithOverdueHolds() -> [DropID] {
        let now = clock.now()
        return Set(reservationsByID.values.filter { $0.status == .active && $0.expiresAt <= now }.map(\.dropID)).sorted()
    }

    public func upsertUser(_ user: UserID, name: String, role: String) { users[user] = name }

    public func apply(_ batch: ClaimBatch) throws -> BatchOutcome {
        if random.chance(faults.failBeforeCommit) {
            throw EngineError(.batchFailed, "injected fault: batch failed before commit")
        }
        let outcome = applyNow(batch)
        if random.chance(faults.failAfterCommit) {
            throw EngineError(.batchFailed, "injected fault: batch committed but its acknowledgement was lost")
        }
        return outcome
    }

    // MARK: - The batch, step by step as in stockdrop_apply_batch

    private func applyNow(_ batch: ClaimBatch) -> BatchOutcome {
        let now = clock.now()
        guard var drop = drops[batch.dropID] else {
            return BatchOutcome(results: batch.items.map { _ in .rejected(.unknownDrop) }, expired: [], sold: 0, reserved: 0, committedAt: now)
        }
        var results = [ClaimResult?](repeating: nil, count: batch.items.count)

        // 1. Overdue holds expire first.
        var expired: [ExpiredHold] = []
        for id in reservationIDsByDrop[drop.id] ?? [] {
            guard var hold = reservationsByID[id], hold.status == .active, hold.expiresAt <= now else { continue }
            hold.status = .expired
            hold.endedAt = now
            reservationsByID[id] = hold
            expired.append(ExpiredHold(reservationID: id, userID: hold.userID))
            drop.reserved -= 1
        }

        // 2 and 3. The first purchase-or-cancel per user, unless a purchase replays a used key.
        var actedUsers = Set<UserID>()
        for (index, item) in batch.items.enumerated() where item.kind != .reserve {
            if item.kind == .purchase, let key = item.idempotencyKey,
               purchasesByID.values.contains(where: { $0.userID == item.userID && $0.idempotencyKey == key }) {
                continue
            }
            guard actedUsers.insert(item.userID).inserted else { continue }
            guard var hold = activeHold(of: item.userID, on: drop.id) else { continue }
            hold.endedAt = now
            drop.reserved -= 1
            if item.kind == .cancel {
                hold.status = .cancelled
                results[index] = .cancelled(hold)
            } else {
                hold.status = .purchased
                drop.sold += 1
                let purchase = Purchase(id: takeID(), reservationID: hold.id, dropID: drop.id, userID: item.userID,
                                        priceCents: drop.spec.priceCents, idempotencyKey: item.idempotencyKey, createdAt: now)
                purchasesByID[purchase.id] = purchase
                results[index] = .purchased(purchase, replayed: false)
            }
            reservationsByID[hold.id] = hold
        }

        // 4. Reserves in arrival order while stock lasts.
        let started = drop.spec.startsAt.map { $0 <= now } ?? true
        var reservingUsers = Set<UserID>()
        for (index, item) in batch.items.enumerated() where item.kind == .reserve && started {
            guard reservingUsers.insert(item.userID).inserted else { continue }
            guard drop.spec.totalStock - drop.sold - drop.reserved > 0 else { continue }
            let held = holds(of: drop.id, user: item.userID)
            guard held.count { $0.status == .active || $0.status == .purchased } < drop.spec.perUserLimit,
                  !held.contains(where: { $0.status == .active }) else { continue }
            let hold = Reservation(id: takeID(), dropID: drop.id, userID: item.userID, status: .active, createdAt: now,
                                   expiresAt: now.addingTimeInterval(Double(drop.spec.reserveTTLMilliseconds) / 1000))
            reservationsByID[hold.id] = hold
            reservationIDsByDrop[drop.id, default: []].append(hold.id)
            drop.reserved += 1
            results[index] = .reserved(hold)
        }
        precondition(drop.sold + drop.reserved <= drop.spec.totalStock && drop.reserved >= 0, "in-memory store would oversell")
        drops[drop.id] = drop

        // 5. Rejections for whatever did not apply.
        for (index, item) in batch.items.enumerated() where results[index] == nil {
            results[index] = rejection(for: item, drop: drop, started: started)
        }
        return BatchOutcome(results: results.map { $0! }, expired: expired, sold: drop.sold, reserved: drop.reserved, committedAt: now)
    }

    private func rejection(for item: ClaimItem, drop: DropRecord, started: Bool) -> ClaimResult {
        let held = holds(of: drop.id, user: item.userID)
        switch item.kind {
        case .reserve:
            if !started { return .rejected(.notStarted) }
            if held.contains(where: { $0.status == .active }) { return .rejected(.alreadyHolding) }
            if held.count(where: { $0.status == .active || $0.status == .purchased }) >= drop.spec.perUserLimit {
                return .rejected(.limitReached)
            }
            return .rejected(.soldOut)
        case .purchase:
            let previous = purchasesByID.values
                .filter { $0.userID == item.userID && $0.dropID == drop.id && (item.idempotencyKey == nil || $0.idempotencyKey == item.idempotencyKey) }
                .max { $0.id < $1.id }
            if let previous { return .purchased(previous, replayed: true) }
            if held.max(by: { $0.id < $1.id })?.status == .expired { return .rejected(.expired) }
            return .rejected(.noActiveReservation)
        case .cancel:
            return .rejected(.noActiveReservation)
        }
    }

    private func activeHold(of user: UserID, on drop: DropID) -> Reservation? {
        holds(of: drop, user: user).first { $0.status == .active }
    }

    private func holds(of drop: DropID, user: UserID? = nil) -> [Reservation] {
        (reservationIDsByDrop[drop] ?? []).compactMap { reservationsByID[$0] }.filter { user == nil || $0.userID == user }
    }

    private func recentPurchases(of drop: DropID) -> [RecentPurchase] {
        purchasesByID.values.filter { $0.dropID == drop }.sorted { $0.id > $1.id }.prefix(3)
            .map { RecentPurchase(purchaseID: $0.id, userID: $0.userID, buyerName: users[$0.userID], createdAt: $0.createdAt) }
    }

    private func takeID() -> Int64 {
        defer { nextID += 1 }
        return nextID
    }
}
