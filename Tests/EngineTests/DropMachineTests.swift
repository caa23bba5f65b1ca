import Foundation
import Testing

// The pure state machine: group commit, answers from memory, bounds, failures, expiry.
// No database, no clock, no sleeps: microseconds per case.
@testable import Engine

@Suite("drop state machine") struct DropMachineTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func machine(stock: Int, maxBatch: Int = 3, maxQueue: Int = 5, holds: [Reservation] = []) -> DropMachine {
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "m", priceCents: 10, totalStock: stock, reserveTTLMilliseconds: 1_000),
            sold: 0, reserved: holds.count, createdAt: start)
        return DropMachine(
            recovery: DropRecovery(drop: drop, activeHolds: holds, purchases: []),
            now: start, maxBatchClaims: maxBatch, maxQueuedClaims: maxQueue)
    }

    /// A hold that falls due for the sweep `seconds` after `start`: its `expires_at` is the
    /// purchase grace before that (the machine sweeps a hold once the grace is over), and it
    /// was made a minute before `start`, so that its TTL does not shorten the grace.
    func hold(_ id: ReservationID, user: UserID, dueIn seconds: TimeInterval = 1) -> Reservation {
        Reservation(
            id: id, dropID: 7, userID: user, status: .active, createdAt: start.addingTimeInterval(-60),
            expiresAt: start.addingTimeInterval(seconds - Double(Defaults.purchaseGraceMilliseconds) / 1000))
    }

    func batch(_ effects: [DropMachine.Effect]) -> ClaimBatch? {
        effects.lazy.compactMap { if case .commit(let batch, _) = $0 { batch } else { nil } }.first
    }

    @Test func groupCommitKeepsOneBatchInFlightAndGathersTheRest() {
        var m = machine(stock: 100)
        guard case .queued(_, let first) = m.reserve(user: 1, now: start) else {
            Issue.record("queued expected")
            return
        }
        #expect(first.count == 1 && batch(first) == nil, "an idle drop gathers before it commits")
        guard case .queued(_, let second) = m.reserve(user: 2, now: start) else {
            Issue.record("queued expected")
            return
        }
        #expect(second.isEmpty)
        #expect(
            batch(m.flush(now: start))?.items == [
                ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2),
            ])
        for user in 3...6 {
            guard case .queued(_, let effects) = m.reserve(user: UserID(user), now: start) else {
                Issue.record("queued expected")
                return
            }
            #expect(effects.isEmpty, "a second batch must not start while one is in flight")
        }
        let committed = m.committed(
            BatchOutcome(
                results: [.reserved(hold(1, user: 1)), .reserved(hold(2, user: 2))], expired: [],
                sold: 0, reserved: 2, committedAt: start), now: start)
        #expect(committed.filter { if case .answer = $0 { true } else { false } }.count == 2)
        #expect(
            batch(committed)?.items.map(\.userID) == [3, 4, 5],
            "the next batch carries the queued claims at once, capped at 3")
    }

    @Test func answersThatNeedNoWriteComeFromMemory() {
        var m = machine(stock: 1, holds: [hold(1, user: 1)])
        guard case .answered(.reserve(.soldOut)) = m.reserve(user: 2, now: start) else {
            Issue.record("sold out expected")
            return
        }
        guard case .answered(.reserve(.alreadyHolding(let held))) = m.reserve(user: 1, now: start) else {
            Issue.record("holding expected")
            return
        }
        #expect(held?.id == 1)
        #expect(m.queuedCount == 0)
        // A user memory has not seen end a hold since its load: only the store knows whether
        // their last hold expired, was cancelled or bought, so the store answers.
        guard case .queued = m.purchase(user: 3, idempotencyKey: nil, now: start) else {
            Issue.record("the store decides")
            return
        }
        guard case .queued = m.cancel(user: 3, now: start) else {
            Issue.record("the store decides")
            return
        }
    }

    /// A reserve goes out vouched for (the store skips its per-user probe) only when memory,
    /// under a lease it trusts, knows the user holds nothing here and is under the limit; and
    /// every reload moves the lease's epoch on, so a batch whose answer was lost is fenced if
    /// it reaches the store after newer ones.
    @Test func aReserveGoesOutVouchedOnlyWhenMemoryKnowsTheUserHoldsNothingHere() {
        // User 1 holds a live unit, user 2 an overdue one (the store's clock may not have
        // reached its deadline: a vouch would fail the batch on the one-live-hold index),
        // user 3 bought once under a limit of 2, user 4 is new.
        let drop = DropRecord(
            id: 7,
            spec: DropSpec(
                name: "m", priceCents: 10, totalStock: 10, perUserLimit: 2, reserveTTLMilliseconds: 60_000),
            sold: 1, reserved: 2, createdAt: start)
        let bought = Purchase(
            id: 9, reservationID: 8, dropID: 7, userID: 3, priceCents: 10, idempotencyKey: nil, createdAt: start)
        let recovery = DropRecovery(
            drop: drop, activeHolds: [hold(1, user: 1, dueIn: 60), hold(2, user: 2, dueIn: 1)],
            purchases: [bought])
        let owner = LeaseOwner(instance: "a", leaseMilliseconds: 60_000)
        let tenure = DropMachine.Tenure(owner: owner, epoch: 4, trustedUntil: owner.trustedUntil(sentAt: start))
        var m = DropMachine(recovery: recovery, now: start, tenure: tenure, maxBatchClaims: 10, maxQueuedClaims: 10)
        let later = start.addingTimeInterval(2)
        _ = m.purchase(user: 1, idempotencyKey: nil, now: later)
        for user: UserID in [2, 3, 4] { _ = m.reserve(user: user, now: later) }
        let sent = batch(m.flush(now: later))
        #expect(
            sent?.items == [
                ClaimItem(.purchase, user: 1), ClaimItem(.reserve, user: 2),
                ClaimItem(.reserve, user: 3, vouched: true),
                ClaimItem(.reserve, user: 4, vouched: true),
            ])
        #expect(sent?.lease?.epoch == 4)
        // Its answer is lost; the reload moves the lease to epoch 5, and the next batch
        // carries it (the lost one, under 4, is fenced wherever it turns up).
        let failed = m.failed(EngineError(.outcomeUnknown, "lost"))
        #expect(failed.contains { if case .recover = $0 { true } else { false } })
        // (User 2's overdue hold makes the reload's first batch a sweep, under the new epoch.)
        let reloaded = m.recovered(
            DropRecovery(drop: drop, activeHolds: recovery.activeHolds, purchases: [bought], epoch: 5), now: later)
        #expect(batch(reloaded)?.lease?.epoch == 5)
        // A renewal of epoch 4, sent before the reload, says nothing of epoch 5.
        let lost = m.renewal(LeaseRenewal(renewed: [], lost: [7]), epoch: 4, sentAt: later)
        #expect(!lost && m.memoryTrusted(now: later))

        // A machine without a lease vouches for no one: nothing would fence its stragglers.
        var alone = DropMachine(recovery: recovery, now: start, maxBatchClaims: 10, maxQueuedClaims: 10)
        _ = alone.reserve(user: 4, now: later)
        let unvouched = batch(alone.flush(now: later))
        #expect(unvouched?.items == [ClaimItem(.reserve, user: 4)])
    }

    /// Memory answers for the store only while the lease is provably this machine's; past
    /// that, the store's epoch check decides, and a fenced batch steps the machine down.
    @Test func memoryAnswersOnlyUnderATrustedLeaseAndAFencedBatchStepsDown() {
        let owner = LeaseOwner(instance: "a", leaseMilliseconds: 3_000)
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "m", priceCents: 10, totalStock: 1, reserveTTLMilliseconds: 60_000),
            sold: 0, reserved: 1, createdAt: start)
        let tenure = DropMachine.Tenure(owner: owner, epoch: 4, trustedUntil: owner.trustedUntil(sentAt: start))
        var m = DropMachine(
            recovery: DropRecovery(drop: drop, activeHolds: [hold(1, user: 1, dueIn: 60)], purchases: []),
            now: start, tenure: tenure, maxBatchClaims: 3, maxQueuedClaims: 5)
        guard case .answered(.reserve(.soldOut)) = m.reserve(user: 2, now: start) else {
            Issue.record("sold out expected")
            return
        }
        // 2.8 s on (the lease less its safety margin) memory no longer trusts the lease.
        let late = start.addingTimeInterval(2.8)
        guard case .queued(let ticket, _) = m.reserve(user: 3, now: late) else {
            Issue.record("the store decides")
            return
        }
        let sent = batch(m.flush(now: late))
        #expect(sent?.lease == BatchLease(epoch: 4, milliseconds: 3_000), "a batch carries its epoch")
        #expect(
            sent?.items.contains(where: \.vouched) == false, "memory that does not trust its lease vouches for no one")
        // The store confirms the epoch: memory trusts the lease again from the batch's send.
        _ = m.committed(
            BatchOutcome(results: [.rejected(.soldOut)], expired: [], sold: 0, reserved: 1, committedAt: late),
            now: late)
        guard case .answered(.reserve(.soldOut)) = m.reserve(user: 5, now: late.addingTimeInterval(1)) else {
            Issue.record("a renewed lease answers from memory again")
            return
        }
        // Another instance took the drop over: the next batch is fenced, and the machine
        // fails its callers, steps down and refuses whatever comes next.
        m.leaseLost()
        guard case .queued(let waiting, _) = m.cancel(user: 1, now: late.addingTimeInterval(1)) else {
            Issue.record("queued")
            return
        }
        _ = m.flush(now: late.addingTimeInterval(1))
        let fenced = EngineError(.fenced, "moved on", owner: "b")
        let effects = m.failed(fenced)
        #expect(
            effects.contains {
                if case .fail(let tickets, let error) = $0 { tickets == [waiting] && error.owner == "b" } else { false }
            })
        #expect(effects.contains { if case .stepDown = $0 { true } else { false } })
        guard case .refused(let error) = m.reserve(user: 6, now: late.addingTimeInterval(1)) else {
            Issue.record("refused")
            return
        }
        #expect(error.code == .fenced && m.isDeposed && ticket < waiting)
    }

    @Test func aFullQueueAnswersOverloadedAtOnce() {
        var m = machine(stock: 100, maxBatch: 1, maxQueue: 2)
        _ = m.reserve(user: 1, now: start)
        _ = m.flush(now: start)  // in flight
        _ = m.reserve(user: 2, now: start)
        _ = m.reserve(user: 3, now: start)
        guard case .answered(.reserve(.overloaded)) = m.reserve(user: 4, now: start) else {
            Issue.record("overloaded expected")
            return
        }
    }

    @Test func aFailedBatchFailsEveryCallerAndReloads() {
        var m = machine(stock: 2)
        guard case .queued(let ticket, _) = m.reserve(user: 1, now: start) else {
            Issue.record("queued expected")
            return
        }
        _ = m.flush(now: start)
        let effects = m.failed(EngineError(.batchFailed, "boom"))
        #expect(effects.contains { if case .fail(let tickets, _) = $0 { tickets == [ticket] } else { false } })
        #expect(effects.contains { if case .recover = $0 { true } else { false } })
        #expect(m.availableForNewClaims == 2, "a failed reserve gives its unit back")
    }

    @Test func dueHoldsTriggerASweepBatch() {
        var m = machine(stock: 1, holds: [hold(1, user: 1, dueIn: 1)])
        #expect(batch(m.tick(now: start)) == nil)
        let due = m.tick(now: start.addingTimeInterval(1.5))
        #expect(batch(due) == ClaimBatch(dropID: 7, items: []))
        let after = m.committed(
            BatchOutcome(
                results: [], expired: [ExpiredHold(reservationID: 1, userID: 1)], sold: 0, reserved: 0,
                committedAt: start.addingTimeInterval(1.5)), now: start.addingTimeInterval(1.5))
        #expect(batch(after) == nil)
        #expect(m.activeHoldCount == 0 && m.availableForNewClaims == 1)
        guard
            case .answered(.purchase(.expired)) = m.purchase(
                user: 1, idempotencyKey: nil, now: start.addingTimeInterval(2))
        else {
            Issue.record("a late purchase hears expired")
            return
        }
    }

    /// Found by the load harness's checker: with the last unit promised to a claim in flight,
    /// "sold out" is not yet true; the next reserve waits for that claim's verdict.
    @Test func soldOutWaitsWhileTheLastUnitIsOnlyPromised() {
        var m = machine(stock: 1)
        _ = m.reserve(user: 1, now: start)
        _ = m.flush(now: start)
        guard case .queued(let parked, let effects) = m.reserve(user: 2, now: start) else {
            Issue.record("the second reserve must wait")
            return
        }
        #expect(effects.isEmpty)
        let committed = m.committed(
            BatchOutcome(results: [.reserved(hold(1, user: 1))], expired: [], sold: 0, reserved: 1, committedAt: start),
            now: start)
        #expect(
            committed.contains { if case .answer(parked, .reserve(.soldOut)) = $0 { true } else { false } },
            "sold out once the unit is committed")
        guard case .answered(.reserve(.soldOut)) = m.reserve(user: 3, now: start) else {
            Issue.record("sold out from memory now")
            return
        }
    }

    @Test func aWaitingReserveGetsTheUnitWhenTheClaimInFlightFails() {
        var m = machine(stock: 1)
        _ = m.reserve(user: 1, now: start)
        _ = m.flush(now: start)
        guard case .queued = m.reserve(user: 2, now: start) else {
            Issue.record("the second reserve must wait")
            return
        }
        _ = m.failed(EngineError(.batchFailed, "boom"))
        let drop = DropRecord(
            id: 7, spec: DropSpec(name: "m", priceCents: 10, totalStock: 1, reserveTTLMilliseconds: 1_000), sold: 0,
            reserved: 0, createdAt: start)
        let effects = m.recovered(DropRecovery(drop: drop, activeHolds: [], purchases: []), now: start)
        let next = effects.contains { if case .gather = $0 { true } else { false } } ? m.flush(now: start) : effects
        #expect(
            batch(next)?.items == [ClaimItem(.reserve, user: 2)],
            "the waiting reserve is claimed in the next batch")
    }
}
