// What a buyer is told. A rejection is a normal answer with a stable code, not a thrown
// error; `throw` is kept for failures (database down, batch failed).
import Foundation

/// Stable codes: reports, the HTTP API and scripts depend on these strings.
public enum RejectionCode: String, Sendable, Codable, CaseIterable {
    case soldOut = "sold_out"
    case alreadyHolding = "already_holding"
    case limitReached = "limit_reached"
    case notStarted = "not_started"
    case unknownDrop = "unknown_drop"
    case noActiveReservation = "no_active_reservation"
    case expired = "expired"
    /// The purchase's Idempotency-Key names this user's purchase on another drop.
    case idempotencyKeyReused = "idempotency_key_reused"
    case overloaded = "overloaded"
}

public enum ReserveOutcome: Sendable, Equatable {
    case reserved(Reservation)
    /// The user already holds a unit of this drop (the hold, when committed and known).
    case alreadyHolding(Reservation?)
    case soldOut
    case limitReached
    case notStarted(until: Date)
    case unknownDrop
    case overloaded

    public var rejection: RejectionCode? {
        switch self {
        case .reserved: nil
        case .alreadyHolding: .alreadyHolding
        case .soldOut: .soldOut
        case .limitReached: .limitReached
        case .notStarted: .notStarted
        case .unknownDrop: .unknownDrop
        case .overloaded: .overloaded
        }
    }
}

public enum PurchaseOutcome: Sendable, Equatable {
    /// `replayed` is true when an earlier purchase was returned (same reservation or key).
    case purchased(Purchase, replayed: Bool)
    case noActiveReservation
    case expired
    /// The key was used for a purchase on another drop; the caller's hold here is untouched.
    case idempotencyKeyReused
    case unknownDrop
    case overloaded

    public var rejection: RejectionCode? {
        switch self {
        case .purchased: nil
        case .noActiveReservation: .noActiveReservation
        case .expired: .expired
        case .idempotencyKeyReused: .idempotencyKeyReused
        case .unknownDrop: .unknownDrop
        case .overloaded: .overloaded
        }
    }
}

public enum CancelOutcome: Sendable, Equatable {
    /// The hold this cancel ended, or (a retried cancel) the user's last hold, already cancelled.
    case cancelled(Reservation)
    case noActiveReservation
    case unknownDrop
    case overloaded

    public var rejection: RejectionCode? {
        switch self {
        case .cancelled: nil
        case .noActiveReservation: .noActiveReservation
        case .unknownDrop: .unknownDrop
        case .overloaded: .overloaded
        }
    }
}

/// A failure that crosses the module boundary: a code and context, extensible without
/// breaking callers.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The batch was refused as a whole by the store: nothing was applied.
        public static let batchFailed = Code(rawValue: "batch_failed")
        /// The batch reached the store but its answer was lost (the connection broke, or the
        /// reply could not be read): it may or may not have committed. A retry is safe: a
        /// reserve finds the hold or makes one, a purchase with the same key replays, a cancel
        /// finds the hold cancelled or cancels it.
        public static let outcomeUnknown = Code(rawValue: "outcome_unknown")
        public static let storeUnavailable = Code(rawValue: "store_unavailable")
        public static let invalidDrop = Code(rawValue: "invalid_drop")
        public static let shuttingDown = Code(rawValue: "shutting_down")
        /// Another instance holds the drop's lease: the claim belongs to that owner (`owner`).
        public static let notOwner = Code(rawValue: "not_owner")
        /// The batch's lease epoch is no longer the drop's: the lease changed hands while this
        /// instance was not looking (a pause, a partition), so its actor stepped down. Nothing
        /// was applied.
        public static let fenced = Code(rawValue: "fenced")
        /// A write without a lease on a drop an instance holds a live lease on (the rowlock
        /// strategy on a drop an actor owns). Nothing was applied.
        public static let leased = Code(rawValue: "leased")

        /// Whether a failure with this code is known to have applied nothing (a retry cannot
        /// double anything); false for `outcome_unknown` and for any code this build does not
        /// know, since the safe assumption about an unknown failure is that it may have applied.
        public var appliedNothing: Bool {
            [.batchFailed, .storeUnavailable, .invalidDrop, .shuttingDown, .notOwner, .fenced, .leased].contains(self)
        }
    }

    public let code: Code
    public let message: String
    /// For `notOwner`, `fenced` and `leased`: the instance that holds the drop's lease, when known.
    public let owner: String?

    public init(_ code: Code, _ message: String, owner: String? = nil) {
        self.code = code
        self.message = message
        self.owner = owner
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
