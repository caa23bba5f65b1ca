// What the database says each second while a dashboard watches: each drop's counters, the
// units its rows hold (purchased, and held by a hold whose expiry and purchase grace have not
// run out), the buyers past a per-buyer rule, and which acknowledged claims have no row to
// show for them. Read on the run's own observer connection; nil fields are reads that failed
// this second.
import Engine
import Foundation

struct RowFacts: Sendable, Equatable {
    struct Drop: Sendable, Equatable {
        var counters: DropCounters
        /// From the rows: PURCHASED, and ACTIVE with `expires_at` plus the purchase grace still
        /// ahead (within the grace a hold keeps its unit for a purchase asked in time).
        var purchasedRows: Int
        var heldRows: Int
    }

    struct BuyerPastRule: Sendable, Equatable {
        var drop: DropID
        var user: UserID
        var purchased: Int
        var holding: Int
        var perUserLimit: Int
    }

    /// An acknowledged claim whose row is missing, or (a purchase) is not PURCHASED.
    struct Missing: Sendable, Equatable {
        var acknowledged: DashboardTally.Acknowledged
        var operation: OperationKind
        /// The row's status, nil when there is no row.
        var status: String?
    }

    var drops: [Drop]
    var buyersPastRule: [BuyerPastRule]
    var missing: [Missing]
    /// The database's clock when it was read, as seconds of the run.
    var atSeconds: Double

    /// Reads every fact for `drops` in one snapshot (REPEATABLE READ: the counters and rows
    /// seen together), and looks up the acknowledgements given.
    static func read(
        pool: PostgresPool, drops: [DropID], holds: [DashboardTally.Acknowledged],
        purchases: [DashboardTally.Acknowledged], atSeconds: Double
    ) async throws -> RowFacts {
        try await pool.withSession { session in
            try session.transaction(isolation: .repeatableRead) {
                try read(session: session, drops: drops, holds: holds, purchases: purchases, atSeconds: atSeconds)
            }
        }
    }

    private static func read(
        session: PostgresSession, drops: [DropID], holds: [DashboardTally.Acknowledged],
        purchases: [DashboardTally.Acknowledged], atSeconds: Double
    ) throws -> RowFacts {
        let grace = PostgresValue.int32(Int32(Defaults.purchaseGraceMilliseconds))
        // An ACTIVE row still holds its unit until its expiry and purchase grace have passed.
        let holdsUnit = "r.expires_at > now() - \(Reservation.graceSQL(alias: "r", cap: "$2"))"
        let counters = try session.query(
            """
            SELECT d.id, d.total_stock, d.sold, d.reserved,
                   count(r.id) FILTER (WHERE r.status = 'PURCHASED') AS purchased_rows,
                   count(r.id) FILTER (WHERE r.status = 'ACTIVE' AND \(holdsUnit)) AS held_rows
            FROM drops d LEFT JOIN reservations r ON r.drop_id = d.id AND r.status IN ('ACTIVE', 'PURCHASED')
            WHERE d.id = ANY($1)
            GROUP BY d.id ORDER BY d.id
            """, [.int64Array(drops), grace])
        var dropFacts: [Drop] = []
        for row in counters.rows {
            dropFacts.append(
                Drop(
                    counters: try DropCounters(row), purchasedRows: try row.int("purchased_rows"),
                    heldRows: try row.int("held_rows")))
        }
        let past = try session.query(
            """
            SELECT r.drop_id, r.user_id, d.per_user_limit,
                   count(*) FILTER (WHERE r.status = 'PURCHASED') AS purchased,
                   count(*) FILTER (WHERE r.status = 'ACTIVE' AND \(holdsUnit)) AS holding
            FROM reservations r JOIN drops d ON d.id = r.drop_id
            WHERE r.drop_id = ANY($1) AND r.status IN ('ACTIVE', 'PURCHASED')
            GROUP BY r.drop_id, r.user_id, d.per_user_limit
            HAVING count(*) FILTER (WHERE r.status = 'ACTIVE' AND \(holdsUnit)) > 1
                OR count(*) FILTER (WHERE r.status = 'PURCHASED' OR \(holdsUnit)) > d.per_user_limit
            ORDER BY r.drop_id, r.user_id LIMIT 5
            """, [.int64Array(drops), grace])
        var buyers: [BuyerPastRule] = []
        for row in past.rows {
            buyers.append(
                BuyerPastRule(
                    drop: try row.int64("drop_id"), user: try row.int64("user_id"), purchased: try row.int("purchased"),
                    holding: try row.int("holding"), perUserLimit: try row.int("per_user_limit")))
        }
        var missing: [Missing] = []
        let asked = holds + purchases
        if !asked.isEmpty {
            let found = try session.query(
                "SELECT id, status FROM reservations WHERE id = ANY($1)", [.int64Array(asked.map(\.reservation))])
            var status: [ReservationID: String] = [:]
            for row in found.rows { status[try row.int64("id")] = try row.string("status") }
            for hold in holds where status[hold.reservation] == nil {
                missing.append(Missing(acknowledged: hold, operation: .reserve, status: nil))
            }
            for purchase in purchases where status[purchase.reservation] != "PURCHASED" {
                missing.append(
                    Missing(acknowledged: purchase, operation: .purchase, status: status[purchase.reservation]))
            }
        }
        return RowFacts(drops: dropFacts, buyersPastRule: buyers, missing: missing, atSeconds: atSeconds)
    }
}
