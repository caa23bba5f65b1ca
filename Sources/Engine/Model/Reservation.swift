// A hold on one unit, and the purchase that may complete it.
import Foundation

public enum ReservationStatus: String, Sendable, Codable, CaseIterable {
    case active = "ACTIVE"
    case purchased = "PURCHASED"
    case cancelled = "CANCELLED"
    case expired = "EXPIRED"
}

public struct Reservation: Sendable, Equatable, Codable {
    public let id: ReservationID
    public let dropID: DropID
    public let userID: UserID
    public var status: ReservationStatus
    public let createdAt: Date
    public let expiresAt: Date
    public var endedAt: Date?

    public init(
        id: ReservationID, dropID: DropID, userID: UserID, status: ReservationStatus,
        createdAt: Date, expiresAt: Date, endedAt: Date? = nil
    ) {
        self.id = id
        self.dropID = dropID
        self.userID = userID
        self.status = status
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.endedAt = endedAt
    }
}

extension Reservation {
    /// When a hold made at `createdAt` to expire at `expiresAt` that nobody bought gives its
    /// unit back: the purchase grace later (for a purchase asked in time still on its way,
    /// migration 9), `capMilliseconds` but never more than half the hold's TTL, so a short
    /// hold's unit is not kept long past it.
    public static func graceEnds(
        createdAt: Date, expiresAt: Date, capMilliseconds: Int = Defaults.purchaseGraceMilliseconds
    ) -> Date {
        let grace = graceMicroseconds(
            createdMicroseconds: createdAt.epochMicroseconds, expiresMicroseconds: expiresAt.epochMicroseconds,
            capMilliseconds: capMilliseconds)
        return expiresAt.addingTimeInterval(Double(grace) / 1_000_000)
    }

    /// The same in SQL, for the queries that judge holds by it: the purchase grace (an
    /// interval) of the hold in the row `alias` ("" for the query's only table), capped by the
    /// milliseconds in `cap` (a bound parameter such as "$2").
    public static func graceSQL(alias: String, cap: String) -> String {
        let column = { (name: String) in alias.isEmpty ? name : "\(alias).\(name)" }
        return "least(\(cap) * interval '1 millisecond', (\(column("expires_at")) - \(column("created_at"))) / 2)"
    }

    /// The rule itself, for a hold's row: its purchase grace in microseconds (`graceEnds` adds
    /// it to `expires_at`).
    public static func graceMicroseconds(
        createdMicroseconds: Int64, expiresMicroseconds: Int64,
        capMilliseconds: Int = Defaults.purchaseGraceMilliseconds
    ) -> Int64 {
        min(Int64(capMilliseconds) * 1_000, max(0, expiresMicroseconds - createdMicroseconds) / 2)
    }
}

public struct Purchase: Sendable, Equatable, Codable {
    public let id: PurchaseID
    public let reservationID: ReservationID
    public let dropID: DropID
    public let userID: UserID
    public let priceCents: Int64
    public let idempotencyKey: String?
    public let createdAt: Date

    public init(
        id: PurchaseID, reservationID: ReservationID, dropID: DropID, userID: UserID,
        priceCents: Int64, idempotencyKey: String?, createdAt: Date
    ) {
        self.id = id
        self.reservationID = reservationID
        self.dropID = dropID
        self.userID = userID
        self.priceCents = priceCents
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
    }
}
