import Foundation
import Testing

// A drop under more claims than its store takes: reserves past what commits within the latency
// target are refused `overloaded` at once; a purchase or cancel of a live hold never is, and it
// goes into the very next batch ahead of every reserve waiting. Pure: no database, no clock.
@testable import Engine

@Suite("drop state machine under overload") struct DropMachineOverloadTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func machine(maxBatch: Int, maxQueue: Int, target: TimeInterval? = nil, holders: [UserID] = []) -> DropMachine {
        let holds = holders.enumerated().map { index, user in
            Reservation(
                id: ReservationID(100 + index), dropID: 7, userID: user, status: .active, createdAt: start,
                expiresAt: start.addingTimeInterval(60))
        }
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "m", priceCents: 10, totalStock: 1_000, reserveTTLMilliseconds: 60_000),
            sold: 0, reserved: holds.count, createdAt: start)
        return DropMachine(
            recovery: DropRecovery(drop: drop, activeHolds: holds, purchases: []), now: start,
            maxBatchClaims: maxBatch, maxQueuedClaims: maxQueue, queueLatencyTarget: target)
    }

    func batch(_ effects: [DropMachine.Effect]) -> ClaimBatch? {
        effects.lazy.compactMap { if case .commit(let batch, _) = $0 { batch } else { nil } }.first
    }

    func reserved(_ batch: ClaimBatch, holdsFrom id: ReservationID) -> [ClaimResult] {
        batch.items.enumerated().map { index, item in
            .reserved(
                Reservation(
                    id: id + ReservationID(index), dropID: 7, userID: item.userID, status: .active, createdAt: start,
                    expiresAt: start.addingTimeInterval(60)))
        }
    }

    @Test func aPurchaseOrCancelOfALiveHoldIsNeverShed() {
        var m = machine(maxBatch: 1, maxQueue: 3, holders: [50, 51])
        _ = m.reserve(user: 1, now: start)
        _ = m.flush(now: start)
        for user in 2...4 { _ = m.reserve(user: UserID(user), now: start) }
        guard case .answered(.reserve(.overloaded)) = m.reserve(user: 5, now: start) else {
            Issue.record("a reserve past the bound is overloaded")
            return
        }
        guard case .queued = m.purchase(user: 50, idempotencyKey: "k", now: start),
            case .queued = m.cancel(user: 51, now: start)
        else {
            Issue.record("a live hold's purchase and cancel join the line however full it is")
            return
        }
        // A purchase by someone with no hold memory knows of, with a key memory cannot place,
        // is the store's to answer: it joins within the backstop and past it is refused.
        guard case .queued = m.purchase(user: 60, idempotencyKey: "a", now: start) else {
            Issue.record("queued within the backstop")
            return
        }
        guard case .answered(.purchase(.overloaded)) = m.purchase(user: 61, idempotencyKey: "b", now: start) else {
            Issue.record("overloaded past the backstop")
            return
        }
    }

    @Test func settlingClaimsGoFirstInTheNextBatch() {
        var m = machine(maxBatch: 3, maxQueue: 100, holders: [50, 51])
        _ = m.reserve(user: 1, now: start)
        _ = m.flush(now: start)  // in flight
        for user in 2...9 { _ = m.reserve(user: UserID(user), now: start) }
        _ = m.purchase(user: 50, idempotencyKey: "k", now: start)
        _ = m.cancel(user: 51, now: start)
        let next = batch(
            m.committed(
                BatchOutcome(
                    results: [
                        .reserved(
                            Reservation(
                                id: 1, dropID: 7, userID: 1, status: .active, createdAt: start,
                                expiresAt: start.addingTimeInterval(60)))
                    ],
                    expired: [], sold: 0, reserved: 3, committedAt: start), now: start))
        #expect(next?.items.map(\.kind) == [.purchase, .cancel, .reserve])
        #expect(next?.items.map(\.userID) == [50, 51, 2], "eight reserves came first, the buyers still go next")
    }

    @Test func theReserveBoundIsWhatTheStoreTakesWithinTheTarget() {
        var m = machine(maxBatch: 10, maxQueue: 10_000, target: 0.25)
        #expect(m.reserveQueueBound == 10_000, "nothing measured yet: only the backstop")
        for user in 1...10 { _ = m.reserve(user: UserID(user), now: start) }
        let first = batch(m.flush(now: start))!
        // The batch of 10 took 50 ms: 200 claims a second, so 50 claims wait 250 ms.
        _ = m.committed(
            BatchOutcome(
                results: reserved(first, holdsFrom: 1), expired: [], sold: 0, reserved: 10, committedAt: start),
            now: start.addingTimeInterval(0.05))
        #expect(abs(m.claimRate.perSecond - 200) < 0.01)
        #expect(m.reserveQueueBound == 50)
        // Never under one batch.
        var slow = machine(maxBatch: 10, maxQueue: 10_000, target: 0.001)
        for user in 1...10 { _ = slow.reserve(user: UserID(user), now: start) }
        let only = batch(slow.flush(now: start))!
        _ = slow.committed(
            BatchOutcome(results: reserved(only, holdsFrom: 1), expired: [], sold: 0, reserved: 10, committedAt: start),
            now: start.addingTimeInterval(1))
        #expect(slow.reserveQueueBound == 10)
    }
}
