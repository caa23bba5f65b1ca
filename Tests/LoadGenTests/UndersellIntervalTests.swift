// Invariant 6 judged as Jepsen judges a history: a row's effect lies between its batch's
// clock reading and the first answer of that batch. Pure: rows and records in, verdict out.
import Engine
import Testing

@testable import LoadGen

@Suite struct UndersellIntervalTests {
    let zero: Int64 = 1_800_000_000_000_000
    let tolerance: Int64 = 100_000

    func ms(_ value: Int64) -> Int64 { value * 1_000 }

    func rows(stock: Int, _ reservations: [CheckedRows.ReservationRow]) -> CheckedRows {
        CheckedRows(
            drops: [.init(id: 1, totalStock: stock, perUserLimit: 1)], reservations: reservations, purchases: [])
    }

    func hold(
        _ id: ReservationID, user: UserID, status: ReservationStatus, created: Int64, expires: Int64, ended: Int64?
    ) -> CheckedRows.ReservationRow {
        .init(
            id: id, drop: 1, user: user, status: status, createdMicroseconds: zero + ms(created),
            expiresMicroseconds: zero + ms(expires),
            endedMicroseconds: ended.map { zero + ms($0) })
    }

    func record(
        _ operation: OperationKind, _ result: OperationRecord.Result, user: UserID, reservation: ReservationID? = nil,
        sent: Int64, answered: Int64
    ) -> OperationRecord {
        OperationRecord(
            operation: operation, result: result, user: user, drop: 1, reservationID: reservation, purchaseID: nil,
            intendedMicroseconds: ms(sent), sentMicroseconds: ms(sent), answeredMicroseconds: ms(answered))
    }

    func verdict(
        _ rows: CheckedRows, _ records: [OperationRecord], cutOff: [DropID: ClientHistory.CutOff] = [:]
    ) -> InvariantResult {
        let history = ClientHistory(records: records, startedAtEpochMicroseconds: zero, cutOff: cutOff)
        return ClientHistoryCheck.noUndersell(
            rows, history, answers: BatchAnswers(rows, history), toleranceMicroseconds: tolerance)
    }

    /// The traced run of the issue: a batch stamped its cancel at +1,147 ms and its caller
    /// heard back at +1,602 ms; a "sold out" answered in between is not an undersell, since
    /// the cancel may have taken effect at any instant up to its answer.
    @Test func aCancelTakesEffectByTheTimeItsCallerHearsBack() {
        let data = rows(stock: 1, [hold(1, user: 1, status: .cancelled, created: 0, expires: 2_000, ended: 1_147)])
        let told = [
            record(.reserve, .ok, user: 1, reservation: 1, sent: 0, answered: 5),
            record(.cancel, .ok, user: 1, reservation: 1, sent: 1_100, answered: 1_602),
        ]
        #expect(verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 1_400, answered: 1_450)]).ok)
        let late = verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 1_750, answered: 1_760)])
        #expect(!late.ok && late.counterexamples.first?.contains("at most 0 of 1 units") == true)
    }

    /// A cancel nobody heard back from (its caller timed out) took effect by the next batch's
    /// clock reading on the drop, which waited for its lock; with no later batch, nothing
    /// bounds it and it cannot prove an undersell.
    @Test func aCancelNoCallerHeardOfIsBoundedByTheNextBatch() {
        let cancelled = hold(1, user: 1, status: .cancelled, created: 0, expires: 60_000, ended: 1_000)
        let told = [
            record(.reserve, .ok, user: 1, reservation: 1, sent: 0, answered: 5),
            record(.cancel, .timeout, user: 1, sent: 900, answered: 10_900),
            record(.reserve, .rejected(.soldOut), user: 2, sent: 5_000, answered: 5_001),
        ]
        #expect(verdict(rows(stock: 1, [cancelled]), told).ok, "nothing bounds the cancel")
        let later = hold(2, user: 3, status: .active, created: 2_000, expires: 60_000, ended: nil)
        let bounded = verdict(
            rows(stock: 2, [cancelled, later]),
            told + [record(.reserve, .ok, user: 3, reservation: 2, sent: 1_990, answered: 2_010)])
        #expect(!bounded.ok, "the batch at +2000 ms came after the cancel committed")
    }

    /// An expired hold frees its unit the purchase grace (1 s for this 2 s hold) past
    /// `expires_at`, however late it was swept: until then it may wait for a purchase asked in
    /// time. A short hold's grace is half its TTL.
    @Test func anExpiredHoldIsFreeFromItsDeadline() {
        let data = rows(stock: 1, [hold(7, user: 1, status: .expired, created: -1_000, expires: 1_000, ended: 11_000)])
        let told = [record(.reserve, .ok, user: 1, reservation: 7, sent: 0, answered: 5)]
        #expect(
            verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 1_850, answered: 1_860)]).ok,
            "within the grace")
        #expect(
            verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 2_050, answered: 2_060)]).ok,
            "within the tolerance past the grace")
        let late = verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 5_000, answered: 5_010)])
        #expect(!late.ok)
        #expect(
            late.counterexamples.first?.contains(
                "swept late: reservation 7 (user 1) expired at +1000 ms but was swept only at +11000 ms") == true)
        let short = rows(stock: 1, [hold(7, user: 1, status: .expired, created: 600, expires: 1_000, ended: 11_000)])
        #expect(
            !verdict(short, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 1_350, answered: 1_360)]).ok,
            "a 400 ms hold's grace is 200 ms")
    }

    /// A hold swept within the grace, because its user's purchase was asked late, frees its
    /// unit by the time the next batch read its clock (here a cancel's at +1600 ms): until its
    /// own batch answered, the drop's memory counted it held.
    @Test func aHoldSweptWithinTheGraceIsFreeByTheNextBatch() {
        let data = rows(
            stock: 2,
            [
                hold(7, user: 1, status: .expired, created: -1_000, expires: 1_000, ended: 1_300),
                hold(8, user: 3, status: .cancelled, created: 0, expires: 60_000, ended: 1_600),
            ])
        let told = [
            record(.reserve, .ok, user: 1, reservation: 7, sent: 0, answered: 5),
            record(.reserve, .ok, user: 3, reservation: 8, sent: 0, answered: 5),
            record(.purchase, .rejected(.expired), user: 1, sent: 1_200, answered: 1_350),
            record(.cancel, .ok, user: 3, reservation: 8, sent: 1_590, answered: 1_605),
        ]
        #expect(
            verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 1_450, answered: 1_460)]).ok,
            "swept at +1300 ms; the next batch read its clock at +1600 ms")
        #expect(
            !verdict(data, told + [record(.reserve, .rejected(.soldOut), user: 2, sent: 1_800, answered: 1_810)]).ok)
    }

    /// Buyers cut off by the end of the run (turned away for stock, still retrying): an
    /// undersell only if a unit stayed free from the drop's last turn-away to the stop; a unit
    /// freed after it is the run's end, not the engine's. A shed answer (overloaded) turns no
    /// one away for stock: it neither starts that window nor excuses a free unit.
    @Test func aCutOffIsJudgedFromTheLastTurnAway() {
        let freedLater = rows(stock: 1, [hold(1, user: 1, status: .expired, created: 0, expires: 4_000, ended: 4_001)])
        let soldOut = record(.reserve, .rejected(.soldOut), user: 2, sent: 2_000, answered: 2_001)
        let cut: [DropID: ClientHistory.CutOff] = [1: .init(users: 1, atMicroseconds: ms(5_000))]
        #expect(verdict(freedLater, [soldOut], cutOff: cut).ok, "freed after everyone was answered")
        // Cut off with the unit free from 1,000 ms to the end, and no sold_out to explain it:
        // the shed answer at 2,001 ms says nothing of stock, so the window is the stop's.
        let early = rows(stock: 1, [hold(1, user: 1, status: .expired, created: 0, expires: 1_000, ended: 1_001)])
        let shed = record(.reserve, .rejected(.overloaded), user: 2, sent: 2_000, answered: 2_001)
        #expect(!verdict(early, [shed], cutOff: cut).ok, "free at the stop while buyers turned away for stock waited")
        #expect(verdict(early, [shed], cutOff: [:]).ok, "a buyer only shed is not one turned away for stock")
    }

    /// A reserve sent before the stop and answered after it is demand too: the unit it took
    /// after the stop (the engine's queue was long) was not left free for the cut-off buyers.
    @Test func aCutOffCountsRequestsStillQueuedAtTheStop() {
        let turnedAway = record(.reserve, .rejected(.overloaded), user: 2, sent: 2_000, answered: 2_001)
        let queued = record(.reserve, .ok, user: 3, reservation: 2, sent: 4_900, answered: 5_300)
        let data = rows(
            stock: 1,
            [
                hold(1, user: 1, status: .expired, created: 0, expires: 1_000, ended: 1_001),
                hold(2, user: 3, status: .expired, created: 5_250, expires: 7_250, ended: 7_251),
            ])
        let cut: [DropID: ClientHistory.CutOff] = [1: .init(users: 1, atMicroseconds: ms(5_000))]
        #expect(verdict(data, [turnedAway, queued], cutOff: cut).ok, "taken by a request still queued at the stop")
        // Without that request's hold the unit stayed free to the end: still an undersell.
        let untaken = rows(stock: 1, [hold(1, user: 1, status: .expired, created: 0, expires: 1_000, ended: 1_001)])
        let failed = record(.reserve, .timeout, user: 3, sent: 4_900, answered: 5_300)
        #expect(!verdict(untaken, [turnedAway, failed], cutOff: cut).ok)
    }

    @Test func stampToAnswerCountsEachWriteOnceFromItsFirstAnswer() {
        let data = rows(stock: 2, [hold(1, user: 1, status: .active, created: 10, expires: 60_000, ended: nil)])
        let history = ClientHistory(
            records: [
                record(.reserve, .ok, user: 1, reservation: 1, sent: 0, answered: 40),
                record(.reserve, .rejected(.alreadyHolding), user: 1, reservation: 1, sent: 50, answered: 90),
            ], startedAtEpochMicroseconds: zero, cutOff: [:])
        #expect(BatchAnswers(data, history).stampToAnswerMicroseconds == [ms(30)])
    }
}
