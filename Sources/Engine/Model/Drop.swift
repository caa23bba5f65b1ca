// A drop: what is for sale, how much of it, and the rules of the race for it.
import Foundation

public typealias DropID = Int64
public typealias UserID = Int64
public typealias ReservationID = Int64
public typealias PurchaseID = Int64

/// What an admin asks for when creating a drop; validated before it reaches any store.
public struct DropSpec: Sendable, Equatable, Codable {
    public var name: String
    public var priceCents: Int64
    public var totalStock: Int
    public var startsAt: Date?
    public var perUserLimit: Int
    public var reserveTTLMilliseconds: Int

    public init(
        name: String, priceCents: Int64, totalStock: Int, startsAt: Date? = nil,
        perUserLimit: Int = 1, reserveTTLMilliseconds: Int = Defaults.reserveTTLMilliseconds
    ) {
        self.name = name
        self.priceCents = priceCents
        self.totalStock = totalStock
        self.startsAt = startsAt
        self.perUserLimit = perUserLimit
        self.reserveTTLMilliseconds = reserveTTLMilliseconds
    }

    /// Every problem with the spec, empty when it is valid.
    public var problems: [String] {
        var problems: [String] = []
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        // Counted as PostgreSQL's length() counts (code points), and no control characters:
        // libpq passes text parameters as C strings, so a NUL would cut the name short.
        if trimmed.isEmpty || name.unicodeScalars.count > 200 { problems.append("name must be 1 to 200 characters") }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            problems.append("name must not contain control characters")
        }
        if priceCents < 0 || priceCents > Defaults.maxPriceCents {
            problems.append("priceCents must be between 0 and \(Defaults.maxPriceCents)")
        }
        if totalStock < 0 || totalStock > Defaults.maxTotalStock {
            problems.append("totalStock must be between 0 and \(Defaults.maxTotalStock)")
        }
        if perUserLimit < 1 || perUserLimit > Defaults.maxPerUserLimit {
            problems.append("perUserLimit must be between 1 and \(Defaults.maxPerUserLimit)")
        }
        if reserveTTLMilliseconds < Defaults.minReserveTTLMilliseconds
            || reserveTTLMilliseconds > Defaults.maxReserveTTLMilliseconds
        {
            problems.append(
                "reserveTTL must be between \(Defaults.minReserveTTLMilliseconds) ms and \(Defaults.maxReserveTTLMilliseconds) ms"
            )
        }
        return problems
    }
}

/// A drop as stored, with its counters at one moment.
public struct DropRecord: Sendable, Equatable, Codable {
    public let id: DropID
    public var spec: DropSpec
    public var sold: Int
    public var reserved: Int
    public let createdAt: Date

    public init(id: DropID, spec: DropSpec, sold: Int, reserved: Int, createdAt: Date) {
        self.id = id
        self.spec = spec
        self.sold = sold
        self.reserved = reserved
        self.createdAt = createdAt
    }

    public var available: Int { max(0, spec.totalStock - sold - reserved) }
}

/// A drop with its stock figures and latest purchases, as listed to buyers.
public struct DropSnapshot: Sendable, Equatable, Codable {
    public var drop: DropRecord
    public var recentPurchases: [RecentPurchase]
    /// The instant (the database's clock) at which these figures were the committed state:
    /// every batch stamped before it is in them, none stamped after. Nil when unknown (a drop
    /// just created, as its creator saw it).
    public var committedAt: Date?

    public init(drop: DropRecord, recentPurchases: [RecentPurchase], committedAt: Date? = nil) {
        self.drop = drop
        self.recentPurchases = recentPurchases
        self.committedAt = committedAt
    }
}

public struct RecentPurchase: Sendable, Equatable, Codable {
    public let purchaseID: PurchaseID
    public let userID: UserID
    public let buyerName: String?
    public let createdAt: Date

    public init(purchaseID: PurchaseID, userID: UserID, buyerName: String?, createdAt: Date) {
        self.purchaseID = purchaseID
        self.userID = userID
        self.buyerName = buyerName
        self.createdAt = createdAt
    }
}
