// When each batch's rows took effect, as far as the rows and the client history can tell. A
// row carries its batch's clock reading, read under the drop's lock before the batch's work
// and its commit. No caller can hear of a row before its batch committed, and the next batch
// on the drop reads its clock only once it holds the lock that batch released: so a batch took
// effect at one instant between its clock reading and the earlier of the first moment a caller
// heard of one of its rows and the next batch's clock reading (Jepsen's rule: an operation
// takes effect between its call and its answer). Pure.
import Engine

struct BatchAnswers {
    private struct Stamp: Hashable {
        var drop: DropID
        var microseconds: Int64
    }

    /// Per batch, the earliest instant (epoch microseconds) a caller heard of one of its rows.
    private var firstAnswer: [Stamp: Int64] = [:]
    /// Per drop, every batch's clock reading that left a row, ascending.
    private var stampsByDrop: [DropID: [Int64]] = [:]
    /// Per row a caller heard of, from the batch's clock reading to the first caller's answer
    /// naming it: the time a batch spends between its clock reading and its answers.
    private(set) var stampToAnswerMicroseconds: [Int64] = []

    init(_ rows: CheckedRows, _ history: ClientHistory) {
        var stamps: [DropID: Set<Int64>] = [:]
        for reservation in rows.reservations {
            stamps[reservation.drop, default: []].insert(reservation.createdMicroseconds)
            if let ended = reservation.endedMicroseconds { stamps[reservation.drop, default: []].insert(ended) }
        }
        for purchase in rows.purchases { stamps[purchase.drop, default: []].insert(purchase.createdMicroseconds) }
        stampsByDrop = stamps.mapValues { $0.sorted() }
        let reservations = Dictionary(rows.reservations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let purchases = Dictionary(rows.purchases.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        /// A write a caller heard of: a hold made, a purchase made, a hold cancelled.
        struct Write: Hashable {
            var operation: OperationKind
            var id: Int64
        }
        var firstPerWrite: [Write: (stamp: Int64, answered: Int64)] = [:]
        for record in history.records {
            let write: Write
            let stamp: Int64?
            switch (record.operation, record.result) {
            case (.reserve, .ok), (.reserve, .rejected(.alreadyHolding)):
                guard let id = record.reservationID, let row = reservations[id], row.drop == record.drop else {
                    continue
                }
                (write, stamp) = (Write(operation: .reserve, id: id), row.createdMicroseconds)
            case (.purchase, .ok):
                guard let id = record.purchaseID, let row = purchases[id], row.drop == record.drop else { continue }
                (write, stamp) = (Write(operation: .purchase, id: id), row.createdMicroseconds)
            case (.cancel, .ok):
                guard let id = record.reservationID, let row = reservations[id], row.drop == record.drop,
                    row.status == .cancelled
                else { continue }
                (write, stamp) = (Write(operation: .cancel, id: id), row.endedMicroseconds)
            default:
                continue
            }
            guard let stamp else { continue }
            let answered = history.startedAtEpochMicroseconds + record.answeredMicroseconds
            let batch = Stamp(drop: record.drop, microseconds: stamp)
            firstAnswer[batch] = min(firstAnswer[batch] ?? answered, answered)
            firstPerWrite[write] = (stamp, min(firstPerWrite[write]?.answered ?? answered, answered))
        }
        stampToAnswerMicroseconds = firstPerWrite.values.map { max(0, $0.answered - $0.stamp) }
    }

    /// The latest instant a row stamped `microseconds` on `drop` can have taken effect, or nil
    /// when nothing bounds it (no caller heard of its batch and no later batch left a row).
    func latestEffect(drop: DropID, stampedAt microseconds: Int64) -> Int64? {
        let answered = firstAnswer[Stamp(drop: drop, microseconds: microseconds)]
        let next = nextStamp(on: drop, after: microseconds)
        guard let bound = [answered, next].compactMap({ $0 }).min() else { return nil }
        // A client clock behind the database's could put an answer before the row's stamp.
        return max(bound, microseconds)
    }

    private func nextStamp(on drop: DropID, after microseconds: Int64) -> Int64? {
        guard let stamps = stampsByDrop[drop] else { return nil }
        var low = 0
        var high = stamps.count
        while low < high {
            let mid = (low + high) / 2
            if stamps[mid] <= microseconds { low = mid + 1 } else { high = mid }
        }
        return low < stamps.count ? stamps[low] : nil
    }
}
