// The invariants a dashboard can judge while the run goes, each second, from the client's
// answers so far and the database's rows at that instant; once broken, an invariant stays
// broken with its first counterexample. The rest (holds expiring on time, counters matching
// rows over the timeline, purchases matching holds, no undersell) need the whole history and
// the drained database: they are "judged at the end", by the checker, as in the report.
import Engine
import Foundation

struct OnlineInvariants: Sendable, Equatable {
    enum Status: Sendable, Equatable {
        case holds
        case broken(counterexample: String, atSeconds: Double)
        case judgedAtTheEnd
    }

    struct Drop: Sendable, Equatable {
        var id: DropID
        var name: String
        var stock: Int
        var perUserLimit: Int
    }

    let drops: [Drop]
    private(set) var noOversell = Status.holds
    private(set) var perUserLimits = Status.holds
    private(set) var acknowledgedWritesDurable = Status.holds

    init(drops: [Drop]) { self.drops = drops }

    /// Every invariant of the checker, in its order, with what is known of it now.
    var all: [(name: String, status: Status)] {
        [
            (InvariantName.noOversell, noOversell),
            (InvariantName.countersMatchRows, .judgedAtTheEnd),
            (InvariantName.purchasesMatchHolds, .judgedAtTheEnd),
            (InvariantName.perUserLimits, perUserLimits),
            (InvariantName.holdsExpire, .judgedAtTheEnd),
            (InvariantName.acknowledgedWritesDurable, acknowledgedWritesDurable),
            (InvariantName.noUndersell, .judgedAtTheEnd),
        ]
    }

    var anyBroken: Bool {
        all.contains { if case .broken = $0.status { true } else { false } }
    }

    /// Judges what the answers so far say (`tally`) and, when the database could be read this
    /// second, what its rows say.
    mutating func judge(_ tally: DashboardTally, rows: RowFacts?, atSeconds: Double) {
        let byID = Dictionary(uniqueKeysWithValues: drops.map { ($0.id, $0) })
        func label(_ id: DropID) -> String { byID[id].map { "drop \(id) (\($0.name))" } ?? "drop \(id)" }
        // Oversell as the buyers were told it (more purchases acknowledged than units), and a
        // buyer told of more purchases than the drop allows one buyer.
        if let oversold = tally.firstOversold {
            let stock = byID[oversold.drop]?.stock ?? 0
            Self.breakOnce(
                &noOversell,
                "\(label(oversold.drop)): \(oversold.purchases) purchases acknowledged to buyers by \(Self.seconds(Double(oversold.atMicroseconds) / 1e6)), stock \(stock)",
                Double(oversold.atMicroseconds) / 1e6)
        }
        if let past = tally.firstPastLimit {
            let limit = byID[past.key.drop]?.perUserLimit ?? 0
            Self.breakOnce(
                &perUserLimits,
                "user \(past.key.user) on \(label(past.key.drop)): \(past.purchases) purchases acknowledged by \(Self.seconds(Double(past.atMicroseconds) / 1e6)), limit \(limit)",
                Double(past.atMicroseconds) / 1e6)
        }
        guard let rows else { return }
        // Oversell in the rows: units purchased or held by a live hold past the stock, or
        // counters that claim more than the stock (or less than nothing left).
        for facts in rows.drops {
            let drop = facts.counters
            let units = facts.purchasedRows + facts.heldRows
            if units > drop.totalStock {
                Self.breakOnce(
                    &noOversell,
                    "\(label(drop.id)): \(facts.purchasedRows) purchased + \(facts.heldRows) held in its rows at \(Self.seconds(rows.atSeconds)), stock \(drop.totalStock)",
                    rows.atSeconds)
            } else if drop.sold + drop.reserved > drop.totalStock {
                Self.breakOnce(
                    &noOversell,
                    "\(label(drop.id)): counters sold \(drop.sold) + reserved \(drop.reserved) at \(Self.seconds(rows.atSeconds)), stock \(drop.totalStock)",
                    rows.atSeconds)
            }
        }
        if let buyer = rows.buyersPastRule.first {
            let rule =
                buyer.holding > 1
                ? "\(buyer.holding) live holds at once"
                : "\(buyer.purchased) purchased + \(buyer.holding) held, limit \(buyer.perUserLimit)"
            Self.breakOnce(
                &perUserLimits,
                "user \(buyer.user) on \(label(buyer.drop)) in the rows at \(Self.seconds(rows.atSeconds)): \(rule)",
                rows.atSeconds)
        }
        if let lost = rows.missing.first {
            let told = lost.operation == .reserve ? "a hold" : "a purchase"
            let found = lost.status.map { "its row is \($0)" } ?? "it has no row"
            Self.breakOnce(
                &acknowledgedWritesDurable,
                "reservation \(lost.acknowledged.reservation): \(told) acknowledged to user \(lost.acknowledged.user) at \(Self.seconds(Double(lost.acknowledged.answeredMicroseconds) / 1e6)), \(found) at \(Self.seconds(rows.atSeconds))",
                rows.atSeconds)
        }
    }

    private static func breakOnce(_ status: inout Status, _ counterexample: String, _ atSeconds: Double) {
        if case .broken = status { return }
        status = .broken(counterexample: counterexample, atSeconds: atSeconds)
    }

    static func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }
}
