// Where a drop's claims are decided, asked before a claim is made. Ownership is a value: the
// caller branches on it (decide here, or send the claim to the owner) instead of catching an
// error out of the claim. A lease can still move between the question and the claim; the claim
// then fails with `notOwner` or `fenced`, applied nothing, and the caller asks again.
import Foundation

/// The answer to "where is this drop decided?".
public enum DropRoute: Sendable {
    /// Here: the claims go to this handle (the drop's actor, or the strategy itself).
    case local(any DropClaims)
    /// At another instance, which holds the drop's lease (`owner` as the directory names it).
    case remote(owner: String)
    /// No drop has this id.
    case unknown
}

/// The three claims on one drop, as its deciding place takes them.
public protocol DropClaims: Sendable {
    func reserve(user: UserID) async throws -> ReserveOutcome
    /// `askedAt`: when the buyer asked (the server's read of the request); nil for now. A
    /// purchase asked before its hold's `expires_at` buys it though decided after (design §2).
    func purchase(user: UserID, idempotencyKey: String?, askedAt: Date?) async throws -> PurchaseOutcome
    func cancel(user: UserID) async throws -> CancelOutcome
}

extension DropClaims {
    /// A purchase asked now.
    public func purchase(user: UserID, idempotencyKey: String?) async throws -> PurchaseOutcome {
        try await purchase(user: user, idempotencyKey: idempotencyKey, askedAt: nil)
    }
}

extension Inventory {
    /// The drop's claims when they are decided here, nil for an unknown drop, or `notOwner`
    /// naming the owner (nothing applied): the in-process form of `route(_:)`.
    func localClaims(on drop: DropID) async throws -> (any DropClaims)? {
        switch try await route(drop) {
        case .local(let claims): claims
        case .unknown: nil
        case .remote(let owner):
            throw EngineError.ownedElsewhere(drop, by: owner)
        }
    }
}

extension EngineError {
    /// A claim sent to an instance that does not decide its drop (nothing applied).
    static func ownedElsewhere(_ drop: DropID, by owner: String) -> EngineError {
        EngineError(.notOwner, "drop \(drop) is owned by instance \(owner)", owner: owner)
    }
}
