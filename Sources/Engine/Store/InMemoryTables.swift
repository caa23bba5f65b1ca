// The in-memory store's tables as a value, and the batch applied to them step by step as
// stockdrop_apply_batch applies it (Migrations+ReplayRules, +AskedPurchases): expire overdue
// holds (past the purchase grace, or asked for late), the first purchase-or-cancel per user,
// reserves in arrival order while stock lasts, then an answer for every item that did not
// act, taken from the user's last hold on the drop.
import Foundation

struct InMemoryTables {
    var drops: [DropID: DropRecord] = [:]
    var reservationsByID: [ReservationID: Reservation] = [:]
    var reservationIDsByDrop: [DropID: [ReservationID]] = [:]
    var purchasesByID: [PurchaseID: Purchase] = [:]
    var users: [UserID: String] = [:]
    var leases: [DropID: LeaseRow] = [:]
    var purchaseGraceMilliseconds = Defaults.purchaseGraceMilliseconds
    private var nextID: Int64 = 1

    mutating func createDrop(_ spec: DropSpec, now: Date) -> DropRecord {
        let record = DropRecord(id: takeID(), spec: spec, sold: 0, reserved: 0, createdAt: now)
        drops[record.id] = record
        return record
    }

    func recovery(of drop: DropID) -> DropRecovery? {
        guard let record = drops[drop] else { return nil }
        let holds = holds(of: drop).filter { $0.status == .active }
        let purchases = purchasesByID.values.filter { $0.dropID == drop }.sorted { $0.id < $1.id }
        return DropRecovery(drop: record, activeHolds: holds, purchases: purchases)
    }

    func recentPurchases(of drop: DropID) -> [RecentPurchase] {
        purchasesByID.values.filter { $0.dropID == drop }.sorted { $0.id > $1.id }.prefix(Defaults.recentPurchases)
            .map {
                RecentPurchase(
                    purchaseID: $0.id, userID: $0.userID, buyerName: users[$0.userID], createdAt: $0.createdAt)
            }
    }

    /// Throws what PostgreSQL would, and then like it applies nothing (the caller's copy is
    /// only replaced by a batch that went through).
    mutating func apply(_ batch: ClaimBatch, now: Date) throws -> BatchOutcome {
        guard var drop = drops[batch.dropID] else {
            return BatchOutcome(
                results: batch.items.map { _ in .rejected(.unknownDrop) }, expired: [], sold: 0, reserved: 0,
                committedAt: now)
        }
        var results = [ClaimResult?](repeating: nil, count: batch.items.count)

        // 1. Holds overdue past the purchase grace expire first, and an overdue one whose
        // user's purchase here was asked at or after its `expires_at`.
        let asked = Self.earliestAsks(of: batch, now: now)
        let buyers = Set(batch.items.filter { $0.kind == .purchase }.map(\.userID))
        var expired: [ExpiredHold] = []
        for id in reservationIDsByDrop[drop.id] ?? [] {
            guard var hold = reservationsByID[id], hold.status == .active, hold.expiresAt <= now else { continue }
            let askedLate = buyers.contains(hold.userID) && (asked[hold.userID] ?? now) >= hold.expiresAt
            let graceEnds = Reservation.graceEnds(
                createdAt: hold.createdAt, expiresAt: hold.expiresAt, capMilliseconds: purchaseGraceMilliseconds)
            guard askedLate || graceEnds <= now else { continue }
            hold.status = .expired
            hold.endedAt = now
            reservationsByID[id] = hold
            expired.append(ExpiredHold(reservationID: id, userID: hold.userID))
            drop.reserved -= 1
        }

        // 2. The first purchase-or-cancel per user, unless a purchase carries a key this user
        // already spent (a replay here, refused on another drop).
        var actedUsers = Set<UserID>()
        for (index, item) in batch.items.enumerated() where item.kind != .reserve {
            if item.kind == .purchase, let key = item.idempotencyKey, purchase(of: item.userID, key: key) != nil {
                continue
            }
            guard actedUsers.insert(item.userID).inserted else { continue }
            guard var hold = holds(of: drop.id, user: item.userID).first(where: { $0.status == .active }) else {
                continue
            }
            hold.endedAt = now
            drop.reserved -= 1
            if item.kind == .cancel {
                hold.status = .cancelled
                results[index] = .cancelled(hold)
            } else {
                hold.status = .purchased
                drop.sold += 1
                let purchase = Purchase(
                    id: takeID(), reservationID: hold.id, dropID: drop.id, userID: item.userID,
                    priceCents: drop.spec.priceCents, idempotencyKey: item.idempotencyKey, createdAt: now)
                purchasesByID[purchase.id] = purchase
                results[index] = .purchased(purchase, replayed: false)
            }
            reservationsByID[hold.id] = hold
        }

        // 3. Reserves in arrival order while stock lasts.
        let started = drop.spec.startsAt.map { $0 <= now } ?? true
        var reservingUsers = Set<UserID>()
        // A user with any reserve no one vouched for is checked, as the function probes them.
        let probed = Set(batch.items.filter { $0.kind == .reserve && !$0.vouched }.map(\.userID))
        for (index, item) in batch.items.enumerated() where item.kind == .reserve && started {
            guard reservingUsers.insert(item.userID).inserted else { continue }
            guard drop.spec.totalStock - drop.sold - drop.reserved > 0 else { continue }
            let held = holds(of: drop.id, user: item.userID)
            // A vouched reserve is not checked here (migration 8): a user who holds is refused
            // by the one-live-hold index, failing the batch; the limit is taken on trust.
            let vouched = item.vouched && !probed.contains(item.userID)
            let holdsLive = held.contains { $0.status == .active }
            if vouched, holdsLive {
                throw EngineError(
                    .batchFailed,
                    "the database refused the batch; nothing was applied: a vouched reserve for user \(item.userID), who holds a live unit (reservations_one_active_per_user)"
                )
            }
            guard
                vouched
                    || (!holdsLive
                        && held.count(where: { $0.status == .active || $0.status == .purchased })
                            < drop.spec.perUserLimit)
            else { continue }
            let hold = Reservation(
                id: takeID(), dropID: drop.id, userID: item.userID, status: .active, createdAt: now,
                expiresAt: now.addingTimeInterval(Double(drop.spec.reserveTTLMilliseconds) / 1000))
            reservationsByID[hold.id] = hold
            reservationIDsByDrop[drop.id, default: []].append(hold.id)
            drop.reserved += 1
            results[index] = .reserved(hold)
        }
        precondition(
            drop.sold + drop.reserved <= drop.spec.totalStock && drop.reserved >= 0, "in-memory store would oversell")
        drops[drop.id] = drop

        // 4. An answer for whatever did not act.
        for (index, item) in batch.items.enumerated() where results[index] == nil {
            results[index] = answer(for: item, drop: drop, started: started)
        }
        return BatchOutcome(
            results: results.map { $0! }, expired: expired, sold: drop.sold, reserved: drop.reserved, committedAt: now,
            totalStock: drop.spec.totalStock)
    }

    private func answer(for item: ClaimItem, drop: DropRecord, started: Bool) -> ClaimResult {
        let held = holds(of: drop.id, user: item.userID)
        let last = held.max { $0.id < $1.id }
        switch item.kind {
        case .reserve:
            if !started { return .rejected(.notStarted) }
            if held.contains(where: { $0.status == .active }) { return .rejected(.alreadyHolding) }
            if held.count(where: { $0.status == .active || $0.status == .purchased }) >= drop.spec.perUserLimit {
                return .rejected(.limitReached)
            }
            return .rejected(.soldOut)
        case .purchase:
            if let key = item.idempotencyKey, let spent = purchase(of: item.userID, key: key) {
                return spent.dropID == drop.id ? .purchased(spent, replayed: true) : .rejected(.idempotencyKeyReused)
            }
            if item.idempotencyKey == nil, let last, last.status == .purchased,
                let bought = purchasesByID.values.first(where: { $0.reservationID == last.id })
            {
                return .purchased(bought, replayed: true)
            }
            return last?.status == .expired ? .rejected(.expired) : .rejected(.noActiveReservation)
        case .cancel:
            if let last, last.status == .cancelled { return .cancelled(last) }
            return .rejected(.noActiveReservation)
        }
    }

    /// Each user's earliest stated ask among the batch's purchases, never later than `now`
    /// (the function's `v_ask_*`).
    static func earliestAsks(of batch: ClaimBatch, now: Date) -> [UserID: Date] {
        let asks = batch.items.compactMap { item in item.askedAt.map { (item.userID, min($0, now)) } }
        return Dictionary(asks, uniquingKeysWith: min)
    }

    /// The purchase this user made with `key`, on any drop (a key names one purchase of one user).
    private func purchase(of user: UserID, key: String) -> Purchase? {
        purchasesByID.values.first { $0.userID == user && $0.idempotencyKey == key }
    }

    private func holds(of drop: DropID, user: UserID? = nil) -> [Reservation] {
        (reservationIDsByDrop[drop] ?? []).compactMap { reservationsByID[$0] }.filter {
            user == nil || $0.userID == user
        }
    }

    private mutating func takeID() -> Int64 {
        defer { nextID += 1 }
        return nextID
    }
}
