// One transaction's worth of claims on one drop, and what the store decided for each.
// Every store applies a batch the same way (DropStore's contract): lock the drop, expire
// overdue holds by the store's clock, apply the first purchase or cancel per user, then the
// reserves in arrival order while stock lasts, and update the counters.
import Foundation

public struct ClaimItem: Sendable, Equatable {
    public enum Kind: Int32, Sendable {
        case reserve = 1
        case purchase = 2
        case cancel = 3
    }
    public let kind: Kind
    public let userID: UserID
    public let idempotencyKey: String?
    /// A reserve the drop's owner vouches for: by its memory (every live hold and purchase of
    /// the drop, under a lease no one else writes through) the user holds nothing live here
    /// and is under the per-user limit. The store skips its own per-user check for it; the
    /// one-live-hold rule still holds it (a vouch for a user who holds fails the whole batch,
    /// nothing applied), the limit is taken on trust.
    public let vouched: Bool
    /// When the buyer asked for this purchase (the server: when it received the request);
    /// nil for now, the batch's clock reading. A purchase asked before its hold's
    /// `expires_at` buys a hold still within the purchase grace (migration 9).
    public let askedAt: Date?

    public init(
        _ kind: Kind, user: UserID, idempotencyKey: String? = nil, vouched: Bool = false, askedAt: Date? = nil
    ) {
        precondition(!vouched || kind == .reserve, "only a reserve is vouched for")
        precondition(askedAt == nil || kind == .purchase, "only a purchase is asked at an instant")
        self.kind = kind
        self.userID = user
        self.idempotencyKey = idempotencyKey
        self.vouched = vouched
        self.askedAt = askedAt
    }

    /// The kind `stockdrop_apply_batch` reads: 1 reserve, 2 purchase, 3 cancel, and 4 a reserve
    /// its owner vouches for, which the function does not probe (migration 8).
    public var batchFunctionKind: Int32 { vouched ? 4 : kind.rawValue }

    /// The same claim, vouched for or not.
    func vouched(_ vouched: Bool) -> ClaimItem {
        ClaimItem(kind, user: userID, idempotencyKey: idempotencyKey, vouched: vouched, askedAt: askedAt)
    }
}

public struct ClaimBatch: Sendable, Equatable {
    /// When each purchase of the batch was asked, as the batch function takes it (migration
    /// 9): purchases with no stated instant are left out (asked at the batch's clock reading).
    public var asks: (users: [UserID], epochMicroseconds: [Int64]) {
        let asked = items.compactMap { item in item.askedAt.map { (item.userID, $0.epochMicroseconds) } }
        return (asked.map(\.0), asked.map(\.1))
    }

    public let dropID: DropID
    /// Empty is valid: a batch that only expires overdue holds (a sweep).
    public let items: [ClaimItem]
    /// The lease the batch is written under (an actor's); nil for writers without one.
    public let lease: BatchLease?

    public init(dropID: DropID, items: [ClaimItem], lease: BatchLease? = nil) {
        self.dropID = dropID
        self.items = items
        self.lease = lease
    }
}

/// The store's decision for one item.
public enum ClaimResult: Sendable, Equatable {
    case reserved(Reservation)
    case purchased(Purchase, replayed: Bool)
    case cancelled(Reservation)
    case rejected(RejectionCode)
}

public struct BatchOutcome: Sendable, Equatable {
    /// One result per item, in the batch's order.
    public var results: [ClaimResult]
    /// Holds this batch expired because they were overdue: (reservation, user).
    public var expired: [ExpiredHold]
    /// The drop's counters after the batch committed.
    public var sold: Int
    public var reserved: Int
    /// The store's clock when it applied the batch.
    public var committedAt: Date
    /// The drop's total stock (it never changes), when the store said: what live events show
    /// beside the counters. Nil for an unknown drop.
    public var totalStock: Int?

    public init(
        results: [ClaimResult], expired: [ExpiredHold], sold: Int, reserved: Int, committedAt: Date,
        totalStock: Int? = nil
    ) {
        self.results = results
        self.expired = expired
        self.sold = sold
        self.reserved = reserved
        self.committedAt = committedAt
        self.totalStock = totalStock
    }
}

public struct ExpiredHold: Sendable, Equatable {
    public let reservationID: ReservationID
    public let userID: UserID

    public init(reservationID: ReservationID, userID: UserID) {
        self.reservationID = reservationID
        self.userID = userID
    }
}

/// What an actor needs to take charge of a drop: the drop and its live state.
public struct DropRecovery: Sendable, Equatable {
    public var drop: DropRecord
    /// ACTIVE reservations, overdue ones included (the actor expires them at once).
    public var activeHolds: [Reservation]
    /// Purchases with their keys: the per-user limit, and retries answered from memory.
    public var purchases: [Purchase]
    /// An owner's reload moves its lease to a new epoch, so a batch it sent before (one whose
    /// answer was lost, and that may still reach the database late) is fenced instead of
    /// applied after newer ones: its vouches were made by a memory the reload replaced. Nil
    /// for a load without a lease.
    public var epoch: Int64?

    public init(drop: DropRecord, activeHolds: [Reservation], purchases: [Purchase], epoch: Int64? = nil) {
        self.drop = drop
        self.activeHolds = activeHolds
        self.purchases = purchases
        self.epoch = epoch
    }
}
