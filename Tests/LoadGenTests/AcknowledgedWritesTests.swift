// Invariant 5 judged against the history: an acknowledged write must be a row, and a row nobody
// was told of must be explained by an indeterminate request of its user, kind and drop, one row
// per request, written after that request was sent. Pure: rows and records in, verdict out.
import Engine
import Testing

@testable import LoadGen

@Suite struct AcknowledgedWritesTests {
    let zero: Int64 = 1_800_000_000_000_000
    let tolerance: Int64 = 100_000

    func ms(_ value: Int64) -> Int64 { value * 1_000 }

    func hold(_ id: ReservationID, user: UserID, created: Int64) -> CheckedRows.ReservationRow {
        .init(
            id: id, drop: 1, user: user, status: .purchased, createdMicroseconds: zero + ms(created),
            expiresMicroseconds: zero + ms(created + 2_000), endedMicroseconds: zero + ms(created + 10))
    }

    func purchase(
        _ id: PurchaseID, of reservation: ReservationID, user: UserID, created: Int64
    )
        -> CheckedRows.PurchaseRow
    {
        .init(id: id, reservationID: reservation, drop: 1, user: user, createdMicroseconds: zero + ms(created))
    }

    func record(
        _ operation: OperationKind, _ result: OperationRecord.Result, user: UserID, reservation: ReservationID? = nil,
        purchase: PurchaseID? = nil, sent: Int64
    ) -> OperationRecord {
        OperationRecord(
            operation: operation, result: result, user: user, drop: 1, reservationID: reservation,
            purchaseID: purchase, intendedMicroseconds: ms(sent), sentMicroseconds: ms(sent),
            answeredMicroseconds: ms(sent + 5))
    }

    func verdict(
        holds: [CheckedRows.ReservationRow], purchases: [CheckedRows.PurchaseRow], _ records: [OperationRecord]
    ) -> InvariantResult {
        let rows = CheckedRows(
            drops: [.init(id: 1, totalStock: 10, perUserLimit: 2)], reservations: holds, purchases: purchases)
        return ClientHistoryCheck.acknowledgedWritesDurable(
            rows, ClientHistory(records: records, startedAtEpochMicroseconds: zero, cutOff: [:]),
            toleranceMicroseconds: tolerance
        ).0
    }

    /// User 7 was told of its hold and of no purchase; one purchase row exists, written at
    /// `written`, and the user's one purchase whose answer was lost was sent at `sent`.
    func oneLostPurchase(written: Int64, sent: Int64) -> InvariantResult {
        verdict(
            holds: [hold(1, user: 7, created: 0)], purchases: [purchase(1, of: 1, user: 7, created: written)],
            [
                record(.reserve, .ok, user: 7, reservation: 1, sent: 0),
                record(.purchase, .error, user: 7, sent: sent),
            ])
    }

    /// A purchase whose answer was lost (`outcome_unknown`, a timeout) explains its row.
    @Test func aLostAnswerExplainsTheRowItWrote() {
        let result = oneLostPurchase(written: 110, sent: 100)
        #expect(result.ok, "\(result.counterexamples)")
    }

    /// One lost answer cannot account for two purchases of its user.
    @Test func oneLostAnswerExplainsOneRowOnly() {
        let result = verdict(
            holds: [hold(1, user: 7, created: 0), hold(2, user: 7, created: 300)],
            purchases: [purchase(1, of: 1, user: 7, created: 110), purchase(2, of: 2, user: 7, created: 400)],
            [
                record(.reserve, .ok, user: 7, reservation: 1, sent: 0),
                record(.reserve, .ok, user: 7, reservation: 2, sent: 300),
                record(.purchase, .timeout, user: 7, sent: 100),
            ])
        #expect(!result.ok && result.violations == 1)
        #expect(
            result.counterexamples.first?.hasPrefix("purchase 2 (user 7, drop 1, reservation 2), written at +400 ms")
                == true)
    }

    /// Two lost answers sent at +100 and +500 ms against purchases written at +120 and +130
    /// ms: only the first request can have written either, so one row stays unexplained;
    /// written at +120 and +600 ms, each has its request.
    @Test func requestsAndRowsAreMatchedInTime() {
        func result(_ written: [Int64]) -> InvariantResult {
            verdict(
                holds: [hold(1, user: 7, created: 0), hold(2, user: 7, created: 0)],
                purchases: written.enumerated().map {
                    purchase(PurchaseID($0 + 1), of: ReservationID($0 + 1), user: 7, created: $1)
                },
                [
                    record(.reserve, .ok, user: 7, reservation: 1, sent: 0),
                    record(.reserve, .ok, user: 7, reservation: 2, sent: 0),
                    record(.purchase, .error, user: 7, sent: 100),
                    record(.purchase, .timeout, user: 7, sent: 500),
                ])
        }
        let early = result([120, 130])
        #expect(!early.ok && early.violations == 1)
        #expect(early.counterexamples.first?.hasPrefix("purchase 2 ") == true)
        #expect(result([120, 600]).ok)
    }

    /// A row written before the user's only indeterminate request was sent is not its work.
    @Test func aRowOlderThanTheRequestIsNotExplainedByIt() {
        let result = oneLostPurchase(written: 50, sent: 900)
        #expect(!result.ok)
        #expect(result.counterexamples.first?.contains("the first sent at +900 ms") == true)
        // Within the clock tolerance (100 ms), the same row is the request's.
        let near = oneLostPurchase(written: 850, sent: 900)
        #expect(near.ok, "\(near.counterexamples)")
    }

    /// `already_holding` naming a hold that is not the caller's is a wrong answer.
    @Test func alreadyHoldingMustNameTheCallersHold() {
        let holds = [hold(1, user: 7, created: 0)]
        let told = record(.reserve, .ok, user: 7, reservation: 1, sent: 0)
        #expect(
            verdict(
                holds: holds, purchases: [],
                [told, record(.reserve, .rejected(.alreadyHolding), user: 7, reservation: 1, sent: 50)]
            ).ok)
        let wrong = verdict(
            holds: holds, purchases: [],
            [told, record(.reserve, .rejected(.alreadyHolding), user: 8, reservation: 1, sent: 50)])
        #expect(!wrong.ok && wrong.counterexamples.first?.contains("was told it already holds reservation 1") == true)
    }
}
