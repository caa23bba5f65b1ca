// One contract, every store: PostgreSQL (the source of truth) and the in-memory store used by
// simulations must decide every batch the same way.
import Engine
import Foundation
import Testing

@Suite("store contract") struct DropStoreContractTests {
    static let kinds = ["memory", "postgres"]

    private func spec(stock: Int, limit: Int = 1, ttlMilliseconds: Int = 60_000, startsAt: Date? = nil) -> DropSpec {
        DropSpec(
            name: "Contract pair", priceCents: 12_500, totalStock: stock, startsAt: startsAt,
            perUserLimit: limit, reserveTTLMilliseconds: ttlMilliseconds)
    }

    /// A drop of one unit, held by user 1: where every expiry case starts.
    private func heldUnit(_ subject: StoreUnderTest, ttlMilliseconds: Int) async throws -> (DropRecord, Reservation) {
        let drop = try await subject.store.createDrop(spec(stock: 1, ttlMilliseconds: ttlMilliseconds))
        let held = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1)]))
        guard case .reserved(let hold) = held.results[0] else {
            throw ContractFailure(description: "expected a hold, got \(held.results)")
        }
        return (drop, hold)
    }

    private struct ContractFailure: Error, CustomStringConvertible {
        let description: String
    }

    @Test(arguments: kinds) func reservesInArrivalOrderWhileStockLasts(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_reserve")
        defer { Task { await subject.close() } }
        let drop = try await subject.store.createDrop(spec(stock: 2))
        let outcome = try await subject.store.apply(
            ClaimBatch(
                dropID: drop.id,
                items: [
                    ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2),
                    ClaimItem(.reserve, user: 3),
                ]))
        guard case .reserved(let first) = outcome.results[0], case .reserved(let second) = outcome.results[2] else {
            Issue.record("expected two holds, got \(outcome.results)")
            return
        }
        #expect(first.userID == 1 && second.userID == 2)
        #expect(first.status == .active)
        #expect(outcome.results[1] == .rejected(.alreadyHolding))
        #expect(outcome.results[3] == .rejected(.soldOut))
        #expect(outcome.sold == 0 && outcome.reserved == 2)
        #expect(abs(first.expiresAt.timeIntervalSince(first.createdAt) - 60) < 0.001)
        let unknown = try await subject.store.apply(
            ClaimBatch(dropID: drop.id + 999, items: [ClaimItem(.reserve, user: 1)]))
        #expect(unknown.results == [.rejected(.unknownDrop)])
    }

    /// The hold an `already_holding` names: the user's ACTIVE one on that drop, none on
    /// another drop, none once it ended.
    @Test(arguments: kinds) func theLiveHoldIsTheUsersActiveOneOnTheDrop(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_live_hold")
        defer { Task { await subject.close() } }
        let a = try await subject.store.createDrop(spec(stock: 2))
        let b = try await subject.store.createDrop(spec(stock: 2))
        let outcome = try await subject.store.apply(
            ClaimBatch(dropID: a.id, items: [ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2)]))
        guard case .reserved(let hold) = outcome.results[0] else {
            Issue.record("expected a hold, got \(outcome.results)")
            return
        }
        #expect(try await subject.store.liveHold(of: 1, on: a.id)?.id == hold.id)
        #expect(try await subject.store.liveHold(of: 1, on: b.id) == nil)
        #expect(try await subject.store.liveHold(of: 3, on: a.id) == nil)
        _ = try await subject.store.apply(ClaimBatch(dropID: a.id, items: [ClaimItem(.cancel, user: 1)]))
        #expect(try await subject.store.liveHold(of: 1, on: a.id) == nil)
    }

    @Test(arguments: kinds) func purchasesAreIdempotentAndCancelsReturnStock(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_purchase")
        defer { Task { await subject.close() } }
        let drop = try await subject.store.createDrop(spec(stock: 2))
        _ = try await subject.store.apply(
            ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2)]))
        let bought = try await subject.store.apply(
            ClaimBatch(
                dropID: drop.id,
                items: [
                    ClaimItem(.purchase, user: 1, idempotencyKey: "k-1"),
                    ClaimItem(.purchase, user: 1, idempotencyKey: "k-1"),
                    ClaimItem(.cancel, user: 2), ClaimItem(.cancel, user: 3), ClaimItem(.purchase, user: 4),
                ]))
        guard case .purchased(let purchase, replayed: false) = bought.results[0] else {
            Issue.record("expected a purchase, got \(bought.results[0])")
            return
        }
        #expect(purchase.priceCents == 12_500 && purchase.idempotencyKey == "k-1")
        #expect(bought.results[1] == .purchased(purchase, replayed: true))
        guard case .cancelled(let cancelled) = bought.results[2] else {
            Issue.record("expected a cancel, got \(bought.results[2])")
            return
        }
        #expect(cancelled.userID == 2)
        #expect(bought.results[3] == .rejected(.noActiveReservation))
        #expect(bought.results[4] == .rejected(.noActiveReservation))
        #expect(bought.sold == 1 && bought.reserved == 0)
        // Retries: by key, and without a key (same reservation), give the same purchase.
        let retried = try await subject.store.apply(
            ClaimBatch(
                dropID: drop.id,
                items: [
                    ClaimItem(.purchase, user: 1, idempotencyKey: "k-1"), ClaimItem(.purchase, user: 1),
                    ClaimItem(.reserve, user: 1),
                ]))
        #expect(retried.results[0] == .purchased(purchase, replayed: true))
        #expect(retried.results[1] == .purchased(purchase, replayed: true))
        #expect(retried.results[2] == .rejected(.limitReached))
        let snapshot = try #require(try await subject.store.snapshot(of: drop.id))
        #expect(snapshot.drop.sold == 1 && snapshot.drop.available == 1)
        #expect(snapshot.recentPurchases.map(\.purchaseID) == [purchase.id])
    }

    @Test(arguments: kinds) func overdueHoldsExpireBeforeAPurchaseCanTakeThem(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_expiry")
        defer { Task { await subject.close() } }
        // Time moves by `advance`, not by waiting: a TTL far longer than a slow machine's pause
        // between two statements (1 s once lapsed in a loaded run).
        let (drop, hold) = try await heldUnit(subject, ttlMilliseconds: 30_000)
        #expect(try await subject.store.dropsWithOverdueHolds().isEmpty)
        try await subject.advance(30.5)
        // A purchase asked now, past the hold's expiry (within the grace, which is not its).
        let late = try await subject.store.apply(
            ClaimBatch(dropID: drop.id, items: [ClaimItem(.purchase, user: 1), ClaimItem(.reserve, user: 2)]))
        #expect(late.expired == [ExpiredHold(reservationID: hold.id, userID: 1)])
        #expect(late.results[0] == .rejected(.expired))
        guard case .reserved = late.results[1] else {
            Issue.record("the expired unit should go to the next buyer, got \(late.results[1])")
            return
        }
        #expect(late.sold == 0 && late.reserved == 1)
        let recovery = try #require(try await subject.store.recover(drop.id))
        #expect(recovery.activeHolds.map(\.userID) == [2])
    }

    /// Past `expires_at` but within the purchase grace, a hold keeps its unit for a purchase
    /// asked in time that is still on its way: a batch in between sweeps nothing and turns a
    /// buyer away, then the purchase buys the hold. A purchase asked late loses it at once.
    @Test(arguments: kinds) func aPurchaseAskedBeforeExpiryBuysTheHoldWithinTheGrace(kind: String) async throws {
        let subject = try await StoreUnderTest.make(
            kind, suite: "contract_asked_in_time", purchaseGraceMilliseconds: 60_000)
        defer { Task { await subject.close() } }
        let drop = try await subject.store.createDrop(spec(stock: 2, ttlMilliseconds: 30_000))
        let held = try await subject.store.apply(
            ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1), ClaimItem(.reserve, user: 2)]))
        guard case .reserved(let hold) = held.results[0], case .reserved(let other) = held.results[1] else {
            Issue.record("expected two holds, got \(held.results)")
            return
        }
        try await subject.advance(30.5)
        let expiredAt = subject.afterAdvance(hold.expiresAt, 30.5)
        #expect(try await subject.store.dropsWithOverdueHolds().isEmpty, "both holds are within the grace")
        let between = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 3)]))
        #expect(between.expired.isEmpty && between.results == [.rejected(.soldOut)] && between.reserved == 2)
        let askedInTime = expiredAt.addingTimeInterval(-0.5)
        let askedLate = expiredAt.addingTimeInterval(0.01)
        let decided = try await subject.store.apply(
            ClaimBatch(
                dropID: drop.id,
                items: [
                    ClaimItem(.purchase, user: 1, idempotencyKey: "k-1", askedAt: askedInTime),
                    ClaimItem(.purchase, user: 2, idempotencyKey: "k-2", askedAt: askedLate),
                    ClaimItem(.reserve, user: 3),
                ]))
        guard case .purchased(let purchase, replayed: false) = decided.results[0] else {
            Issue.record("a purchase asked in time buys the hold, got \(decided.results[0])")
            return
        }
        #expect(purchase.reservationID == hold.id)
        #expect(
            decided.expired == [ExpiredHold(reservationID: other.id, userID: 2)], "the late one's hold goes at once")
        #expect(decided.results[1] == .rejected(.expired))
        guard case .reserved = decided.results[2] else {
            Issue.record("the unit the late purchase lost goes to the next buyer, got \(decided.results[2])")
            return
        }
        #expect(decided.sold == 1 && decided.reserved == 1)
    }

    /// The grace bounds the wait: past it the hold is swept whoever asked, and a purchase
    /// asked in time but decided after it loses.
    @Test(arguments: kinds) func theGraceEndsTheWaitForAPurchase(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_grace_ends")
        defer { Task { await subject.close() } }
        let (drop, hold) = try await heldUnit(subject, ttlMilliseconds: 30_000)
        let grace = Double(Defaults.purchaseGraceMilliseconds) / 1000
        try await subject.advance(30 + grace + 0.5)
        #expect(try await subject.store.dropsWithOverdueHolds() == [drop.id])
        let askedInTime = subject.afterAdvance(hold.expiresAt, 30 + grace + 0.5).addingTimeInterval(-0.5)
        let late = try await subject.store.apply(
            ClaimBatch(
                dropID: drop.id,
                items: [
                    ClaimItem(.purchase, user: 1, askedAt: askedInTime),
                    ClaimItem(.reserve, user: 2),
                ]))
        #expect(late.expired == [ExpiredHold(reservationID: hold.id, userID: 1)])
        #expect(late.results[0] == .rejected(.expired))
        guard case .reserved = late.results[1] else {
            Issue.record("the unit goes to the next buyer, got \(late.results[1])")
            return
        }
    }

    /// A short hold's grace is half its TTL: a 1 s hold is swept 500 ms past its expiry, not a
    /// whole grace.
    @Test(arguments: kinds) func aShortHoldsGraceIsHalfItsTTL(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_short_grace")
        defer { Task { await subject.close() } }
        let (drop, hold) = try await heldUnit(subject, ttlMilliseconds: 1_000)
        try await subject.advance(1.6)
        #expect(try await subject.store.dropsWithOverdueHolds() == [drop.id])
        let next = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 2)]))
        #expect(next.expired == [ExpiredHold(reservationID: hold.id, userID: 1)])
        guard case .reserved = next.results[0] else {
            Issue.record("the unit goes to the next buyer, got \(next.results)")
            return
        }
    }

    @Test(arguments: kinds) func limitsAndStartTimesAreEnforced(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_limits")
        defer { Task { await subject.close() } }
        let later = try await subject.store.createDrop(
            spec(stock: 5, startsAt: Date().addingTimeInterval(3_600 * 24 * 365 * 20)))
        let early = try await subject.store.apply(ClaimBatch(dropID: later.id, items: [ClaimItem(.reserve, user: 1)]))
        #expect(early.results == [.rejected(.notStarted)])
        let two = try await subject.store.createDrop(spec(stock: 5, limit: 2))
        for _ in 0..<2 {
            _ = try await subject.store.apply(ClaimBatch(dropID: two.id, items: [ClaimItem(.reserve, user: 9)]))
            _ = try await subject.store.apply(ClaimBatch(dropID: two.id, items: [ClaimItem(.purchase, user: 9)]))
        }
        let third = try await subject.store.apply(ClaimBatch(dropID: two.id, items: [ClaimItem(.reserve, user: 9)]))
        #expect(third.results == [.rejected(.limitReached)])
        #expect(third.sold == 2)
        let page = try await subject.store.listDrops(after: nil, limit: 1)
        #expect(page.map(\.drop.id) == [later.id])
        let next = try await subject.store.listDrops(after: later.id, limit: 10)
        #expect(next.map(\.drop.id) == [two.id])
        #expect(next.first?.recentPurchases.count == 2)
        #expect(try await subject.store.reservations(of: 9).count == 2)
    }

    /// A reserve its owner vouches for is not probed: it is granted while stock lasts and
    /// answered sold out past it like any reserve, but a vouch for a user who holds a live unit
    /// is refused with the whole batch (the one-live-hold index), nothing applied, so a wrong
    /// memory costs a batch, never a second hold.
    @Test(arguments: kinds) func aVouchedReserveSkipsTheProbeAndTheIndexRefusesAWrongOne(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_vouched")
        defer { Task { await subject.close() } }
        let drop = try await subject.store.createDrop(spec(stock: 2))
        let granted = try await subject.store.apply(
            ClaimBatch(
                dropID: drop.id,
                items: [
                    ClaimItem(.reserve, user: 1, vouched: true), ClaimItem(.reserve, user: 2),
                    ClaimItem(.reserve, user: 3, vouched: true),
                ]))
        guard case .reserved(let first) = granted.results[0], case .reserved = granted.results[1] else {
            Issue.record("expected two holds, got \(granted.results)")
            return
        }
        #expect(first.userID == 1)
        #expect(granted.results[2] == .rejected(.soldOut))
        let other = try await subject.store.createDrop(spec(stock: 5))
        do {
            let outcome = try await subject.store.apply(
                ClaimBatch(
                    dropID: drop.id,
                    items: [ClaimItem(.cancel, user: 2), ClaimItem(.reserve, user: 1, vouched: true)]))
            Issue.record("a vouch for a user who holds went through: \(outcome.results)")
        } catch let error as EngineError {
            #expect(error.code == .batchFailed, "\(error)")
        }
        // Nothing of the refused batch applied: user 2's cancel did not happen.
        #expect(try await subject.store.liveHold(of: 2, on: drop.id) != nil)
        #expect(try await subject.store.snapshot(of: drop.id)?.drop.reserved == 2)
        let elsewhere = try await subject.store.apply(
            ClaimBatch(dropID: other.id, items: [ClaimItem(.reserve, user: 1, vouched: true)]))
        guard case .reserved = elsewhere.results[0] else {
            Issue.record("a hold on one drop says nothing of another: \(elsewhere.results)")
            return
        }
    }

    /// A key names one purchase of one user: spent on drop A, it is refused on drop B, and
    /// the hold on B stays ACTIVE and buyable with another key.
    @Test(arguments: kinds) func aKeyReusedOnAnotherDropIsRefusedAndTheHoldStays(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_key_reuse")
        defer { Task { await subject.close() } }
        let a = try await subject.store.createDrop(spec(stock: 1))
        let b = try await subject.store.createDrop(spec(stock: 1))
        _ = try await subject.store.apply(ClaimBatch(dropID: a.id, items: [ClaimItem(.reserve, user: 1)]))
        _ = try await subject.store.apply(
            ClaimBatch(dropID: a.id, items: [ClaimItem(.purchase, user: 1, idempotencyKey: "k")]))
        _ = try await subject.store.apply(ClaimBatch(dropID: b.id, items: [ClaimItem(.reserve, user: 1)]))
        let reused = try await subject.store.apply(
            ClaimBatch(dropID: b.id, items: [ClaimItem(.purchase, user: 1, idempotencyKey: "k")]))
        #expect(reused.results == [.rejected(.idempotencyKeyReused)])
        #expect(reused.sold == 0 && reused.reserved == 1)
        #expect(try #require(try await subject.store.recover(b.id)).activeHolds.map(\.userID) == [1])
        let bought = try await subject.store.apply(
            ClaimBatch(dropID: b.id, items: [ClaimItem(.purchase, user: 1, idempotencyKey: "k2")]))
        guard case .purchased(_, replayed: false) = bought.results[0] else {
            Issue.record("the hold stays buyable, got \(bought.results)")
            return
        }
    }

    /// Without a key a purchase replays only the purchase of the user's last hold: with a
    /// limit of 2, a purchase after the second hold expired hears `expired`, not the first.
    @Test(arguments: kinds) func aPurchaseWithoutAKeyReplaysOnlyTheLastHold(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_replay")
        defer { Task { await subject.close() } }
        // Time moves by `advance`: a TTL no loaded machine's pause outlasts (1 s once lapsed
        // between the reserve and the purchase in a full suite).
        let drop = try await subject.store.createDrop(spec(stock: 3, limit: 2, ttlMilliseconds: 30_000))
        _ = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1)]))
        let first = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.purchase, user: 1)]))
        guard case .purchased(let purchase, replayed: false) = first.results[0] else {
            Issue.record("expected a purchase, got \(first.results)")
            return
        }
        let retry = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.purchase, user: 1)]))
        #expect(retry.results == [.purchased(purchase, replayed: true)], "the last hold is the one bought: a replay")
        _ = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1)]))
        try await subject.advance(30.5)
        let late = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.purchase, user: 1)]))
        #expect(late.results == [.rejected(.expired)])
        #expect(late.sold == 1 && late.reserved == 0)
    }

    /// A cancel retried after a lost answer finds the hold it cancelled.
    @Test(arguments: kinds) func aRetriedCancelFindsTheCancelledHold(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_cancel_retry")
        defer { Task { await subject.close() } }
        let drop = try await subject.store.createDrop(spec(stock: 1))
        _ = try await subject.store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 1)]))
        let cancelled = try await subject.store.apply(
            ClaimBatch(dropID: drop.id, items: [ClaimItem(.cancel, user: 1), ClaimItem(.cancel, user: 1)]))
        guard case .cancelled(let hold) = cancelled.results[0] else {
            Issue.record("expected a cancel, got \(cancelled.results)")
            return
        }
        #expect(hold.status == .cancelled && hold.endedAt != nil)
        #expect(cancelled.results[1] == .cancelled(hold))
        let retry = try await subject.store.apply(
            ClaimBatch(dropID: drop.id, items: [ClaimItem(.cancel, user: 1), ClaimItem(.cancel, user: 2)]))
        #expect(retry.results == [.cancelled(hold), .rejected(.noActiveReservation)])
        #expect(retry.reserved == 0)
    }

    /// One owner per drop: a live lease is not taken, a lapsed one is (a new epoch), a batch
    /// under a stale epoch is fenced, an owner's reload moves its epoch on, a write without a
    /// lease is refused on a live lease and fences a lapsed one, and only the owner renews.
    @Test(arguments: kinds) func leasesFenceEveryWriterButTheOwner(kind: String) async throws {
        let subject = try await StoreUnderTest.make(kind, suite: "contract_leases")
        defer { Task { await subject.close() } }
        let store = subject.store
        let drop = try await store.createDrop(spec(stock: 5))
        // Time moves by `advance`: leases no loaded machine's pause outlasts (3 s ones once
        // lapsed in real time between two steps of a full suite on two cores), moved twice
        // while user 1's 60 s hold stays live.
        let a = LeaseOwner(instance: "a", leaseMilliseconds: 20_000)
        let b = LeaseOwner(instance: "b", leaseMilliseconds: 20_000)
        #expect(try await store.acquireLease(on: drop.id + 999, for: a) == nil)
        guard case .granted(let loaded, let first, nil) = try await store.acquireLease(on: drop.id, for: a) else {
            Issue.record("a fresh drop's lease is granted")
            return
        }
        #expect(loaded.drop.id == drop.id && loaded.activeHolds.isEmpty)
        #expect(try await store.acquireLease(on: drop.id, for: b) == .heldElsewhere(owner: "a"))
        let reserved = try await store.apply(
            ClaimBatch(
                dropID: drop.id, items: [ClaimItem(.reserve, user: 1)],
                lease: BatchLease(epoch: first, milliseconds: 20_000)))
        #expect(reserved.reserved == 1)
        await #expect(throws: EngineError.self) {
            _ = try await store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 2)]))
        }
        #expect(try await store.renewLeases([drop.id: first], for: a) == LeaseRenewal(renewed: [drop.id], lost: []))
        #expect(try await store.renewLeases([drop.id: first], for: b) == LeaseRenewal(renewed: [], lost: [drop.id]))

        // a pauses past its lease: b takes the drop over with what a committed.
        try await subject.advance(20.5)
        guard case .granted(let taken, let second, "a") = try await store.acquireLease(on: drop.id, for: b) else {
            Issue.record("a lapsed lease is taken over")
            return
        }
        #expect(second > first && taken.activeHolds.map(\.userID) == [1])
        do {
            _ = try await store.apply(
                ClaimBatch(
                    dropID: drop.id, items: [ClaimItem(.reserve, user: 3)],
                    lease: BatchLease(epoch: first, milliseconds: 20_000)))
            Issue.record("a stale epoch must be fenced")
        } catch let error as EngineError {
            #expect(error.code == .fenced && error.owner == "b")
        }
        await #expect(throws: EngineError.self) { _ = try await store.recover(drop.id, epoch: first) }
        // b reloads (after a batch whose answer it lost): the lease moves on, so that batch,
        // should it reach the store late, is fenced rather than applied after newer ones.
        let reloaded = try #require(try await store.recover(drop.id, epoch: second))
        #expect(reloaded.activeHolds.count == 1 && reloaded.epoch == second + 1)
        do {
            _ = try await store.apply(
                ClaimBatch(
                    dropID: drop.id, items: [ClaimItem(.reserve, user: 3, vouched: true)],
                    lease: BatchLease(epoch: second, milliseconds: 20_000)))
            Issue.record("a batch sent before its owner's reload must be fenced")
        } catch let error as EngineError {
            #expect(error.code == .fenced && error.owner == "b")
        }
        #expect(try await store.recover(drop.id)?.epoch == nil, "a load without a lease moves nothing")
        #expect(try await store.renewLeases([drop.id: first], for: a) == LeaseRenewal(renewed: [], lost: [drop.id]))

        // b lapses too; a write without a lease then goes through and fences b.
        try await subject.advance(20.5)
        let unleased = try await store.apply(ClaimBatch(dropID: drop.id, items: [ClaimItem(.reserve, user: 4)]))
        #expect(unleased.reserved == 2)
        await #expect(throws: EngineError.self) {
            _ = try await store.apply(
                ClaimBatch(dropID: drop.id, items: [], lease: BatchLease(epoch: second + 1, milliseconds: 20_000)))
        }
        // A release lets the next owner in at once.
        guard case .granted(_, let third, nil) = try await store.acquireLease(on: drop.id, for: a) else {
            Issue.record("a drop nobody holds is granted")
            return
        }
        try await store.releaseLeases([drop.id: third - 1], of: a)  // a stale epoch releases nothing
        #expect(try await store.acquireLease(on: drop.id, for: b) == .heldElsewhere(owner: "a"))
        try await store.releaseLeases([drop.id: third], of: a)
        guard case .granted(_, let fourth, "a") = try await store.acquireLease(on: drop.id, for: b) else {
            Issue.record("a released lease is taken at once")
            return
        }
        #expect(fourth == third + 1)
    }
}
