// Invariants 5 and 6: what clients were told against what the rows say. Pure: rows and
// records in, verdicts out, so planted faults can be tested without a database too.
import Engine

enum ClientHistoryCheck {
    /// Invariant 5: every acknowledged success is in the database, and every purchase or hold
    /// in the database was acknowledged to a client or is explained by one of that client's
    /// indeterminate requests (an error or timeout).
    static func acknowledgedWritesDurable(_ rows: CheckedRows, _ history: ClientHistory) -> (InvariantResult, lostWrites: Int) {
        let reservations = Dictionary(rows.reservations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let purchases = Dictionary(rows.purchases.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var lost: [String] = []
        var toldReservations: Set<ReservationID> = []
        var toldPurchases: Set<PurchaseID> = []
        struct Key: Hashable { var drop: DropID; var user: UserID; var operation: OperationKind }
        var indeterminate: Set<Key> = []

        for record in history.records {
            if record.result.isIndeterminate {
                indeterminate.insert(Key(drop: record.drop, user: record.user, operation: record.operation))
                continue
            }
            if case .rejected(.alreadyHolding) = record.result, let id = record.reservationID { toldReservations.insert(id) }
            guard record.result == .ok else { continue }
            switch record.operation {
            case .reserve:
                guard let id = record.reservationID else { continue }
                toldReservations.insert(id)
                if let row = reservations[id], row.drop == record.drop, row.user == record.user { continue }
                lost.append("user \(record.user) was told reservation \(id) on drop \(record.drop); the database has \(reservations[id].map { "it for user \($0.user) on drop \($0.drop)" } ?? "no such reservation")")
            case .purchase:
                guard let id = record.purchaseID else { continue }
                toldPurchases.insert(id)
                if let row = purchases[id], row.drop == record.drop, row.user == record.user { continue }
                lost.append("user \(record.user) was told purchase \(id) on drop \(record.drop); the database has \(purchases[id].map { "it for user \($0.user) on drop \($0.drop)" } ?? "no such purchase")")
            case .cancel:
                guard let id = record.reservationID else { continue }
                if let row = reservations[id], row.status == .cancelled { continue }
                lost.append("user \(record.user) was told reservation \(id) on drop \(record.drop) was cancelled; the database has it \(reservations[id].map { $0.status.rawValue } ?? "missing")")
            }
        }
        let lostWrites = lost.count
        var unexplained: [String] = []
        var explained = 0
        for purchase in rows.purchases where !toldPurchases.contains(purchase.id) {
            if indeterminate.contains(Key(drop: purchase.drop, user: purchase.user, operation: .purchase)) { explained += 1; continue }
            unexplained.append("purchase \(purchase.id) (user \(purchase.user), drop \(purchase.drop), reservation \(purchase.reservationID)) was never acknowledged and no request of that user failed")
        }
        for reservation in rows.reservations where !toldReservations.contains(reservation.id) {
            if indeterminate.contains(Key(drop: reservation.drop, user: reservation.user, operation: .reserve)) { explained += 1; continue }
            unexplained.append("reservation \(reservation.id) (user \(reservation.user), drop \(reservation.drop)) was never acknowledged and no reserve of that user failed")
        }
        let result = InvariantResult.verdict(
            5, InvariantName.acknowledgedWritesDurable, violations: lost + unexplained,
            ok: "every acknowledged write is in the database; every row was acknowledged (\(explained) explained by indeterminate requests)",
            broken: "acknowledged writes missing or rows nobody was told of")
        return (result, lostWrites)
    }

    /// Invariant 6: no "sold out" while a unit was free (within the clock tolerance), and a drop
    /// whose buyers were still trying when the run stopped has no unit left.
    static func noUndersell(_ rows: CheckedRows, _ history: ClientHistory, toleranceMicroseconds: Int64) -> InvariantResult {
        var byDrop: [DropID: [HeldUnitsTimeline.Row]] = [:]
        for reservation in rows.reservations {
            let released = reservation.status == .cancelled || reservation.status == .expired ? reservation.endedMicroseconds : nil
            byDrop[reservation.drop, default: []].append(HeldUnitsTimeline.Row(createdMicroseconds: reservation.createdMicroseconds, releasedMicroseconds: released))
        }
        let totals = Dictionary(rows.drops.map { ($0.id, $0.totalStock) }, uniquingKeysWith: { first, _ in first })
        let timelines = byDrop.mapValues(HeldUnitsTimeline.init)
        let empty = HeldUnitsTimeline([])
        let zero = history.startedAtEpochMicroseconds
        var violations: [String] = []
        var soldOutAnswers = 0
        for record in history.records where record.result == .rejected(.soldOut) {
            guard let total = totals[record.drop] else { continue }
            soldOutAnswers += 1
            let from = zero + record.sentMicroseconds - toleranceMicroseconds
            let to = zero + record.answeredMicroseconds + toleranceMicroseconds
            let most = (timelines[record.drop] ?? empty).mostTaken(from: from, to: to)
            if most < total {
                violations.append("user \(record.user) was told sold_out on drop \(record.drop) at +\(record.answeredMicroseconds / 1000) ms while at most \(most) of \(total) units were held or sold")
            }
        }
        for (drop, cut) in history.cutOff.sorted(by: { $0.key < $1.key }) where cut.users > 0 {
            guard let total = totals[drop] else { continue }
            let at = zero + cut.atMicroseconds
            let most = (timelines[drop] ?? empty).mostTaken(from: at - toleranceMicroseconds, to: at + toleranceMicroseconds)
            if most < total {
                violations.append("drop \(drop): \(cut.users) buyers were still trying when the run stopped at +\(cut.atMicroseconds / 1000) ms, yet \(total - most) of \(total) units were available")
            }
        }
        return .verdict(6, InvariantName.noUndersell, violations: violations,
                        ok: "all \(soldOutAnswers) sold_out answers matched a moment with every unit held or sold",
                        broken: "sold_out answers or stopped buyers while units were free")
    }
}
