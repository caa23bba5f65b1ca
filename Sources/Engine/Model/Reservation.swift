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
