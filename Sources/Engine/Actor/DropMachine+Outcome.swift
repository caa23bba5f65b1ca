// Applying the store's verdicts to memory, through the one mapping both strategies share
// (ClaimResult+Outcome). A verdict that contradicts what memory decided on its own shows
// that memory was wrong: the machine then reloads the drop.
import Foundation

extension DropMachine {
    mutating func apply(_ result: ClaimResult, to waiting: Waiting) -> (Answer, disagrees: Bool) {
        let user = waiting.item.userID
        switch waiting.item.kind {
        case .reserve:
            reservesPending.remove(user)
            let holding = holds[user].map { reservation($0, user: user) }
            guard let outcome = ReserveOutcome(result, holding: holding, startsAt: drop.spec.startsAt) else {
                preconditionFailure("store answered \(result) to a reserve")
            }
            var disagrees = false
            switch outcome {
            case .reserved(let reservation): setHold(reservation, of: user)
            // A hold memory counted as overdue that the store's clock did not expire yet
            // explains "already holding" (and "sold out"; the counters check after the batch
            // catches units only the store knew were gone); a hold memory never had does not.
            case .alreadyHolding: disagrees = waiting.decidedByMemory && holding == nil
            // This batch's own purchase, applied first, may have reached the limit.
            case .limitReached:
                disagrees = waiting.decidedByMemory && (purchases[user]?.count ?? 0) < drop.spec.perUserLimit
            case .unknownDrop: disagrees = waiting.decidedByMemory
            case .soldOut, .notStarted, .overloaded: break
            }
            return (.reserve(outcome), disagrees)
        case .purchase:
            guard let outcome = PurchaseOutcome(result) else {
                preconditionFailure("store answered \(result) to a purchase")
            }
            var disagrees = false
            switch outcome {
            case .purchased(let purchase, let replayed):
                if holds[user]?.id == purchase.reservationID {
                    endHold(of: user, .purchased(purchase))
                } else if !replayed {
                    disagrees = true  // the store bought a hold memory did not have
                }
                remember(purchase)
            case .expired:
                if holds[user] == nil { rememberEnded(user, .expired) } else { disagrees = true }
            case .noActiveReservation, .unknownDrop:
                disagrees = holds[user] != nil || outcome == .unknownDrop
            case .idempotencyKeyReused, .overloaded:
                break
            }
            return (.purchase(outcome), disagrees)
        case .cancel:
            guard let outcome = CancelOutcome(result) else {
                preconditionFailure("store answered \(result) to a cancel")
            }
            var disagrees = false
            switch outcome {
            case .cancelled(let reservation):
                if holds[user]?.id == reservation.id || holds[user] == nil {
                    endHold(of: user, .cancelled(reservation))
                } else {
                    disagrees = true  // the store cancelled a hold memory did not have
                }
            case .noActiveReservation, .unknownDrop:
                disagrees = holds[user] != nil || outcome == .unknownDrop
            case .overloaded:
                break
            }
            return (.cancel(outcome), disagrees)
        }
    }
}
