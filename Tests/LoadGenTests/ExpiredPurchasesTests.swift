// Purchases refused `expired`, judged against the hold they meant: one sent with a round trip
// and the clock tolerance to spare is the server's fault and is named; one sent after that (a
// late retry, a harness that held it back) is not. Pure: rows and records in, figures out.
import Engine
import Testing

@testable import LoadGen

@Suite struct ExpiredPurchasesTests {
    let zero: Int64 = 1_800_000_000_000_000
    let tolerance: Int64 = 100_000

    func ms(_ value: Int64) -> Int64 { value * 1_000 }

    /// User `user`'s hold on drop 1, created at `created` ms and expiring 2 s later.
    func hold(_ id: ReservationID, user: UserID, created: Int64) -> CheckedRows.ReservationRow {
        .init(
            id: id, drop: 1, user: user, status: .expired, createdMicroseconds: zero + ms(created),
            expiresMicroseconds: zero + ms(created + 2_000), endedMicroseconds: zero + ms(created + 2_000))
    }

    func record(
        _ operation: OperationKind, _ result: OperationRecord.Result, user: UserID, intended: Int64, sent: Int64,
        answered: Int64, reservation: ReservationID? = nil
    ) -> OperationRecord {
        OperationRecord(
            operation: operation, result: result, user: user, drop: 1, reservationID: reservation,
            intendedMicroseconds: ms(intended), sentMicroseconds: ms(sent), answeredMicroseconds: ms(answered))
    }

    func judge(_ holds: [CheckedRows.ReservationRow], _ records: [OperationRecord]) -> ExpiredPurchases {
        let rows = CheckedRows(
            drops: [.init(id: 1, totalStock: 10, perUserLimit: 1)], reservations: holds, purchases: [])
        return ExpiredPurchasesCheck.judge(
            rows, ClientHistory(records: records, startedAtEpochMicroseconds: zero, cutOff: [:]),
            toleranceMicroseconds: tolerance)
    }

    @Test func aPurchaseSentInTimeAndRefusedIsTheServersFault() {
        // User 1 held from 0 to 2,000 ms and sent its purchase at 1,000 ms, as intended: the
        // server answered expired at 2,100 ms.
        let result = judge(
            [hold(1, user: 1, created: 0)],
            [
                record(.reserve, .ok, user: 1, intended: 0, sent: 0, answered: 3, reservation: 1),
                record(.purchase, .rejected(.expired), user: 1, intended: 1_000, sent: 1_000, answered: 2_100),
            ])
        #expect(result.sentInTime == 1 && result.sentLate == 0)
        #expect(result.examples.count == 1)
        #expect(result.examples[0].contains("user 1's purchase") && result.examples[0].contains("reservation 1"))
        // The margin is the run's shortest round trip (3 ms) and the tolerance (100 ms).
        #expect(result.marginMilliseconds == 103)
    }

    @Test func aPurchaseTheHarnessSentLateIsNot() {
        // Intended at 1,000 ms but the harness held it until 1,990 ms: it left 10 ms before the
        // expiry, less than the margin, so the refusal is right and nothing is named.
        let result = judge(
            [hold(1, user: 1, created: 0)],
            [
                record(.reserve, .ok, user: 1, intended: 0, sent: 0, answered: 3, reservation: 1),
                record(.purchase, .rejected(.expired), user: 1, intended: 1_000, sent: 1_990, answered: 2_010),
            ])
        #expect(result.sentInTime == 0 && result.sentLate == 1 && result.examples.isEmpty)
    }

    @Test func itJudgesAgainstTheHoldThePurchaseMeant() {
        // User 2 held twice: the first hold (0–2,000 ms) expired; the purchase was sent at
        // 5,000 ms during the second (4,000–6,000 ms) and refused: in time for that hold.
        let inTime = judge(
            [hold(1, user: 2, created: 0), hold(2, user: 2, created: 4_000)],
            [record(.purchase, .rejected(.expired), user: 2, intended: 5_000, sent: 5_000, answered: 5_010)])
        #expect(inTime.sentInTime == 1)
        // Sent at 3,000 ms, after the first hold expired and before the second existed: late.
        let late = judge(
            [hold(1, user: 2, created: 0), hold(2, user: 2, created: 4_000)],
            [record(.purchase, .rejected(.expired), user: 2, intended: 3_000, sent: 3_000, answered: 3_010)])
        #expect(late.sentInTime == 0 && late.sentLate == 1)
    }

    @Test func otherAnswersAreNotCounted() {
        let result = judge(
            [hold(1, user: 1, created: 0)],
            [
                record(.purchase, .ok, user: 1, intended: 100, sent: 100, answered: 110, reservation: 1),
                record(.purchase, .rejected(.noActiveReservation), user: 1, intended: 200, sent: 200, answered: 210),
            ])
        #expect(result.sentInTime == 0 && result.sentLate == 0)
    }
}
