// A drop as buyers see it: stock figures and the latest purchases for the activity feed.
import Engine
import Foundation

struct DropResponse: Codable, Sendable {
    /// Public (drop reads, the live feed): the buyer's display name, never their user id.
    struct RecentPurchase: Codable, Sendable {
        let purchaseId: Int64
        let buyerName: String?
        let createdAt: String
    }

    let id: Int64
    let name: String
    let priceCents: Int64
    let totalStock: Int
    let availableStock: Int
    let reservedStock: Int
    let soldCount: Int
    let startsAt: String?
    let perUserLimit: Int
    let reserveTTLMilliseconds: Int
    let createdAt: String
    let recentPurchases: [RecentPurchase]
    /// The instant (the database's clock) at which these figures were the committed state;
    /// absent on a drop's creation.
    let committedAt: String?

    init(_ snapshot: DropSnapshot) {
        let drop = snapshot.drop
        id = drop.id
        name = drop.spec.name
        priceCents = drop.spec.priceCents
        totalStock = drop.spec.totalStock
        availableStock = drop.available
        reservedStock = drop.reserved
        soldCount = drop.sold
        startsAt = drop.spec.startsAt.map(APITime.string)
        perUserLimit = drop.spec.perUserLimit
        reserveTTLMilliseconds = drop.spec.reserveTTLMilliseconds
        createdAt = APITime.string(drop.createdAt)
        recentPurchases = snapshot.recentPurchases.map {
            RecentPurchase(purchaseId: $0.purchaseID, buyerName: $0.buyerName, createdAt: APITime.string($0.createdAt))
        }
        committedAt = snapshot.committedAt.map(APITime.string)
    }
}

/// One page of `GET /v1/drops`; `nextCursor` is null on the last page.
struct DropPage: Codable, Sendable {
    let drops: [DropResponse]
    let nextCursor: String?
}
