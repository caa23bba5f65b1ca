import Foundation
import Testing

// Two batches in flight: a full batch goes behind the last one only once the store holds the
// drop's lock for it (so the store applies them in the order they were sent), verdicts are
// taken in that order, and a failure waits for the batch behind it to land before memory
// reloads.
@testable import Engine

@Suite("drop state machine: two batches in flight") struct DropMachinePipelineTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func machine(stock: Int = 100, tenure: DropMachine.Tenure? = nil) -> DropMachine {
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "p", priceCents: 10, totalStock: stock, reserveTTLMilliseconds: 60_000),
            sold: 0, reserved: 0, createdAt: start)
        return DropMachine(
            recovery: DropRecovery(drop: drop, activeHolds: [], purchases: []), now: start, tenure: tenure,
            maxBatchClaims: 3, maxQueuedClaims: 50, maxBatchesInFlight: 2)
    }

    func hold(_ id: ReservationID, user: UserID) -> Reservation {
        Reservation(
            id: id, dropID: 7, userID: user, status: .active, createdAt: start,
            expiresAt: start.addingTimeInterval(60))
    }

    func sent(_ effects: [DropMachine.Effect]) -> [UserID]? {
        effects.lazy.compactMap { if case .commit(let batch, _) = $0 { batch.items.map(\.userID) } else { nil } }.first
    }

    /// Whether the batch sent asked for word of the lock (nil: none sent).
    func asksForLock(_ effects: [DropMachine.Effect]) -> Bool? {
        effects.lazy.compactMap { if case .commit(_, let asks) = $0 { asks } else { nil } }.first
    }

    func gathers(_ effects: [DropMachine.Effect]) -> Bool {
        effects.contains { if case .gather = $0 { true } else { false } }
    }

    /// Queues reserves of these users; returns the effects of the last.
    @discardableResult
    func reserve(_ users: ClosedRange<UserID>, on m: inout DropMachine) -> [DropMachine.Effect] {
        var last: [DropMachine.Effect] = []
        for user in users {
            guard case .queued(_, let effects) = m.reserve(user: user, now: start) else {
                Issue.record("user \(user): queued expected")
                return []
            }
            last = effects
        }
        return last
    }

    func reserved(_ users: [UserID], firstID: ReservationID, reservedAfter: Int) -> BatchOutcome {
        BatchOutcome(
            results: users.enumerated().map { .reserved(hold(firstID + ReservationID($0.offset), user: $0.element)) },
            expired: [], sold: 0, reserved: reservedAfter, committedAt: start)
    }

    func answered(_ effects: [DropMachine.Effect]) -> Int {
        effects.filter { if case .answer = $0 { true } else { false } }.count
    }

    @Test func aFullBatchGoesBehindTheLastOnceTheStoreHoldsItsLock() {
        var m = machine()
        reserve(1...3, on: &m)
        let flushed = m.flush(now: start)
        #expect(sent(flushed) == [1, 2, 3] && asksForLock(flushed) == true, "a full batch asks for the lock's word")
        #expect(reserve(4...6, on: &m).isEmpty, "the first batch's lock is not held yet: nothing may go behind it")
        let behind = m.batchLocked(1, now: start)
        #expect(sent(behind) == [4, 5, 6], "the lock is held and a full batch waits: it goes")
        #expect(asksForLock(behind) == true, "it asks too, so the next may go behind it once the first lands")
        #expect(reserve(7...9, on: &m).isEmpty, "two batches are in flight: the third waits")
        #expect(m.batchLocked(2, now: start).isEmpty, "still two in flight")
        let first = m.committed(reserved([1, 2, 3], firstID: 1, reservedAfter: 3), now: start)
        #expect(answered(first) == 3)
        #expect(sent(first) == [7, 8, 9], "the first landed and the second holds the lock: the third goes at once")
        #expect(m.batchLocked(1, now: start).isEmpty, "word of a batch that has landed changes nothing")
        #expect(m.inFlight.map(\.number) == [2, 3])
    }

    @Test func aSmallerBatchAsksForNoWordAndNothingGoesBehindIt() {
        var m = machine()
        reserve(1...2, on: &m)
        let flushed = m.flush(now: start)
        #expect(sent(flushed) == [1, 2] && asksForLock(flushed) == false)
        #expect(reserve(3...5, on: &m).isEmpty, "a full batch waits for the smaller one to land")
        let landed = m.committed(reserved([1, 2], firstID: 1, reservedAfter: 2), now: start)
        #expect(sent(landed) == [3, 4, 5] && asksForLock(landed) == true)
    }

    @Test func lessThanAFullBatchWaitsForTheBatchInFlightToLand() {
        var m = machine()
        reserve(1...3, on: &m)
        #expect(sent(m.flush(now: start)) == [1, 2, 3])
        reserve(4...5, on: &m)
        #expect(m.batchLocked(1, now: start).isEmpty, "two claims of a batch of three: they wait for more")
        #expect(sent(reserve(6...6, on: &m)) == [4, 5, 6], "the third fills the batch: it goes")
        reserve(7...7, on: &m)
        let landed = m.committed(reserved([1, 2, 3], firstID: 1, reservedAfter: 3), now: start)
        #expect(sent(landed) == nil, "the batch behind has no word of its lock: one claim waits")
        #expect(m.batchLocked(2, now: start).isEmpty, "one claim is not a full batch")
        let last = m.committed(reserved([4, 5, 6], firstID: 4, reservedAfter: 6), now: start)
        #expect(sent(last) == [7] && asksForLock(last) == false)
    }

    @Test func withOneBatchInFlightNoBatchAsksForTheLock() {
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "p", priceCents: 10, totalStock: 100), sold: 0, reserved: 0, createdAt: start)
        var m = DropMachine(
            recovery: DropRecovery(drop: drop, activeHolds: [], purchases: []), now: start, maxBatchClaims: 3,
            maxQueuedClaims: 50, maxBatchesInFlight: 1)
        reserve(1...3, on: &m)
        let flushed = m.flush(now: start)
        #expect(sent(flushed) == [1, 2, 3] && asksForLock(flushed) == false)
        #expect(reserve(4...6, on: &m).isEmpty)
        #expect(sent(m.committed(reserved([1, 2, 3], firstID: 1, reservedAfter: 3), now: start)) == [4, 5, 6])
    }

    @Test func aBatchLandingAfterAFailedOneIsAnsweredAndThenMemoryReloadsOnce() {
        var m = machine()
        reserve(1...3, on: &m)
        _ = m.flush(now: start)
        reserve(4...6, on: &m)
        #expect(sent(m.batchLocked(1, now: start)) == [4, 5, 6])
        let failure = m.failed(EngineError(.batchFailed, "refused"))
        #expect(failure.count == 1, "the failed batch's callers hear it; no reload while the second is in flight")
        guard case .fail(let tickets, _) = failure.first, tickets.count == 3 else {
            Issue.record("the first batch's three callers fail: \(failure)")
            return
        }
        guard case .queued(_, let later) = m.reserve(user: 9, now: start), later.isEmpty else {
            Issue.record("a claim during the wait waits for the fresh memory")
            return
        }
        let landed = m.committed(reserved([4, 5, 6], firstID: 5, reservedAfter: 3), now: start)
        #expect(answered(landed) == 3, "the second batch committed: its callers hear the store")
        #expect(landed.contains { if case .recover = $0 { true } else { false } }, "then memory reloads")
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "p", priceCents: 10, totalStock: 100, reserveTTLMilliseconds: 60_000),
            sold: 0, reserved: 3, createdAt: start)
        let holds = [hold(5, user: 4), hold(6, user: 5), hold(7, user: 6)]
        let fresh = m.recovered(DropRecovery(drop: drop, activeHolds: holds, purchases: []), now: start)
        #expect(sent(fresh) == [9], "the claim that waited is decided from fresh memory and sent")
    }

    @Test func aFencedBatchStepsDownOnlyOnceTheBatchBehindItHasLanded() {
        let owner = LeaseOwner(instance: "a")
        var m = machine(tenure: DropMachine.Tenure(owner: owner, epoch: 3, trustedUntil: start.addingTimeInterval(10)))
        reserve(1...3, on: &m)
        _ = m.flush(now: start)
        reserve(4...6, on: &m)
        #expect(sent(m.batchLocked(1, now: start)) == [4, 5, 6])
        reserve(7...7, on: &m)
        let fenced = EngineError(.fenced, "epoch moved", owner: "b")
        let first = m.failed(fenced)
        #expect(!first.contains { if case .stepDown = $0 { true } else { false } }, "the second batch is still out")
        let failed = first.compactMap { if case .fail(let tickets, _) = $0 { tickets.count } else { nil } }
        #expect(failed == [3, 1], "the fenced batch's callers, then the one queued behind: \(first)")
        #expect(m.isDeposed && !m.memoryTrusted(now: start))
        guard case .refused = m.reserve(user: 8, now: start) else {
            Issue.record("a deposed machine refuses new claims")
            return
        }
        let second = m.failed(fenced)
        #expect(second.contains { if case .stepDown = $0 { true } else { false } })
        #expect(m.inFlight.isEmpty && m.queuedCount == 0)
    }
}
