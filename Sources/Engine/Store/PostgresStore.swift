// The source of truth: drops in PostgreSQL, each batch one call of stockdrop_apply_batch in
// one transaction holding the drop's row lock, in one round trip.
import Foundation

public final class PostgresStore: DropStore {
    public let pool: PostgresPool
    public let purchaseGraceMilliseconds: Int

    public init(pool: PostgresPool, purchaseGraceMilliseconds: Int = Defaults.purchaseGraceMilliseconds) {
        self.pool = pool
        self.purchaseGraceMilliseconds = purchaseGraceMilliseconds
    }

    static let dropColumns =
        "id, name, price_cents, total_stock, sold, reserved, starts_at, per_user_limit, reserve_ttl_ms, created_at"

    public func createDrop(_ spec: DropSpec) async throws -> DropRecord {
        let rows = try await write(
            """
            INSERT INTO drops (name, price_cents, total_stock, starts_at, per_user_limit, reserve_ttl_ms)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING \(Self.dropColumns)
            """,
            [
                .text(spec.name), .int64(spec.priceCents), .int32(Int32(spec.totalStock)),
                spec.startsAt.map { .timestamp($0) } ?? .null,
                .int32(Int32(spec.perUserLimit)), .int32(Int32(spec.reserveTTLMilliseconds)),
            ])
        return try Self.drop(rows[0])
    }

    /// A page of drops as one committed state, read under the rows' share locks (see
    /// `committedRead`).
    public func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot] {
        try await Self.reading {
            try await pool.withSession { session in
                try Self.committedRead(session) {
                    let drops = try session.query(
                        "SELECT \(Self.dropColumns) FROM drops WHERE id > $1 ORDER BY id LIMIT $2 FOR SHARE",
                        [.int64(cursor ?? 0), .int32(Int32(clamping: limit))]
                    ).rows.map(Self.drop)
                    let recent = try Self.recentPurchases(of: drops.map(\.id), session)
                    return drops.map { DropSnapshot(drop: $0, recentPurchases: recent[$0.id] ?? []) }
                }
            }
        }
    }

    public func snapshot(of drop: DropID) async throws -> DropSnapshot? {
        try await Self.reading {
            try await pool.withSession { session in
                try Self.committedRead(session) {
                    guard
                        let row = try session.query(
                            "SELECT \(Self.dropColumns) FROM drops WHERE id = $1 FOR SHARE", [.int64(drop)]
                        ).first
                    else {
                        return []
                    }
                    return [
                        DropSnapshot(
                            drop: try Self.drop(row),
                            recentPurchases: try Self.recentPurchases(of: [drop], session)[drop] ?? [])
                    ]
                }.first
            }
        }
    }

    /// Reads drops as the committed state at one instant, stamped with it. The share locks
    /// wait for a batch in flight and keep the next one out until COMMIT (every writer of a
    /// drop's counters, holds and purchases locks its row first), so the figures are those
    /// of every batch stamped before the clock reading that follows, and of none after it:
    /// what the rows' timeline says at that instant.
    private static func committedRead(
        _ session: PostgresSession, _ read: () throws -> [DropSnapshot]
    ) throws
        -> [DropSnapshot]
    {
        try session.transaction(isolation: .readCommitted) {
            var snapshots = try read()
            guard !snapshots.isEmpty else { return snapshots }
            guard let at = try session.query("SELECT clock_timestamp() AS at").first?.date("at") else {
                throw PostgresError(kind: .decoding, message: "clock_timestamp() returned no row")
            }
            for index in snapshots.indices { snapshots[index].committedAt = at }
            return snapshots
        }
    }

    /// One consistent snapshot of the drop. The row lock (FOR SHARE) waits for a batch in
    /// flight and keeps the next one out until COMMIT, and every writer of a drop's holds and
    /// purchases takes that lock first (stockdrop_apply_batch). READ COMMITTED is asked for
    /// rather than left to the server's default: each statement then sees every batch that
    /// committed before the lock was granted (REPEATABLE READ would take its snapshot before
    /// the wait and fail with a serialization error when a batch committed meanwhile).
    public func recover(_ drop: DropID, epoch: Int64?) async throws -> DropRecovery? {
        try await pool.withSession { session in
            try session.transaction(isolation: .readCommitted) {
                guard
                    let row = try session.query(
                        "SELECT \(Self.dropColumns), lease_owner, lease_epoch FROM drops WHERE id = $1 FOR UPDATE",
                        [.int64(drop)]
                    ).first
                else {
                    return nil
                }
                if let epoch {
                    if try row.int64("lease_epoch") != epoch {
                        throw EngineError(
                            .fenced, "the lease of drop \(drop) moved past epoch \(epoch)",
                            owner: try row.optionalString("lease_owner"))
                    }
                    // Under the row lock taken above, so the next epoch is this one's successor.
                    _ = try session.query(
                        "UPDATE drops SET lease_epoch = $2 WHERE id = $1", [.int64(drop), .int64(epoch + 1)])
                }
                var recovery = try Self.recovery(of: Self.drop(row), session)
                recovery.epoch = epoch.map { $0 + 1 }
                return recovery
            }
        }
    }

    /// Under the drop's row lock (FOR UPDATE), so no batch and no other taker interleaves: a
    /// live lease of another instance is left alone; otherwise the lease becomes `owner`'s under
    /// the next epoch and the drop is loaded as it stands at that epoch's start.
    public func acquireLease(on drop: DropID, for owner: LeaseOwner) async throws -> LeaseGrant? {
        try await pool.withSession { session in
            // A live lease of another instance is seen without the row lock, so the instances
            // that ask for a drop they do not own never queue behind its owner's batches.
            let peek = try session.query(
                "SELECT lease_owner, lease_expires_at > clock_timestamp() AS lease_live FROM drops WHERE id = $1",
                [.int64(drop)]
            ).first
            guard let peek else { return nil }
            if let holder = try peek.optionalString("lease_owner"), holder != owner.instance,
                try peek.bool("lease_live")
            {
                return .heldElsewhere(owner: holder)
            }
            return try session.transaction(isolation: .readCommitted) {
                guard
                    let row = try session.query(
                        """
                        SELECT \(Self.dropColumns), lease_owner, lease_expires_at > clock_timestamp() AS lease_live
                        FROM drops WHERE id = $1 FOR UPDATE
                        """, [.int64(drop)]
                    ).first
                else {
                    return nil
                }
                let previous = try row.optionalString("lease_owner")
                if let previous, previous != owner.instance, try row.bool("lease_live") {
                    return .heldElsewhere(owner: previous)
                }
                guard
                    let granted = try session.query(
                        """
                        UPDATE drops SET lease_owner = $2, lease_epoch = lease_epoch + 1, lease_granted_at = clock_timestamp(),
                                         lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond'
                        WHERE id = $1 RETURNING lease_epoch
                        """, [.int64(drop), .text(owner.instance), .int32(Int32(owner.leaseMilliseconds))]
                    ).first
                else {
                    throw PostgresError.decoding("the lease update of drop \(drop) returned no row")
                }
                return .granted(
                    try Self.recovery(of: Self.drop(row), session), epoch: try granted.int64("lease_epoch"),
                    previousOwner: previous == owner.instance ? nil : previous)
            }
        }
    }

    /// One statement for every lease. A drop whose batch is in flight holds its row: it is
    /// skipped rather than waited for (waiting would hold every other renewed row, and the
    /// batches behind them, until that batch commits), and its commit renews it anyway. Rows
    /// are locked in id order, so two renewals never deadlock.
    public func renewLeases(_ epochs: [DropID: Int64], for owner: LeaseOwner) async throws -> LeaseRenewal {
        guard !epochs.isEmpty else { return LeaseRenewal(renewed: [], lost: []) }
        let drops = Array(epochs.keys)
        let rows = try await pool.query(
            """
            WITH wanted AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS l(id, epoch)),
            locked AS (
                SELECT d.id FROM drops d JOIN wanted w ON w.id = d.id
                WHERE d.lease_epoch = w.epoch AND d.lease_owner = $3
                ORDER BY d.id FOR NO KEY UPDATE OF d SKIP LOCKED),
            renewed AS (
                UPDATE drops d SET lease_expires_at = clock_timestamp() + $4 * interval '1 millisecond'
                FROM locked WHERE d.id = locked.id RETURNING d.id)
            SELECT w.id, r.id IS NOT NULL AS renewed,
                   EXISTS (SELECT 1 FROM drops d WHERE d.id = w.id AND d.lease_epoch = w.epoch AND d.lease_owner = $3) AS held
            FROM wanted w LEFT JOIN renewed r ON r.id = w.id
            """,
            [
                .int64Array(drops), .int64Array(drops.map { epochs[$0]! }), .text(owner.instance),
                .int32(Int32(owner.leaseMilliseconds)),
            ])
        var renewal = LeaseRenewal(renewed: [], lost: [])
        for row in rows.rows {
            let drop = try row.int64("id")
            if try row.bool("renewed") {
                renewal.renewed.insert(drop)
            } else if try !row.bool("held") {
                renewal.lost.insert(drop)
            }
        }
        return renewal
    }

    public func releaseLeases(_ epochs: [DropID: Int64], of owner: LeaseOwner) async throws {
        guard !epochs.isEmpty else { return }
        let drops = Array(epochs.keys).sorted()
        try await pool.query(
            """
            UPDATE drops d SET lease_expires_at = clock_timestamp()
            FROM unnest($1::bigint[], $2::bigint[]) AS l(id, epoch)
            WHERE d.id = l.id AND d.lease_epoch = l.epoch AND d.lease_owner = $3 AND d.lease_expires_at > clock_timestamp()
            """, [.int64Array(drops), .int64Array(drops.map { epochs[$0]! }), .text(owner.instance)])
    }

    private static func recovery(of drop: DropRecord, _ session: PostgresSession) throws -> DropRecovery {
        let holds = try session.query(
            """
            SELECT id, drop_id, user_id, status, created_at, expires_at, ended_at FROM reservations
            WHERE drop_id = $1 AND status = 'ACTIVE'
            """, [.int64(drop.id)]
        ).rows.map(Self.reservation)
        let purchases = try session.query(
            """
            SELECT id, reservation_id, drop_id, user_id, price_cents, idempotency_key, created_at
            FROM purchases WHERE drop_id = $1
            """, [.int64(drop.id)]
        ).rows.map(Self.purchase)
        return DropRecovery(drop: drop, activeHolds: holds, purchases: purchases)
    }

    /// One round trip. When it fails, the error says whether the batch may have committed:
    /// the server refusing the statement rolled it back (`batchFailed`), no connection means
    /// nothing was sent (`storeUnavailable`), but a connection lost after sending, or a reply
    /// that cannot be read, leaves it unknown (`outcomeUnknown`).
    public func apply(_ batch: ClaimBatch) async throws -> BatchOutcome {
        try await apply(batch, lockingFirst: nil)
    }

    /// The batch behind a statement of its own that locks the drop's row, so that the store can
    /// say when it holds the lock: both go in one pipeline, one transaction, one round trip.
    public func apply(_ batch: ClaimBatch, locked: @escaping @Sendable () -> Void) async throws -> BatchOutcome {
        try await apply(batch, lockingFirst: locked)
    }

    private static let applyBatchSQL =
        "SELECT ord, code, reservation_id, user_id, purchase_id, created_us, expires_us, ended_us, sold, reserved, price_cents, idempotency_key, lease_holder, total_stock FROM stockdrop_apply_batch($1, $2::integer[], $3, $4, $5, $6, $7, $8, $9)"

    private func apply(_ batch: ClaimBatch, lockingFirst locked: (@Sendable () -> Void)?) async throws -> BatchOutcome {
        let kinds = batch.items.map { Int64($0.batchFunctionKind) }
        let users = batch.items.map(\.userID)
        let keys = batch.items.map { $0.idempotencyKey }
        let lease: [PostgresValue] =
            batch.lease.map { [.int64($0.epoch), .int32(Int32($0.milliseconds))] } ?? [.null, .null]
        let asks = batch.asks
        let asked: [PostgresValue] = [
            .int64Array(asks.users), .int64Array(asks.epochMicroseconds), .int32(Int32(purchaseGraceMilliseconds)),
        ]
        let parameters: [PostgresValue] =
            [.int64(batch.dropID), .int64Array(kinds), .int64Array(users), .textArray(keys)] + lease + asked
        let rows: PostgresRows
        do {
            rows = try await pool.withSession { session in
                guard let locked else { return try Self.sendOnce(session, Self.applyBatchSQL, parameters) }
                return try Self.lockThenApply(session, drop: batch.dropID, parameters, locked: locked)
            }
        } catch let lost as SentStatementLost {
            throw EngineError(.outcomeUnknown, "the batch was sent but its answer was lost: \(lost.underlying)")
        } catch let error as PostgresError where error.kind == .server {
            throw EngineError(.batchFailed, "the database refused the batch; nothing was applied: \(error)")
        } catch let error as PostgresError {
            throw EngineError(.storeUnavailable, "no usable connection to the database; nothing was applied: \(error)")
        }
        do {
            return try Self.outcome(of: batch, rows: rows)
        } catch let refused as EngineError {
            throw refused
        } catch {
            throw EngineError(.outcomeUnknown, "the batch's answer could not be read: \(error)")
        }
    }

    /// One statement, committed on its own. A failure once it has left (the connection lost,
    /// no answer in time) is `SentStatementLost`: it may have committed. A `PostgresError`
    /// means it applied nothing: no connection to send it on, or the server refused it (and
    /// rolled it back).
    private static func sendOnce(
        _ session: PostgresSession, _ sql: String, _ parameters: [PostgresValue]
    ) throws -> PostgresRows {
        do {
            return try session.query(sql, parameters)
        } catch let error as PostgresError where error.kind != .server {
            throw SentStatementLost(underlying: error)
        }
    }

    /// The drop's row lock (the batch function's own `FOR UPDATE` then finds it held), then the
    /// batch, sent together: `locked` is called when the lock's answer arrives, while the batch
    /// runs. Lost after it was sent, the pipeline's commit is unknown, as `sendOnce`'s is.
    private static func lockThenApply(
        _ session: PostgresSession, drop: DropID, _ parameters: [PostgresValue], locked: () -> Void
    ) throws -> PostgresRows {
        do {
            return try session.pipeline(
                [("SELECT 1 FROM drops WHERE id = $1 FOR UPDATE", [.int64(drop)]), (applyBatchSQL, parameters)]
            ) { if $0 == 0 { locked() } }[1]
        } catch let error as PostgresError where error.kind != .server {
            throw SentStatementLost(underlying: error)
        }
    }

    private struct SentStatementLost: Error {
        let underlying: PostgresError
    }

    public func reservations(of user: UserID) async throws -> [Reservation] {
        try await Self.reading {
            try await pool.query(
                """
                SELECT id, drop_id, user_id, status, created_at, expires_at, ended_at FROM reservations
                WHERE user_id = $1 ORDER BY id DESC LIMIT 1000
                """, [.int64(user)]
            ).rows.map(Self.reservation)
        }
    }

    /// One probe of `reservations_by_user` (user, drop).
    public func liveHold(of user: UserID, on drop: DropID) async throws -> Reservation? {
        try await Self.reading {
            try await pool.query(
                """
                SELECT id, drop_id, user_id, status, created_at, expires_at, ended_at FROM reservations
                WHERE user_id = $1 AND drop_id = $2 AND status = 'ACTIVE' ORDER BY id DESC LIMIT 1
                """, [.int64(user), .int64(drop)]
            ).rows.first.map(Self.reservation)
        }
    }

    public func dropsWithOverdueHolds(sweptBy owner: LeaseOwner?) async throws -> [DropID] {
        try await pool.query(
            """
            SELECT d.id FROM drops d
            WHERE (d.lease_owner IS NULL OR d.lease_owner = $1 OR d.lease_expires_at <= clock_timestamp())
              AND EXISTS (SELECT 1 FROM reservations r
                          WHERE r.drop_id = d.id AND r.status = 'ACTIVE'
                            AND r.expires_at <= clock_timestamp() - \(Reservation.graceSQL(alias: "r", cap: "$2")))
            """, [owner.map { .text($0.instance) } ?? .null, .int32(Int32(purchaseGraceMilliseconds))]
        ).rows.map { try $0.int64("id") }
    }

    public func upsertUser(_ user: UserID, name: String, role: String) async throws {
        try await write(
            """
            INSERT INTO users (id, name, role) VALUES ($1, $2, $3)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role
            """, [.int64(user), .text(name), .text(role)])
    }

    /// The store's failures leave the Engine as `EngineError`, saying whether anything was
    /// applied. A read, or a statement the server refused, applied nothing; values the schema
    /// refused (SQLSTATE class 23) are invalid. Writes go through `write`, which also knows
    /// whether the statement left before its connection failed.
    static func reading<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError {
            throw refusal(error)
        }
    }

    /// One write statement in a session of its own: lost after it was sent, its outcome is
    /// unknown (it may have committed); refused, or never sent, it applied nothing.
    @discardableResult
    func write(_ sql: String, _ parameters: [PostgresValue]) async throws -> PostgresRows {
        do {
            return try await pool.withSession { try Self.sendOnce($0, sql, parameters) }
        } catch let lost as SentStatementLost {
            throw EngineError(.outcomeUnknown, "the statement was sent but its answer was lost: \(lost.underlying)")
        } catch let error as PostgresError {
            throw Self.refusal(error)
        }
    }

    private static func refusal(_ error: PostgresError) -> EngineError {
        if error.sqlState?.hasPrefix("23") == true {
            // The message reaches clients (422): the database's own words stay out of it.
            return EngineError(.invalidDrop, "the database refused these values")
        }
        return EngineError(.storeUnavailable, "the database is unavailable or refused the statement: \(error)")
    }

    // MARK: - Decoding

    /// Decodes the function's reply: exactly one result per item, one counters row, swept
    /// holds. Anything else is a malformed reply, never filled in with defaults.
    static func outcome(of batch: ClaimBatch, rows: PostgresRows) throws -> BatchOutcome {
        var results = [ClaimResult?](repeating: nil, count: batch.items.count)
        var expired: [ExpiredHold] = []
        var counters: BatchCounters?
        // The counters row first: a new hold's row leaves its times and price to it.
        for row in rows.rows {
            switch try row.string("code") {
            case "fenced":
                throw EngineError(
                    .fenced, "the lease of drop \(batch.dropID) changed hands; the batch was refused",
                    owner: try row.optionalString("lease_holder"))
            case "leased":
                let owner = try row.optionalString("lease_holder")
                throw EngineError(
                    .leased, "drop \(batch.dropID) is owned by instance \(owner ?? "?"); nothing was applied",
                    owner: owner)
            case "counters":
                guard counters == nil else { throw PostgresError.decoding("the batch reply has two counters rows") }
                counters = BatchCounters(
                    sold: try row.int("sold"), reserved: try row.int("reserved"),
                    committedAt: micros(try row.int64("created_us")),
                    holdsExpireAt: try row.optionalInt64("expires_us").map(micros),
                    totalStock: try row.optionalInt64("total_stock").map { Int($0) })
            default:
                continue
            }
        }
        guard let counters else { throw PostgresError.decoding("the batch reply has no counters row") }
        for row in rows.rows {
            let code = try row.string("code")
            switch code {
            case "counters":
                continue
            case "swept":
                expired.append(
                    ExpiredHold(reservationID: try row.int64("reservation_id"), userID: try row.int64("user_id")))
                continue
            default:
                break
            }
            let ord = try row.int("ord")
            guard ord >= 1, ord <= batch.items.count else {
                throw PostgresError.decoding("batch result for item \(ord) of \(batch.items.count)")
            }
            guard results[ord - 1] == nil else { throw PostgresError.decoding("two batch results for item \(ord)") }
            results[ord - 1] = try result(
                code: code, row: row, item: batch.items[ord - 1], dropID: batch.dropID, counters: counters)
        }
        let decided = results.compactMap { $0 }
        guard decided.count == results.count else {
            throw PostgresError.decoding(
                "batch returned no result for item \((results.firstIndex { $0 == nil } ?? 0) + 1)")
        }
        return BatchOutcome(
            results: decided, expired: expired, sold: counters.sold, reserved: counters.reserved,
            committedAt: counters.committedAt, totalStock: counters.totalStock)
    }

    /// The batch's own figures: its counters after it, its clock reading, and when the holds
    /// it made expire (nil from a reply that made none).
    private struct BatchCounters {
        let sold: Int
        let reserved: Int
        let committedAt: Date
        let holdsExpireAt: Date?
        let totalStock: Int?
    }

    private static func result(
        code: String, row: PostgresRow, item: ClaimItem, dropID: DropID, counters: BatchCounters
    ) throws -> ClaimResult {
        switch code {
        case "reserved":
            guard let expiresAt = counters.holdsExpireAt else {
                throw PostgresError.decoding("a new hold without the batch's expiry")
            }
            return .reserved(
                Reservation(
                    id: try row.int64("reservation_id"), dropID: dropID, userID: item.userID, status: .active,
                    createdAt: counters.committedAt, expiresAt: expiresAt, endedAt: nil))
        case "cancelled":
            return .cancelled(
                Reservation(
                    id: try row.int64("reservation_id"), dropID: dropID, userID: item.userID, status: .cancelled,
                    createdAt: try micros(row.int64("created_us")), expiresAt: try micros(row.int64("expires_us")),
                    endedAt: try micros(row.int64("ended_us"))))
        case "purchased", "replayed":
            return .purchased(
                Purchase(
                    id: try row.int64("purchase_id"), reservationID: try row.int64("reservation_id"), dropID: dropID,
                    userID: item.userID, priceCents: try row.int64("price_cents"),
                    idempotencyKey: try row.optionalString("idempotency_key"),
                    createdAt: try micros(row.int64("created_us"))), replayed: code == "replayed")
        default:
            guard let rejection = RejectionCode(rawValue: code) else {
                throw PostgresError.decoding("unknown batch result code \(code)")
            }
            return .rejected(rejection)
        }
    }

    static func micros(_ value: Int64) -> Date { Date(timeIntervalSince1970: Double(value) / 1_000_000) }

    static func drop(_ row: PostgresRow) throws -> DropRecord {
        DropRecord(
            id: try row.int64("id"),
            spec: DropSpec(
                name: try row.string("name"), priceCents: try row.int64("price_cents"),
                totalStock: try row.int("total_stock"), startsAt: try row.optionalDate("starts_at"),
                perUserLimit: try row.int("per_user_limit"), reserveTTLMilliseconds: try row.int("reserve_ttl_ms")),
            sold: try row.int("sold"), reserved: try row.int("reserved"), createdAt: try row.date("created_at"))
    }

    static func reservation(_ row: PostgresRow) throws -> Reservation {
        guard let status = ReservationStatus(rawValue: try row.string("status")) else {
            throw PostgresError.decoding("unknown reservation status")
        }
        return Reservation(
            id: try row.int64("id"), dropID: try row.int64("drop_id"), userID: try row.int64("user_id"), status: status,
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"),
            endedAt: try row.optionalDate("ended_at"))
    }

    static func purchase(_ row: PostgresRow) throws -> Purchase {
        Purchase(
            id: try row.int64("id"), reservationID: try row.int64("reservation_id"), dropID: try row.int64("drop_id"),
            userID: try row.int64("user_id"), priceCents: try row.int64("price_cents"),
            idempotencyKey: try row.optionalString("idempotency_key"), createdAt: try row.date("created_at"))
    }

    private static func recentPurchases(
        of drops: [DropID], _ session: PostgresSession
    ) throws -> [DropID: [RecentPurchase]] {
        guard !drops.isEmpty else { return [:] }
        let rows = try session.query(
            """
            SELECT d.id AS drop_id, p.id, p.user_id, u.name, p.created_at
            FROM unnest($1::bigint[]) AS d(id)
            CROSS JOIN LATERAL (SELECT * FROM purchases p WHERE p.drop_id = d.id ORDER BY p.id DESC LIMIT \(Defaults.recentPurchases)) p
            LEFT JOIN users u ON u.id = p.user_id
            ORDER BY d.id, p.id DESC
            """, [.int64Array(drops)])
        var recent: [DropID: [RecentPurchase]] = [:]
        for row in rows.rows {
            recent[try row.int64("drop_id"), default: []].append(
                RecentPurchase(
                    purchaseID: try row.int64("id"), userID: try row.int64("user_id"),
                    buyerName: try row.optionalString("name"), createdAt: try row.date("created_at")))
        }
        return recent
    }
}
