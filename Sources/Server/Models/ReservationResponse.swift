// A hold and a purchase as the API shows them.
import Engine
import Foundation
// Hummingbird encodes these with the context's JSON encoder.
import Hummingbird

struct ReservationResponse: Codable, Sendable {
    let id: Int64
    let dropId: Int64
    let userId: Int64
    let status: String
    let createdAt: String
    let expiresAt: String
    let endedAt: String?

    init(_ reservation: Reservation) {
        id = reservation.id
        dropId = reservation.dropID
        userId = reservation.userID
        status = reservation.status.rawValue
        createdAt = APITime.string(reservation.createdAt)
        expiresAt = APITime.string(reservation.expiresAt)
        endedAt = reservation.endedAt.map(APITime.string)
    }
}

struct ReservationList: Codable, Sendable {
    let reservations: [ReservationResponse]
}

struct PurchaseResponse: Codable, Sendable, Equatable {
    let id: Int64
    let reservationId: Int64
    let dropId: Int64
    let userId: Int64
    let priceCents: Int64
    let idempotencyKey: String?
    let createdAt: String

    init(_ purchase: Purchase) {
        id = purchase.id
        reservationId = purchase.reservationID
        dropId = purchase.dropID
        userId = purchase.userID
        priceCents = purchase.priceCents
        idempotencyKey = purchase.idempotencyKey
        createdAt = APITime.string(purchase.createdAt)
    }
}

extension ReservationResponse: ResponseEncodable {}
extension ReservationList: ResponseEncodable {}
extension PurchaseResponse: ResponseEncodable {}
extension DropResponse: ResponseEncodable {}
extension DropPage: ResponseEncodable {}
