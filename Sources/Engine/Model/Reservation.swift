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
    /// When a hold expiring at `expiresAt` that nobody bought gives its unit back: the
    /// purchase grace later, for a purchase asked in time still on its way (migration 9).
    public static func graceEnds(
        expiresAt: Date, graceMilliseconds: Int = Defaults.purchaseGraceMilliseconds
    ) -> Date {
        expiresAt.addingTimeInterval(Double(graceMilliseconds) / 1000)
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
