// Invariants 1 and 3 at every instant of the run, not only at its end: a run drains past
// every TTL, so an end-state count cannot see two holds of one unit that both later expired.
// Rebuilt from the rows as the database wrote them: a hold takes a unit from `created_at`
// until its `ended_at` (for good once PURCHASED, while ACTIVE until the check). Pure: rows
// in, verdicts out.
import Engine
import Foundation

enum TimelineCheck {
    /// Per drop, the database's own view of a hold's life.
    static func storeRow(_ reservation: CheckedRows.ReservationRow) -> HeldUnitsTimeline.Row {
        let released = reservation.status == .purchased ? nil : reservation.endedMicroseconds
        return HeldUnitsTimeline.Row(
            createdMicroseconds: reservation.createdMicroseconds, releasedMicroseconds: released)
    }

    struct StockOverTime {
        var violations: [String] = []
        /// Units held or sold past total stock at the worst instant, summed over drops.
        var oversold = 0
        /// Per drop, the first instant every unit was held or sold (epoch microseconds).
        var soldOutAt: [DropID: Int64] = [:]
    }

    /// Invariant 1: per drop, at every instant, units held + sold ≤ total stock.
    static func stock(_ rows: CheckedRows, clock: CheckClock) -> StockOverTime {
        var result = StockOverTime()
        let byDrop = Dictionary(grouping: rows.reservations, by: \.drop)
        for drop in rows.drops {
            let reservations = byDrop[drop.id] ?? []
            let timeline = HeldUnitsTimeline(reservations.map(storeRow))
            if drop.totalStock > 0, let first = timeline.firstInstant(reaching: drop.totalStock) {
                result.soldOutAt[drop.id] = first
            }
            guard let peak = timeline.peak, peak.units > drop.totalStock else { continue }
            result.oversold += peak.units - drop.totalStock
            let alive = reservations.filter { storeRow($0).takes(at: peak.atMicroseconds) }.map(\.id).sorted()
            result.violations.append(
                "drop \(drop.id): \(peak.units) units held or sold at \(clock.describe(peak.atMicroseconds)), total stock \(drop.totalStock) "
                    + "(reservations \(list(alive)))")
        }
        return result
    }

    /// Invariant 3: per user per drop, at every instant, at most one live hold, and live holds
    /// plus purchases within the drop's limit.
    static func perUser(_ rows: CheckedRows, clock: CheckClock) -> [String] {
        let limits = Dictionary(rows.drops.map { ($0.id, $0.perUserLimit) }, uniquingKeysWith: { first, _ in first })
        struct Key: Hashable {
            var drop: DropID
            var user: UserID
        }
        var violations: [String] = []
        let groups = Dictionary(grouping: rows.reservations) { Key(drop: $0.drop, user: $0.user) }
        let ordered = groups.sorted { ($0.key.drop, $0.key.user) < ($1.key.drop, $1.key.user) }
        for (key, reservations) in ordered where reservations.count > 1 {
            // A hold is live until it ends, whichever way: a purchase ends it as a hold.
            let live = reservations.map {
                HeldUnitsTimeline.Row(
                    createdMicroseconds: $0.createdMicroseconds, releasedMicroseconds: $0.endedMicroseconds)
            }
            if let peak = HeldUnitsTimeline(live).peak, peak.units > 1 {
                let ids = zip(reservations, live).filter { $1.takes(at: peak.atMicroseconds) }.map(\.0.id).sorted()
                violations.append(
                    "user \(key.user) held \(peak.units) units of drop \(key.drop) at once at "
                        + "\(clock.describe(peak.atMicroseconds)) (reservations \(list(ids)))")
            }
            let limit = limits[key.drop] ?? 1
            let counted = reservations.map(storeRow)
            if let peak = HeldUnitsTimeline(counted).peak, peak.units > limit {
                let ids = zip(reservations, counted).filter { $1.takes(at: peak.atMicroseconds) }.map(\.0.id).sorted()
                violations.append(
                    "user \(key.user) had \(peak.units) holds and purchases on drop \(key.drop) at "
                        + "\(clock.describe(peak.atMicroseconds)), limit \(limit) (reservations \(list(ids)))")
            }
        }
        return violations
    }

    static func list(_ ids: [Int64]) -> String {
        ids.count <= 8
            ? ids.map(String.init).joined(separator: ", ")
            : ids.prefix(8).map(String.init).joined(separator: ", ") + " and \(ids.count - 8) more"
    }
}

/// How the checker names an instant: relative to the run's start when it knows it (the
/// history's zero), else as the database's UTC time.
struct CheckClock {
    var zeroMicroseconds: Int64?

    func describe(_ micros: Int64) -> String {
        if let zeroMicroseconds {
            let offset = Int64((Double(micros - zeroMicroseconds) / 1_000).rounded(.down))
            return offset >= 0 ? "+\(offset) ms" : "\(-offset) ms before the run's start"
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(micros) / 1e6))
    }
}
