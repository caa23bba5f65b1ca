import Foundation
import Testing

// What memory may answer, and when it must reload: each case is a bug memory once had (an
// overdue hold counted as held, a purchase replayed for the wrong hold, a reused key that
// dropped a hold, a reload decided outside the machine), pinned on the pure machine.
@testable import Engine

@Suite("drop state machine: memory") struct DropMachineMemoryTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func drop(stock: Int, limit: Int = 1, reserved: Int = 0, sold: Int = 0) -> DropRecord {
        DropRecord(
            id: 7,
            spec: DropSpec(
                name: "m", priceCents: 10, totalStock: stock, perUserLimit: limit, reserveTTLMilliseconds: 1_000),
            sold: sold, reserved: reserved, createdAt: start)
    }

    func machine(stock: Int, limit: Int = 1, holds: [Reservation] = [], purchases: [Purchase] = []) -> DropMachine {
        DropMachine(
            recovery: DropRecovery(
                drop: drop(stock: stock, limit: limit, reserved: holds.count, sold: purchases.count),
                activeHolds: holds, purchases: purchases),
            now: start, maxBatchClaims: 8, maxQueuedClaims: 8)
    }

    /// A hold that falls due for the sweep `seconds` after `start`: its `expires_at` is the
    /// purchase grace before that (the machine sweeps a hold once the grace is over), and it
    /// was made a minute before `start`, so that its TTL does not shorten the grace.
    func hold(_ id: ReservationID, user: UserID, dueIn seconds: TimeInterval = 1) -> Reservation {
        Reservation(
            id: id, dropID: 7, userID: user, status: .active, createdAt: start.addingTimeInterval(-60),
            expiresAt: start.addingTimeInterval(seconds - Double(Defaults.purchaseGraceMilliseconds) / 1000))
    }

    func purchase(_ id: PurchaseID, of reservation: ReservationID, user: UserID, key: String?) -> Purchase {
        Purchase(
            id: id, reservationID: reservation, dropID: 7, userID: user, priceCents: 10, idempotencyKey: key,
            createdAt: start)
    }

    func at(_ seconds: TimeInterval) -> Date { start.addingTimeInterval(seconds) }

    func commit(
        _ m: inout DropMachine, _ results: [ClaimResult], expired: [ExpiredHold] = [], sold: Int = 0, reserved: Int,
        now: Date
    ) -> [DropMachine.Effect] {
        _ = m.flush(now: now)
        return m.committed(
            BatchOutcome(results: results, expired: expired, sold: sold, reserved: reserved, committedAt: now), now: now
        )
    }

    func answers(_ effects: [DropMachine.Effect]) -> [DropMachine.Ticket: DropMachine.Answer] {
        var answers: [DropMachine.Ticket: DropMachine.Answer] = [:]
        for case .answer(let ticket, let answer) in effects { answers[ticket] = answer }
        return answers
    }

    func reloads(_ effects: [DropMachine.Effect]) -> Bool {
        effects.contains { if case .recover = $0 { true } else { false } }
    }

    /// Found by the checker's timeline: a hold past its deadline but not swept yet made memory
    /// answer "sold out" (and "already holding" to its owner) while the store would have
    /// expired it and handed the unit on.
    @Test func anOverdueHoldIsAFreeUnitNotAHold() {
        var m = machine(stock: 1, holds: [hold(1, user: 1)])
        guard case .answered(.reserve(.soldOut)) = m.reserve(user: 2, now: at(0.5)) else {
            Issue.record("sold out while the hold is live")
            return
        }
        guard case .queued(let claim, _) = m.reserve(user: 2, now: at(1.5)) else {
            Issue.record("an overdue unit is claimable")
            return
        }
        guard case .queued(let parked, let parkedEffects) = m.reserve(user: 1, now: at(1.5)) else {
            Issue.record("the owner of an overdue hold is not 'already holding'")
            return
        }
        #expect(parkedEffects.isEmpty, "the last free unit is promised to user 2: user 1 waits for that verdict")
        let effects = commit(
            &m, [.reserved(hold(2, user: 2, dueIn: 2.5))], expired: [ExpiredHold(reservationID: 1, userID: 1)],
            reserved: 1, now: at(1.5))
        let told = answers(effects)
        guard case .reserve(.reserved(let granted))? = told[claim], case .reserve(.soldOut)? = told[parked] else {
            Issue.record("expected the unit for user 2 and sold out for user 1, got \(told)")
            return
        }
        #expect(granted.userID == 2 && !reloads(effects))
    }

    @Test func aPurchaseOfAnOverdueHoldIsTheStoresToRefuse() {
        var m = machine(stock: 1, holds: [hold(1, user: 1)])
        guard case .queued(let ticket, _) = m.purchase(user: 1, idempotencyKey: "k", now: at(1.2)) else {
            Issue.record("the store decides")
            return
        }
        let effects = commit(
            &m, [.rejected(.expired)], expired: [ExpiredHold(reservationID: 1, userID: 1)], reserved: 0, now: at(1.2))
        guard case .purchase(.expired)? = answers(effects)[ticket] else {
            Issue.record("expired expected")
            return
        }
        #expect(!reloads(effects) && m.activeHoldCount == 0)
        guard case .answered(.cancel(.noActiveReservation)) = m.cancel(user: 1, now: at(1.3)) else {
            Issue.record("known ending")
            return
        }
    }

    /// The wedged drop: a key spent on another drop answered "no active reservation", memory
    /// dropped the hold while the store kept it, and the unit was gone for good.
    @Test func aKeyReusedOnAnotherDropLeavesTheHoldBuyable() {
        var m = machine(stock: 1, holds: [hold(1, user: 1, dueIn: 60)])
        guard case .queued(let ticket, _) = m.purchase(user: 1, idempotencyKey: "spent-on-drop-6", now: start) else {
            Issue.record("queued")
            return
        }
        let effects = commit(&m, [.rejected(.idempotencyKeyReused)], reserved: 1, now: start)
        guard case .purchase(.idempotencyKeyReused)? = answers(effects)[ticket] else {
            Issue.record("its own code expected")
            return
        }
        #expect(!reloads(effects) && m.activeHoldCount == 1)
        guard case .queued(let retry, _) = m.purchase(user: 1, idempotencyKey: "fresh", now: start) else {
            Issue.record("still buyable")
            return
        }
        let bought = purchase(5, of: 1, user: 1, key: "fresh")
        let done = commit(&m, [.purchased(bought, replayed: false)], sold: 1, reserved: 0, now: start)
        guard case .purchase(.purchased(bought, replayed: false))? = answers(done)[retry] else {
            Issue.record("bought")
            return
        }
    }

    /// A purchase without a key replays only the purchase of the user's last hold: with a
    /// limit of 2, a second hold that expired must not "succeed" with the first purchase.
    @Test func aPurchaseReplaysOnlyItsOwnHoldOrKey() {
        let first = purchase(5, of: 1, user: 1, key: "k1")
        var m = machine(stock: 3, limit: 2, holds: [hold(2, user: 1)], purchases: [first])
        _ = m.tick(now: at(1.5))
        _ = commit(&m, [], expired: [ExpiredHold(reservationID: 2, userID: 1)], sold: 1, reserved: 0, now: at(1.5))
        guard case .answered(.purchase(.expired)) = m.purchase(user: 1, idempotencyKey: nil, now: at(1.6)) else {
            Issue.record("the last hold expired: no replay of the first purchase")
            return
        }
        guard
            case .answered(.purchase(.purchased(first, replayed: true))) = m.purchase(
                user: 1, idempotencyKey: "k1", now: at(1.6))
        else {
            Issue.record("the same key replays")
            return
        }
        guard case .queued = m.purchase(user: 1, idempotencyKey: "k2", now: at(1.6)) else {
            Issue.record("an unknown key is the store's")
            return
        }
    }

    @Test func aRetriedCancelFindsTheHoldItCancelled() {
        var m = machine(stock: 1, holds: [hold(1, user: 1, dueIn: 60)])
        guard case .queued(let ticket, _) = m.cancel(user: 1, now: start) else {
            Issue.record("queued")
            return
        }
        var cancelled = hold(1, user: 1, dueIn: 60)
        cancelled.status = .cancelled
        cancelled.endedAt = start
        let effects = commit(&m, [.cancelled(cancelled)], reserved: 0, now: start)
        guard case .cancel(.cancelled(cancelled))? = answers(effects)[ticket] else {
            Issue.record("cancelled")
            return
        }
        guard case .answered(.cancel(.cancelled(cancelled))) = m.cancel(user: 1, now: start) else {
            Issue.record("the retry finds it")
            return
        }
    }

    @Test func endingsPastTheBoundAreForgottenOldestFirstAndAskedOfTheStore() {
        var m = DropMachine(
            recovery: DropRecovery(
                drop: drop(stock: 3, limit: 1, reserved: 3, sold: 0),
                activeHolds: (1...3).map { hold(ReservationID($0), user: UserID($0), dueIn: 60) }, purchases: []),
            now: start, maxBatchClaims: 8, maxQueuedClaims: 8, maxEndedRemembered: 2)
        var cancelled: [Reservation] = []
        for user in 1...3 {
            guard case .queued = m.cancel(user: UserID(user), now: start) else {
                Issue.record("queued")
                return
            }
            var ended = hold(ReservationID(user), user: UserID(user), dueIn: 60)
            ended.status = .cancelled
            ended.endedAt = start
            cancelled.append(ended)
            _ = commit(&m, [.cancelled(ended)], reserved: 3 - user, now: start)
        }
        #expect(m.ended.count == 2)
        // The first ending was forgotten: its retry goes to the store, which knows it.
        guard case .queued = m.cancel(user: 1, now: start) else {
            Issue.record("a forgotten ending is the store's to tell")
            return
        }
        guard case .answered(.cancel(.cancelled(cancelled[2]))) = m.cancel(user: 3, now: start) else {
            Issue.record("a remembered ending is answered from memory")
            return
        }
    }

    @Test func aSecondReserveWaitsForTheFirstInsteadOfGuessing() {
        var m = machine(stock: 5)
        guard case .queued(let first, _) = m.reserve(user: 1, now: start) else {
            Issue.record("queued")
            return
        }
        guard case .queued(let second, let effects) = m.reserve(user: 1, now: start) else {
            Issue.record("waits")
            return
        }
        #expect(effects.isEmpty)
        let done = commit(&m, [.reserved(hold(1, user: 1))], reserved: 1, now: start)
        let told = answers(done)
        guard case .reserve(.reserved(let granted))? = told[first],
            case .reserve(.alreadyHolding(let known))? = told[second]
        else {
            Issue.record("expected the hold, then already holding with it: \(told)")
            return
        }
        #expect(known?.id == granted.id)
    }

    /// A lost acknowledgement: callers hear "outcome unknown", memory reloads, and the retry
    /// finds what the store did.
    @Test func aLostAcknowledgementIsUnknownAndTheRetryFindsTheHold() {
        var m = machine(stock: 1)
        guard case .queued(let ticket, _) = m.reserve(user: 1, now: start) else {
            Issue.record("queued")
            return
        }
        _ = m.flush(now: start)
        let effects = m.failed(EngineError(.outcomeUnknown, "connection lost after sending"))
        #expect(
            effects.contains {
                if case .fail([ticket], let error) = $0 { error.code == .outcomeUnknown } else { false }
            })
        #expect(reloads(effects))
        guard case .queued(let retry, let retryEffects) = m.reserve(user: 1, now: start) else {
            Issue.record("waits for the reload")
            return
        }
        #expect(retryEffects.isEmpty, "a reload is already in flight")
        let reloaded = m.recovered(
            DropRecovery(drop: drop(stock: 1, reserved: 1), activeHolds: [hold(1, user: 1)], purchases: []),
            now: start)
        guard case .reserve(.alreadyHolding(let known))? = answers(reloaded)[retry] else {
            Issue.record("already holding: \(reloaded)")
            return
        }
        #expect(known?.id == 1)
    }

    @Test func aFailedReloadFailsEveryoneWaitingAndTheNextRequestReloads() {
        var m = machine(stock: 2)
        guard case .queued(let inFlight, _) = m.reserve(user: 1, now: start) else {
            Issue.record("queued")
            return
        }
        _ = m.flush(now: start)
        _ = m.failed(EngineError(.batchFailed, "refused"))
        guard case .queued(let waiting, _) = m.purchase(user: 2, idempotencyKey: nil, now: start) else {
            Issue.record("queued")
            return
        }
        let failed = m.recoveryFailed(EngineError(.storeUnavailable, "down"))
        #expect(failed.contains { if case .fail([waiting], _) = $0 { true } else { false } })
        #expect(!failed.contains { if case .fail(let tickets, _) = $0 { tickets.contains(inFlight) } else { false } })
        guard case .queued(_, let next) = m.reserve(user: 3, now: start) else {
            Issue.record("queued")
            return
        }
        #expect(reloads(next), "the machine decides to reload on the next request")
        #expect(m.tick(now: start).isEmpty, "one reload at a time")
    }

    @Test func aVerdictThatContradictsMemoryReloads() {
        var m = machine(stock: 2, holds: [hold(1, user: 1, dueIn: 60)])
        guard case .queued = m.purchase(user: 1, idempotencyKey: nil, now: start) else {
            Issue.record("queued")
            return
        }
        #expect(
            reloads(commit(&m, [.rejected(.noActiveReservation)], reserved: 0, now: start)),
            "the store had no hold memory had")
        var counted = machine(stock: 2)
        guard case .queued = counted.reserve(user: 1, now: start) else {
            Issue.record("queued")
            return
        }
        #expect(
            reloads(commit(&counted, [.reserved(hold(1, user: 1))], reserved: 2, now: start)), "another writer's hold")
    }

    /// The store applies purchases and cancels before reserves: a user's reserve queued before
    /// their cancel is no disagreement (read in batch order it was, and forced a reload).
    @Test func aReserveAndACancelOfOneUserInOneBatchAgreeWithTheStore() {
        var m = machine(stock: 1, holds: [hold(1, user: 1)])
        guard case .queued(let reserve, _) = m.reserve(user: 1, now: at(1.5)) else {
            Issue.record("a claim")
            return
        }
        guard case .queued(let cancel, _) = m.cancel(user: 1, now: at(1.5)) else {
            Issue.record("the store's")
            return
        }
        // The batch carries the cancel first (purchases and cancels lead every batch), then the
        // reserve: one result each, in that order.
        let effects = commit(
            &m, [.rejected(.noActiveReservation), .reserved(hold(2, user: 1, dueIn: 2.5))],
            expired: [ExpiredHold(reservationID: 1, userID: 1)], reserved: 1, now: at(1.5))
        #expect(!reloads(effects))
        let told = answers(effects)
        guard case .reserve(.reserved)? = told[reserve], case .cancel(.noActiveReservation)? = told[cancel] else {
            Issue.record("\(told)")
            return
        }
        #expect(m.activeHoldCount == 1)
    }

    /// The idle drop: a due hold and a stale memory (its reload failed) still get swept.
    @Test func aStaleDropReloadsWhenItsTimerFires() {
        var m = machine(stock: 1)
        guard case .queued = m.reserve(user: 1, now: start) else {
            Issue.record("queued")
            return
        }
        _ = m.flush(now: start)
        _ = m.failed(EngineError(.batchFailed, "refused"))
        _ = m.recoveryFailed(EngineError(.storeUnavailable, "down"))
        #expect(reloads(m.tick(now: at(5))))
    }
}
