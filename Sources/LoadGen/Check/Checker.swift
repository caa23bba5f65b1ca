// The independent oversell checker: docs/design.md's invariants 1 to 6, decided by SQL over the
// tables (never the engine, never its caches) and by what clients were told, at the end of
// the run and at every instant of it (TimelineCheck, ClientHistoryCheck). It trusts the
// counters on `drops` no more than anything else: they are checked against the rows.
import Engine
import Foundation

public struct CheckReport: Sendable, Codable, Equatable {
    public var invariants: [InvariantResult]
    /// Units sold or held beyond total stock, summed over drops (from the rows).
    public var oversold: Int
    public var lostWrites: Int
    public var sold: Int
    /// Units neither sold nor held when the checker looked.
    public var unsold: Int
    public var dropsChecked: Int
    /// Seconds from the run's start until every unit of every drop was held or sold for the
    /// first time (nil without a history, or when some drop never sold out).
    public var timeToSellOutSeconds: Double? = nil
    /// From a batch's clock reading (its rows' timestamp) to each caller hearing of its row
    /// (nil without a history): the window in which a batch's effects are uncertain.
    public var stampToAnswerMilliseconds: LatencyPercentiles? = nil
    /// What a look at the end state alone finds, per invariant it can judge (no-oversell,
    /// per-user-limits): the cross-check of the timeline, and the measure of its blind spot
    /// (holds that overlapped and then expired leave no trace at the end).
    public var endStateViolations: [String: Int]? = nil
    /// Purchases refused `expired`, split into those sent in time (the server's fault) and
    /// those sent late (nil without a history).
    public var expiredPurchases: ExpiredPurchases? = nil
    /// Holds still ACTIVE within their TTL and grace when the checker looked: live, their
    /// expiry not judged (invariant 4 says so).
    public var holdsLiveAtCheck: Int? = nil

    public var broken: [InvariantResult] { invariants.filter { !$0.ok } }
    public var ok: Bool { broken.isEmpty }
}

/// The check was asked about what the database does not hold: nothing was judged.
public struct CheckRefusal: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

public struct Checker: Sendable {
    public var toleranceMilliseconds: Double
    /// False when no engine ran after the load (every server gone): holds still ACTIVE past
    /// their expiry are then nobody's lateness, and only holds expired early are judged.
    public var expiriesJudged: Bool
    /// How long past its grace a hold may still be ACTIVE before it counts as not expired on
    /// time, beyond the clock tolerance: 0 once the run's holds have all ended (a settled
    /// drain), the sweepers' own slack when the check cuts in while they are still expiring
    /// (a drain ended by its bound). Within it a hold is counted live, not judged.
    public var sweepSlackMilliseconds: Double

    public init(
        toleranceMilliseconds: Double = LoadDefaults.clockToleranceMilliseconds, expiriesJudged: Bool = true,
        sweepSlackMilliseconds: Double = 0
    ) {
        self.toleranceMilliseconds = toleranceMilliseconds
        self.expiriesJudged = expiriesJudged
        self.sweepSlackMilliseconds = sweepSlackMilliseconds
    }

    /// Checks `drops` (all drops when nil). Without `history`, invariants 5 and 6 are skipped.
    public func check(databaseURL: String, drops: [DropID]?, history: ClientHistory?) async throws -> CheckReport {
        let pool = PostgresPool(url: databaseURL, size: 1)
        do {
            let report = try await check(pool: pool, drops: drops, history: history)
            await pool.close()
            return report
        } catch {
            await pool.close()
            throw error
        }
    }

    /// The tolerance a check of a history uses: the one asked for, never below the uncertainty
    /// of the history's clock offset to the database's (`ClientHistory.clockUncertaintyMicroseconds`),
    /// within which its instants, moved onto that clock, may be off either way. A run's check
    /// and `stockdrop check --history` both apply it.
    public static func tolerance(_ milliseconds: Double, uncertaintyMicroseconds: Int64?) -> Double {
        max(milliseconds, Double(uncertaintyMicroseconds ?? 0) / 1_000)
    }

    /// Refuses to judge what the database does not hold: drops asked for by id that it has not,
    /// or, with a history, drops made after that history's run began (a later run recreated
    /// the database: every answer the history holds would read as a lost write).
    static func refuseForeign(
        _ pool: PostgresPool, scope: PostgresValue, requested: [DropID]?, history: ClientHistory?
    ) async throws {
        let found = try await pool.query(
            """
            SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us, created_at::text AS created
            FROM drops WHERE id = ANY($1) ORDER BY id
            """, [scope]
        ).rows
        let foundIDs = Set(try found.map { try $0.int64("id") })
        let missing = (requested ?? []).filter { !foundIDs.contains($0) }
        if !missing.isEmpty {
            throw CheckRefusal(
                "no drop has id \(missing.map(String.init).joined(separator: ", ")) in this database"
                    + (history == nil ? "" : " (the history's run had them: is this its database?)"))
        }
        guard let history else { return }
        // A drop is made before its run's clock starts. A history moved onto the database's
        // clock is off by its uncertainty at most: 2 s more is slack; one that was not, a
        // minute (a run recreated within it is then missed, not a legitimate one refused).
        let slack = history.clockUncertaintyMicroseconds.map { $0 + 2_000_000 } ?? 60_000_000
        let latest = history.startedAtEpochMicroseconds + slack
        if let late = try found.first(where: { try $0.int64("created_us") > latest }) {
            throw CheckRefusal(
                "drop \(try late.int64("id")) was made at \(try late.string("created")), after the history's run began: this database is not that run's (each run recreates its database, so check a run's history before the next run)"
            )
        }
    }

    func check(pool: PostgresPool, drops requested: [DropID]?, history: ClientHistory?) async throws -> CheckReport {
        var ids = requested ?? []
        if requested == nil {
            ids = try await pool.query("SELECT id FROM drops ORDER BY id").rows.map { try $0.int64("id") }
        }
        let scope = PostgresValue.int64Array(ids)
        try await Self.refuseForeign(pool, scope: scope, requested: requested, history: history)
        let tolerance = PostgresValue.double(toleranceMilliseconds / 1_000)
        let grace = PostgresValue.int32(Int32(Defaults.purchaseGraceMilliseconds))
        let holdGrace = Reservation.graceSQL(alias: "r", cap: "$2")
        var invariants: [InvariantResult] = []

        // 1. Stock: rows never past total stock, and the counters agree with the rows.
        let stock = try await pool.query(
            """
            SELECT d.id, d.total_stock, d.per_user_limit, d.sold, d.reserved,
                   (SELECT count(*) FROM purchases p WHERE p.drop_id = d.id) AS purchase_rows,
                   (SELECT count(*) FROM reservations r WHERE r.drop_id = d.id AND r.status = 'ACTIVE') AS active_rows,
                   (SELECT count(*) FROM reservations r WHERE r.drop_id = d.id AND r.status = 'PURCHASED') AS purchased_rows
            FROM drops d WHERE d.id = ANY($1) ORDER BY d.id
            """, [scope]
        ).rows
        var oversell: [String] = []
        var counters: [String] = []
        var oversold = 0
        var sold = 0
        var unsold = 0
        var dropRows: [CheckedRows.DropRow] = []
        for row in stock {
            let id = try row.int64("id")
            let total = try row.int("total_stock")
            dropRows.append(CheckedRows.DropRow(id: id, totalStock: total, perUserLimit: try row.int("per_user_limit")))
            let purchases = try row.int("purchase_rows")
            let active = try row.int("active_rows")
            let purchased = try row.int("purchased_rows")
            let soldCounter = try row.int("sold")
            let reservedCounter = try row.int("reserved")
            sold += purchases
            unsold += max(0, total - purchases - active)
            if purchases + active > total {
                oversold += purchases + active - total
                oversell.append(
                    "drop \(id): \(purchases) purchases + \(active) ACTIVE reservations > total stock \(total)")
            }
            if soldCounter != purchases || reservedCounter != active || purchased != purchases {
                counters.append(
                    "drop \(id): counters sold=\(soldCounter) reserved=\(reservedCounter), rows: \(purchases) purchases, \(purchased) PURCHASED and \(active) ACTIVE reservations"
                )
            }
        }
        let rows = try await loadRows(pool, scope, drops: dropRows)
        let clock = CheckClock(zeroMicroseconds: history?.startedAtEpochMicroseconds)
        let stockOverTime = TimelineCheck.stock(rows, clock: clock)
        oversold = max(oversold, stockOverTime.oversold)
        // The end-state SQL is an independent cross-check of the timeline (the end is one of its
        // instants): its lines are shown only if the timeline, wrongly, saw nothing.
        invariants.append(
            .verdict(
                1, InvariantName.noOversell,
                violations: stockOverTime.violations.isEmpty ? oversell : stockOverTime.violations,
                ok: "\(stock.count) drops: units held + sold ≤ total stock at every instant", broken: "drops oversold"))
        invariants.append(
            .verdict(
                1, InvariantName.countersMatchRows, violations: counters,
                ok: "sold = purchases and reserved = ACTIVE reservations on every drop",
                broken: "drops whose counters disagree with their rows"))

        // 2. Every purchase completes exactly one PURCHASED hold of the same user and drop,
        //    asked before the hold expired and committed within the purchase grace past it (a
        //    purchase without `asked_at` was asked when made); every PURCHASED hold has its
        //    purchase. With the history, a purchase was asked no earlier than its user sent
        //    a purchase of that drop.
        var purchases = try await examples(
            pool,
            """
            SELECT format('purchase %s (user %s, drop %s) completes reservation %s, which %s', p.id, p.user_id, p.drop_id, p.reservation_id,
                   CASE WHEN r.id IS NULL THEN 'does not exist'
                        WHEN r.drop_id <> p.drop_id OR r.user_id <> p.user_id THEN format('belongs to user %s on drop %s', r.user_id, r.drop_id)
                        WHEN r.status <> 'PURCHASED' THEN format('is %s', r.status)
                        WHEN coalesce(p.asked_at, p.created_at) >= r.expires_at
                            THEN format('expired at %s, %s ms before the purchase was asked', r.expires_at,
                                        round(extract(epoch FROM coalesce(p.asked_at, p.created_at) - r.expires_at) * 1000))
                        WHEN p.asked_at < r.created_at THEN format('was made at %s, after the purchase was asked', r.created_at)
                        ELSE format('expired at %s, %s ms before the purchase, past the purchase grace of %s ms', r.expires_at,
                                    round(extract(epoch FROM p.created_at - r.expires_at) * 1000),
                                    round(extract(epoch FROM \(holdGrace)) * 1000)) END)
            FROM purchases p LEFT JOIN reservations r ON r.id = p.reservation_id
            WHERE p.drop_id = ANY($1)
              AND (r.id IS NULL OR r.drop_id <> p.drop_id OR r.user_id <> p.user_id OR r.status <> 'PURCHASED'
                   OR coalesce(p.asked_at, p.created_at) >= r.expires_at OR p.asked_at < r.created_at
                   OR p.created_at > r.expires_at + \(holdGrace))
            UNION ALL
            SELECT format('reservation %s (user %s, drop %s) is PURCHASED but has %s purchases', r.id, r.user_id, r.drop_id, count(p.id))
            FROM reservations r LEFT JOIN purchases p ON p.reservation_id = r.id
            WHERE r.drop_id = ANY($1) AND r.status = 'PURCHASED'
            GROUP BY r.id HAVING count(p.id) <> 1
            """, [scope, grace])
        if let history {
            purchases += ClientHistoryCheck.purchasesAskedAfterSent(
                rows, history, toleranceMicroseconds: Int64(toleranceMilliseconds * 1_000))
        }
        invariants.append(
            .verdict(
                2, InvariantName.purchasesMatchHolds, violations: purchases,
                ok: "every purchase completes one PURCHASED hold, asked before its expiry",
                broken: "purchases without a valid hold"))

        // 3. Per user per drop: one ACTIVE hold at most, and no more than the limit held or bought.
        let limits = try await examples(
            pool,
            """
            SELECT format('user %s has %s ACTIVE reservations on drop %s (ids %s)', user_id, count(*), drop_id, string_agg(id::text, ', ' ORDER BY id))
            FROM reservations WHERE drop_id = ANY($1) AND status = 'ACTIVE'
            GROUP BY drop_id, user_id HAVING count(*) > 1
            UNION ALL
            SELECT format('user %s has %s purchased or ACTIVE reservations on drop %s, limit %s (ids %s)', r.user_id, count(*), r.drop_id, d.per_user_limit,
                          string_agg(r.id::text, ', ' ORDER BY r.id))
            FROM reservations r JOIN drops d ON d.id = r.drop_id
            WHERE r.drop_id = ANY($1) AND r.status IN ('ACTIVE', 'PURCHASED')
            GROUP BY r.drop_id, r.user_id, d.per_user_limit HAVING count(*) > d.per_user_limit
            """, [scope])
        let limitsOverTime = TimelineCheck.perUser(rows, clock: clock)
        invariants.append(
            .verdict(
                3, InvariantName.perUserLimits, violations: limitsOverTime.isEmpty ? limits : limitsOverTime,
                ok: "at no instant did a user hold two units of a drop or more than its limit",
                broken: "users past a per-user rule"))

        // 4. Holds end on time: none still ACTIVE past its expiry and the purchase grace, none
        //    expired early.
        let overdueAfter = PostgresValue.double((toleranceMilliseconds + sweepSlackMilliseconds) / 1_000)
        let expiry = try await examples(
            pool,
            """
            SELECT format('reservation %s (user %s, drop %s) is still ACTIVE %s ms after it expired', id, user_id, drop_id,
                          round(extract(epoch FROM now() - expires_at) * 1000))
            FROM reservations
            WHERE drop_id = ANY($1) AND status = 'ACTIVE' AND $4
              AND expires_at < now() - make_interval(secs => $5) - \(Reservation.graceSQL(alias: "", cap: "$3"))
            UNION ALL
            SELECT format('reservation %s (user %s, drop %s) was EXPIRED %s ms before its expiry', id, user_id, drop_id,
                          round(extract(epoch FROM expires_at - ended_at) * 1000))
            FROM reservations WHERE drop_id = ANY($1) AND status = 'EXPIRED' AND ended_at < expires_at - make_interval(secs => $2)
            """, [scope, tolerance, grace, .bool(expiriesJudged), overdueAfter])
        // Holds still within their TTL and grace (a run's drain ended first, or a check while a
        // sale goes on): live, and their expiry is not judged. Said, never silently passed.
        let live = try await pool.query(
            """
            SELECT count(*) AS n, coalesce(ceil(extract(epoch FROM max(expires_at) - now())), 0)::bigint AS last_s
            FROM reservations
            WHERE drop_id = ANY($1) AND status = 'ACTIVE'
              AND NOT expires_at < now() - make_interval(secs => $2) - \(Reservation.graceSQL(alias: "", cap: "$3"))
            """, [scope, overdueAfter, grace]
        ).first
        let liveHolds = try live?.int("n") ?? 0
        let notJudged =
            liveHolds == 0
            ? ""
            : "; \(liveHolds) holds were still live when checked (within their TTL and grace, or being swept as the check began; the last expiring in \(max(0, try live?.int64("last_s") ?? 0)) s): their expiry is not judged"
        invariants.append(
            .verdict(
                4, InvariantName.holdsExpire, violations: expiry,
                ok: (expiriesJudged
                    ? "no hold is still ACTIVE past its TTL and grace, none was expired before it"
                    : "no hold was expired before its expiry; holds still ACTIVE past it are not judged: no server answered after the load, so none could expire them (a server expires them when it starts)")
                    + notJudged,
                broken: "holds that did not expire on time"))

        // 5 and 6 need what the clients were told.
        var lostWrites = 0
        var timeToSellOut: Double?
        var stampToAnswer: LatencyPercentiles?
        var expiredPurchases: ExpiredPurchases?
        if let history {
            expiredPurchases = ExpiredPurchasesCheck.judge(
                rows, history, toleranceMicroseconds: Int64(toleranceMilliseconds * 1_000))
            let (durable, lost) = ClientHistoryCheck.acknowledgedWritesDurable(
                rows, history, toleranceMicroseconds: Int64(toleranceMilliseconds * 1_000))
            lostWrites = lost
            invariants.append(durable)
            let answers = BatchAnswers(rows, history)
            invariants.append(
                ClientHistoryCheck.noUndersell(
                    rows, history, answers: answers, toleranceMicroseconds: Int64(toleranceMilliseconds * 1_000)))
            stampToAnswer = LatencyHistogram(answers.stampToAnswerMicroseconds).percentiles
            // A drop of no units has nothing to sell: it is sold out from the start, and a run
            // of it beside a drop that sold out did sell out (it read "never").
            let stocked = dropRows.filter { $0.totalStock > 0 }.count
            if stockOverTime.soldOutAt.count == stocked {
                let last = stockOverTime.soldOutAt.values.max() ?? history.startedAtEpochMicroseconds
                timeToSellOut = max(0, Double(last - history.startedAtEpochMicroseconds) / 1e6)
            }
        } else {
            invariants.append(
                .skipped(5, InvariantName.acknowledgedWritesDurable, "not checked: no client history (pass --history)"))
            invariants.append(.skipped(6, InvariantName.noUndersell, "not checked: no client history (pass --history)"))
        }
        return CheckReport(
            invariants: invariants, oversold: oversold, lostWrites: lostWrites, sold: sold, unsold: unsold,
            dropsChecked: stock.count, timeToSellOutSeconds: timeToSellOut, stampToAnswerMilliseconds: stampToAnswer,
            endStateViolations: [InvariantName.noOversell: oversell.count, InvariantName.perUserLimits: limits.count],
            expiredPurchases: expiredPurchases, holdsLiveAtCheck: liveHolds > 0 ? liveHolds : nil)
    }

    /// Every row of a query whose single column describes one violation.
    private func examples(_ pool: PostgresPool, _ sql: String, _ parameters: [PostgresValue]) async throws -> [String] {
        try await pool.query(sql, parameters).rows.map { try $0.string("format") }
    }

    /// The holds and purchases of `drops` (already read with the stock check).
    private func loadRows(
        _ pool: PostgresPool, _ scope: PostgresValue, drops: [CheckedRows.DropRow]
    ) async throws -> CheckedRows {
        let micros = { (column: String) in "(extract(epoch FROM \(column)) * 1000000)::bigint" }
        let reservations = try await pool.query(
            """
            SELECT id, drop_id, user_id, status, \(micros("created_at")) AS created, \(micros("expires_at")) AS expires, \(micros("ended_at")) AS ended
            FROM reservations WHERE drop_id = ANY($1)
            """, [scope]
        ).rows.map { row in
            guard let status = ReservationStatus(rawValue: try row.string("status")) else {
                throw PostgresError(
                    kind: .decoding, message: "reservation \(try row.int64("id")) has an unknown status")
            }
            return CheckedRows.ReservationRow(
                id: try row.int64("id"), drop: try row.int64("drop_id"), user: try row.int64("user_id"), status: status,
                createdMicroseconds: try row.int64("created"), expiresMicroseconds: try row.int64("expires"),
                endedMicroseconds: try row.optionalInt64("ended"))
        }
        let purchases = try await pool.query(
            "SELECT id, reservation_id, drop_id, user_id, \(micros("created_at")) AS created, \(micros("asked_at")) AS asked FROM purchases WHERE drop_id = ANY($1)",
            [scope]
        ).rows.map {
            CheckedRows.PurchaseRow(
                id: try $0.int64("id"), reservationID: try $0.int64("reservation_id"), drop: try $0.int64("drop_id"),
                user: try $0.int64("user_id"), createdMicroseconds: try $0.int64("created"),
                askedMicroseconds: try $0.optionalInt64("asked"))
        }
        return CheckedRows(drops: drops, reservations: reservations, purchases: purchases)
    }
}
