// A place that decides claims given as values (`DropActor.Claim`): the drop's actor, and the line
// claims wait in while it is activated. The three claims of `DropClaims` are written once, here,
// in terms of `decide`.
import Foundation

protocol ClaimDecider: DropClaims {
    /// Reads when a purchase was asked, when its caller did not say.
    var claimClock: any WallClock { get }
    func decide(_ claim: DropActor.Claim) async throws -> DropMachine.Answer
}

extension ClaimDecider {
    func reserve(user: UserID) async throws -> ReserveOutcome {
        guard case .reserve(let outcome) = try await decide(.reserve(user)) else {
            preconditionFailure("reserve answered with another kind")
        }
        return outcome
    }

    func purchase(user: UserID, idempotencyKey: String?, askedAt: Date?) async throws -> PurchaseOutcome {
        guard
            case .purchase(let outcome) = try await decide(
                .purchase(user, idempotencyKey: idempotencyKey, askedAt: askedAt ?? claimClock.now()))
        else {
            preconditionFailure("purchase answered with another kind")
        }
        return outcome
    }

    func cancel(user: UserID) async throws -> CancelOutcome {
        guard case .cancel(let outcome) = try await decide(.cancel(user)) else {
            preconditionFailure("cancel answered with another kind")
        }
        return outcome
    }
}
