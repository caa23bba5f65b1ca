// When each batch's rows took effect, as far as the client history can tell. A row carries the
// batch's clock reading (read under the drop's lock, before the batch's work and its commit),
// and no caller can hear of a row before its batch committed: so the batch took effect at one
// instant between its clock reading and the first moment any caller heard of one of its rows
// (Jepsen's rule: an operation takes effect between its call and its answer). Pure.
import Engine

struct BatchAnswers {
    private struct Stamp: Hashable {
        var drop: DropID
        var microseconds: Int64
    }

    /// Per batch, the earliest instant (epoch microseconds) a caller heard of one of its rows.
    private var firstAnswer: [Stamp: Int64] = [:]
    /// Per row a caller heard of, from the batch's clock reading to the first caller's answer
    /// naming it: the time a batch spends between its clock reading and its answers.
    private(set) var stampToAnswerMicroseconds: [Int64] = []

    init(_ rows: CheckedRows, _ history: ClientHistory) {
        let reservations = Dictionary(rows.reservations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let purchases = Dictionary(rows.purchases.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        /// A write a caller heard of: a hold made, a purchase made, a hold cancelled.
        struct Write: Hashable {
            var operation: OperationKind
            var id: Int64
        }
        var firstPerWrite: [Write: (stamp: Int64, answered: Int64)] = [:]
        for record in history.records {
            let write: Write, stamp: Int64?
            switch (record.operation, record.result) {
            case (.reserve, .ok), (.reserve, .rejected(.alreadyHolding)):
                guard let id = record.reservationID, let row = reservations[id], row.drop == record.drop else { continue }
                (write, stamp) = (Write(operation: .reserve, id: id), row.createdMicroseconds)
            case (.purchase, .ok):
                guard let id = record.purchaseID, let row = purchases[id], row.drop == record.drop else { continue }
                (write, stamp) = (Write(operation: .purchase, id: id), row.createdMicroseconds)
            case (.cancel, .ok):
                guard let id = record.reservationID, let row = reservations[id], row.drop == record.drop, row.status == .cancelled else { continue }
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

    /// The latest instant a row stamped `microseconds` on `drop` can have taken effect: the
    /// first answer of its batch, or nil when no caller heard of that batch (unknown).
    func latestEffect(drop: DropID, stampedAt microseconds: Int64) -> Int64? {
        firstAnswer[Stamp(drop: drop, microseconds: microseconds)]
    }
}
