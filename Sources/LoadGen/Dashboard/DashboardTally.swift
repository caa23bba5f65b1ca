// What the live dashboard knows from the answers alone, as they arrive: requests by operation
// and outcome (this second and since the start), latency histograms the same two ways, and
// the client's side of the invariants that can be judged while the run goes: the purchases
// acknowledged to buyers per drop and per buyer, and the acknowledgements not yet looked up
// in the database. A value: `LiveBoard` keeps one behind a lock and feeds it every answer.
import Engine

struct DashboardTally: Sendable {
    /// How an answer counts on the dashboard: the same four as the progress line.
    enum Outcome: String, CaseIterable, Sendable {
        case ok, rejected, shed, error

        init(_ result: OperationRecord.Result) {
            switch result {
            case .ok: self = .ok
            case .rejected(.overloaded): self = .shed
            case .rejected: self = .rejected
            case .failed, .error, .timeout: self = .error
            }
        }
    }

    struct Key: Hashable, Sendable {
        var drop: DropID
        var user: UserID
    }

    /// Operation → outcome → answers, since the start and since the last `takeSecond`.
    private(set) var total: [OperationKind: [Outcome: Int]] = [:]
    private(set) var second: [OperationKind: [Outcome: Int]] = [:]
    /// Latency from the intended send (what a buyer felt), per operation.
    private(set) var totalLatency: [OperationKind: LatencyHistogram] = [:]
    private(set) var secondLatency: [OperationKind: LatencyHistogram] = [:]
    /// Reservation ids of the purchases acknowledged to buyers (a replayed purchase answers
    /// with the same reservation, so sets, not counts).
    private(set) var purchasedByDrop: [DropID: Set<ReservationID>] = [:]
    private(set) var purchasedByBuyer: [Key: Set<ReservationID>] = [:]
    /// Acknowledged and not yet looked up: a hold must have its row, a purchase its row PURCHASED.
    private(set) var unconfirmedHolds: [Acknowledged] = []
    private(set) var unconfirmedPurchases: [Acknowledged] = []

    /// Each drop's stock and per-buyer limit, by id.
    let rules: [DropID: (stock: Int, perUserLimit: Int)]
    /// The first drop told of more purchases than its stock, and the first buyer told of more
    /// than the limit: found as the answer arrives, not by a scan each second.
    private(set) var firstOversold: (drop: DropID, purchases: Int, atMicroseconds: Int64)?
    private(set) var firstPastLimit: (key: Key, purchases: Int, atMicroseconds: Int64)?

    init(drops: [OnlineInvariants.Drop] = []) {
        rules = Dictionary(uniqueKeysWithValues: drops.map { ($0.id, ($0.stock, $0.perUserLimit)) })
    }

    struct Acknowledged: Sendable, Equatable {
        var reservation: ReservationID
        var user: UserID
        var drop: DropID
        var answeredMicroseconds: Int64
    }

    mutating func absorb(_ record: OperationRecord) {
        let outcome = Outcome(record.result)
        total[record.operation, default: [:]][outcome, default: 0] += 1
        second[record.operation, default: [:]][outcome, default: 0] += 1
        totalLatency[record.operation, default: LatencyHistogram()].record(record.latencyMicroseconds)
        secondLatency[record.operation, default: LatencyHistogram()].record(record.latencyMicroseconds)
        guard outcome == .ok, let reservation = record.reservationID else { return }
        let acknowledged = Acknowledged(
            reservation: reservation, user: record.user, drop: record.drop,
            answeredMicroseconds: record.answeredMicroseconds)
        switch record.operation {
        case .reserve:
            unconfirmedHolds.append(acknowledged)
        case .purchase:
            let key = Key(drop: record.drop, user: record.user)
            let forDrop = purchasedByDrop[record.drop, default: []].insert(reservation).inserted
            purchasedByBuyer[key, default: []].insert(reservation)
            unconfirmedPurchases.append(acknowledged)
            guard forDrop, let rule = rules[record.drop] else { return }
            let dropCount = purchasedByDrop[record.drop]?.count ?? 0
            if firstOversold == nil, dropCount > rule.stock {
                firstOversold = (record.drop, dropCount, record.answeredMicroseconds)
            }
            let buyerCount = purchasedByBuyer[key]?.count ?? 0
            if firstPastLimit == nil, buyerCount > rule.perUserLimit {
                firstPastLimit = (key, buyerCount, record.answeredMicroseconds)
            }
        case .cancel:
            break
        }
    }

    /// This second's counts and latencies, which start again from zero.
    mutating func takeSecond() -> (counts: [OperationKind: [Outcome: Int]], latency: [OperationKind: LatencyHistogram])
    {
        defer {
            second = [:]
            secondLatency = [:]
        }
        return (second, secondLatency)
    }

    /// Up to `limit` acknowledgements to look up now, oldest first, half the budget for each
    /// kind (what one kind leaves goes to the other); they are not handed out again unless
    /// `giveBack` returns them (a lookup that failed).
    mutating func takeUnconfirmed(limit: Int) -> (holds: [Acknowledged], purchases: [Acknowledged]) {
        let purchaseShare = max(limit / 2, limit - unconfirmedHolds.count)
        let purchases = Array(unconfirmedPurchases.prefix(purchaseShare))
        let holds = Array(unconfirmedHolds.prefix(limit - purchases.count))
        unconfirmedHolds.removeFirst(holds.count)
        unconfirmedPurchases.removeFirst(purchases.count)
        return (holds, purchases)
    }

    /// Acknowledgements waiting to be looked up.
    var unconfirmedCount: (holds: Int, purchases: Int) { (unconfirmedHolds.count, unconfirmedPurchases.count) }

    mutating func giveBack(holds: [Acknowledged], purchases: [Acknowledged]) {
        unconfirmedHolds.insert(contentsOf: holds, at: 0)
        unconfirmedPurchases.insert(contentsOf: purchases, at: 0)
    }
}
