// Purchases refused `expired`, split by whose fault the expiry was. A buyer who sends the
// purchase after the hold ran out (a long think, a late retry, or a harness that sent it late)
// was refused rightly. One who sent it with time to spare (at least one measured round trip
// and the clock tolerance before the hold's `expires_at`) and was still refused lost the unit
// to the server's own queue: the server's fault, shown with counterexamples. Judged on the
// database's clock, as invariants 5 and 6 are; pure, so planted cases test it without a server.
import Engine

public struct ExpiredPurchases: Sendable, Codable, Equatable {
    /// Refused `expired` although sent at least `marginMilliseconds` before the hold expired.
    public var sentInTime: Int
    /// Refused `expired` and sent after that: the buyer's (or the harness's) lateness.
    public var sentLate: Int
    /// The shortest send→answer of the run (the least any request needed) plus the clock
    /// tolerance: how long before the expiry a purchase must leave to count as in time.
    public var marginMilliseconds: Double
    /// Up to `CheckerLimits.counterexamples` of the in-time refusals.
    public var examples: [String]
}

enum ExpiredPurchasesCheck {
    static func judge(_ rows: CheckedRows, _ history: ClientHistory, toleranceMicroseconds: Int64) -> ExpiredPurchases {
        // The least a request needed from leaving to its answer: no answer can come sooner.
        let roundTrip = history.records.lazy.filter { !$0.result.isFailure }.map(\.sendToAnswerMicroseconds).min() ?? 0
        let margin = roundTrip + toleranceMicroseconds
        struct Key: Hashable {
            var user: UserID
            var drop: DropID
        }
        // Each user's holds on each drop, oldest first.
        var holds: [Key: [CheckedRows.ReservationRow]] = [:]
        for row in rows.reservations { holds[Key(user: row.user, drop: row.drop), default: []].append(row) }
        for key in holds.keys { holds[key]!.sort { $0.createdMicroseconds < $1.createdMicroseconds } }

        let zero = history.startedAtEpochMicroseconds
        let clock = CheckClock(zeroMicroseconds: zero)
        var result = ExpiredPurchases(
            sentInTime: 0, sentLate: 0, marginMilliseconds: Double(margin) / 1_000, examples: [])
        for record in history.records where record.operation == .purchase && record.result == .rejected(.expired) {
            let sent = zero + record.sentMicroseconds
            // The hold it meant: the user's latest on the drop written before the purchase left
            // (with the tolerance, since the two times come from two clocks).
            guard
                let hold = holds[Key(user: record.user, drop: record.drop)]?
                    .last(where: { $0.createdMicroseconds <= sent + toleranceMicroseconds })
            else {
                result.sentLate += 1
                continue
            }
            guard sent + margin <= hold.expiresMicroseconds else {
                result.sentLate += 1
                continue
            }
            result.sentInTime += 1
            guard result.examples.count < CheckerLimits.counterexamples else { continue }
            result.examples.append(
                "user \(record.user)'s purchase on drop \(record.drop) left at \(clock.describe(sent)), "
                    + "\((hold.expiresMicroseconds - sent) / 1_000) ms before reservation \(hold.id) expired "
                    + "(\(clock.describe(hold.expiresMicroseconds))), and was refused expired at "
                    + "\(clock.describe(zero + record.answeredMicroseconds))")
        }
        return result
    }
}
