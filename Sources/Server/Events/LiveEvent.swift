// What live subscribers are told, as JSON text frames. Public events go to every socket;
// `reservation.*` events go only to the socket(s) of the user they name. PostgreSQL stays the
// source of truth: an event reports a commit, it never decides anything.
import Engine
import Foundation

struct LiveEvent: Codable, Sendable {
    enum Kind: String, Codable, Sendable {
        case snapshot
        case dropCreated = "drop.created"
        case stockChanged = "stock.changed"
        case purchaseCompleted = "purchase.completed"
        case reservationExpired = "reservation.expired"
        case reservationPurchased = "reservation.purchased"
    }

    var type: Kind
    var dropId: Int64?
    var totalStock: Int?
    var availableStock: Int?
    var reservedStock: Int?
    var soldCount: Int?
    var purchase: DropResponse.RecentPurchase?
    var reservationId: Int64?
    var purchaseId: Int64?
    /// The owner of a private event, or the buyer of a purchase.
    var userId: Int64?
    var drop: DropResponse?
    var drops: [DropResponse]?
    /// The database's commit time of what the event reports (for subscribers' lag).
    var committedAt: String?
    /// For `stock.changed`: the commit time in microseconds, taken by the database under the
    /// drop's row lock, so it orders a drop's commits across strategies and instances; a value
    /// older than one already seen is stale and never shown.
    var version: Int64?
    /// The instance that published it, so the Redis relay skips its own.
    var origin: String?

    init(type: Kind, dropId: Int64? = nil) {
        self.type = type
        self.dropId = dropId
    }

    /// Sent only to the user it names.
    var isPrivate: Bool { type == .reservationExpired || type == .reservationPurchased }

    static func stock(drop: DropID, total: Int, sold: Int, reserved: Int, committedAt: Date) -> LiveEvent {
        var event = LiveEvent(type: .stockChanged, dropId: drop)
        event.totalStock = total
        event.soldCount = sold
        event.reservedStock = reserved
        event.availableStock = max(0, total - sold - reserved)
        event.committedAt = APITime.string(committedAt)
        event.version = committedAt.epochMicroseconds
        return event
    }

    var json: String {
        (try? String(decoding: Self.encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    static func decode(_ text: String) -> LiveEvent? {
        try? JSONDecoder().decode(LiveEvent.self, from: Data(text.utf8))
    }

    private static let encoder = JSONEncoder()
}

/// An event encoded once, for every socket it goes to (a purchase reaches a thousand
/// watchers as one JSON encoding, not a thousand).
struct LiveFrame: Sendable {
    let event: LiveEvent
    let text: String

    init(_ event: LiveEvent) {
        self.event = event
        text = event.json
    }
}
