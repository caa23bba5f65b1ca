// The one mapping from a store's verdict on a claim to what its caller hears. The actor's
// machine and the rowlock baseline both read the store's codes through it, so a code means the
// same thing whichever strategy answered. A verdict that does not fit the claim's kind (a
// purchase answered `sold_out`, say) maps to nil: a broken store, never a guessed outcome.
import Foundation

extension ReserveOutcome {
    /// `holding` is the caller's live hold when the answer is `already_holding` and the caller
    /// knows it; `startsAt` dates a `not_started`.
    init?(_ result: ClaimResult, holding: Reservation?, startsAt: Date?) {
        switch result {
        case .reserved(let reservation): self = .reserved(reservation)
        case .rejected(.soldOut): self = .soldOut
        case .rejected(.alreadyHolding): self = .alreadyHolding(holding)
        case .rejected(.limitReached): self = .limitReached
        case .rejected(.notStarted): self = .notStarted(until: startsAt ?? .distantPast)
        case .rejected(.unknownDrop): self = .unknownDrop
        default: return nil
        }
    }
}

extension PurchaseOutcome {
    init?(_ result: ClaimResult) {
        switch result {
        case .purchased(let purchase, let replayed): self = .purchased(purchase, replayed: replayed)
        case .rejected(.noActiveReservation): self = .noActiveReservation
        case .rejected(.expired): self = .expired
        case .rejected(.idempotencyKeyReused): self = .idempotencyKeyReused
        case .rejected(.unknownDrop): self = .unknownDrop
        default: return nil
        }
    }
}

extension CancelOutcome {
    init?(_ result: ClaimResult) {
        switch result {
        case .cancelled(let reservation): self = .cancelled(reservation)
        case .rejected(.noActiveReservation): self = .noActiveReservation
        case .rejected(.unknownDrop): self = .unknownDrop
        default: return nil
        }
    }
}
