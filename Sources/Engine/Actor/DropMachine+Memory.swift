// What memory may answer. The store is the source of truth; memory answers for it only what
// the store would answer at this instant: a hold past its deadline counts as free (the next
// batch expires it before anything else), an answer that hangs on a claim in flight waits for
// that claim, and an ending memory did not see (before its last load) is the store's to tell.
import Foundation

extension DropMachine {
    enum Decision {
        case answer(Answer)
        /// Memory expects the store to grant this: it joins the next batch.
        case claim
        /// Memory cannot know the answer (an ending it did not see, a key that may belong to
        /// another drop): it joins the next batch and the store decides.
        case askStore
        /// A reserve whose answer hangs on claims in flight; decided again after they commit.
        case wait
    }

    func decide(_ item: ClaimItem, now: Date) -> Decision {
        // Without a lease known to be this machine's, memory may be behind the store.
        guard memoryTrusted(now: now) else { return .askStore }
        return switch item.kind {
        case .reserve: decideReserve(user: item.userID, now: now)
        case .purchase: decidePurchase(user: item.userID, idempotencyKey: item.idempotencyKey)
        case .cancel: decideCancel(user: item.userID)
        }
    }

    /// The one place a reserve is decided from memory, for new requests and parked ones alike.
    /// The order of the checks is the store's (stockdrop_apply_claims, step 3).
    private func decideReserve(user: UserID, now: Date) -> Decision {
        if let startsAt = drop.spec.startsAt, startsAt > now { return .answer(.reserve(.notStarted(until: startsAt))) }
        if let hold = holds[user], !overdue.contains(user) {
            return .answer(.reserve(.alreadyHolding(reservation(hold, user: user))))
        }
        // The user's own reserve is in flight: whether they will be holding is not known yet.
        if reservesPending.contains(user) { return .wait }
        if (purchases[user]?.count ?? 0) >= drop.spec.perUserLimit { return .answer(.reserve(.limitReached)) }
        if availableForNewClaims > 0 { return .claim }
        // Sold out only when every unit is committed as sold or as a hold that is still live:
        // units merely promised to reserves in flight may come back if those fail.
        return committedFreeUnits <= 0 ? .answer(.reserve(.soldOut)) : .wait
    }

    private func decidePurchase(user: UserID, idempotencyKey: String?) -> Decision {
        if let idempotencyKey, let earlier = purchases[user]?.first(where: { $0.idempotencyKey == idempotencyKey }) {
            return .answer(.purchase(.purchased(earlier, replayed: true)))
        }
        // A hold, overdue or not: the store expires an overdue one first and answers `expired`.
        if holds[user] != nil { return .claim }
        // A key unknown on this drop may name a purchase on another one: only the store knows.
        if idempotencyKey != nil { return .askStore }
        // No key and no hold: a retry of a purchase replays it only if the user's last hold
        // here is the one it bought.
        switch ended[user] {
        case .purchased(let purchase): return .answer(.purchase(.purchased(purchase, replayed: true)))
        case .expired: return .answer(.purchase(.expired))
        case .cancelled: return .answer(.purchase(.noActiveReservation))
        case nil: return .askStore
        }
    }

    private func decideCancel(user: UserID) -> Decision {
        if holds[user] != nil { return .claim }
        // A retried cancel finds the hold it cancelled.
        switch ended[user] {
        case .cancelled(let reservation): return .answer(.cancel(.cancelled(reservation)))
        case .purchased, .expired: return .answer(.cancel(.noActiveReservation))
        case nil: return .askStore
        }
    }

    /// Puts a request where its decision sends it: an answer (returned, to be performed), the
    /// next batch, or the parked line.
    mutating func place(_ ticket: Ticket, _ item: ClaimItem, _ decision: Decision) -> Effect? {
        switch decision {
        case .answer(let answer): return .answer(ticket, answer)
        case .claim: append(ticket, item, decidedByMemory: true)
        case .askStore: append(ticket, item, decidedByMemory: false)
        case .wait: parked.append(Waiting(ticket: ticket, item: item, decidedByMemory: true))
        }
        return nil
    }

    /// Decides the parked reserves again now that a batch's verdict is in or time moved: an
    /// answer (sold out once every unit is committed), a claim for the next batch (a promised
    /// unit came back, or a hold went overdue), or wait on.
    mutating func decideParked(now: Date) -> [Effect] {
        guard !parked.isEmpty else { return [] }
        let waiting = parked
        parked.removeAll()
        return waiting.compactMap { place($0.ticket, $0.item, decide($0.item, now: now)) }
    }
}
