// The source of truth: drops in PostgreSQL, each batch one call of stockdrop_apply_batch
// (one round trip, one transaction holding the drop's row lock).
import Foundation

public final class PostgresStore: DropStore {
    public let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    static let dropColumns = "id, name, price_cents, total_stock, sold, reserved, starts_at, per_user_limit, reserve_ttl_ms, created_at"

    public func createDrop(_ spec: DropSpec) async throws -> DropRecord {
        let rows = try await pool.query("""
            INSERT INTO drops (name, price_cents, total_stock, starts_at, per_user_limit, reserve_ttl_ms)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING \(Self.dropColumns)
            """, [
                .text(spec.name), .int64(spec.priceCents), .int32(Int32(spec.totalStock)),
                spec.startsAt.map { .timestamp($0) } ?? .null,
                .int32(Int32(spec.perUserLimit)), .int32(Int32(spec.reserveTTLMilliseconds)),
            ])
        return try Self.drop(rows[0])
    }

    public func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot] {
        try await pool.withSession { session in
            let drops = try session.query(
                "SELECT \(Self.dropColumns) FROM drops WHERE id > $1 ORDER BY id LIMIT $2",
                [.int64(cursor ?? 0), .int32(Int32(clamping: limit))]
            ).rows.map(Self.drop)
            let recent = try Self.recentPurchases(of: drops.map(\.id), session)
            return drops.map { DropSnapshot(drop: $0, recentPurchases: recent[$0.id] ?? []) }
        }
    }

    public func snapshot(of drop: DropID) async throws -> DropSnapshot? {
        try await pool.withSession { session in
            guard let row = try session.query("SELECT \(Self.dropColumns) FROM drops WHERE id = $1", [.int64(drop)]).first else {
                return nil
            }
            let record = try Self.drop(row)
            return DropSnapshot(drop: record, recentPurchases: try Self.recentPurchases(of: [drop], session)[drop] ?? [])
        }
    }

    /// One consistent snapshot of the drop. The row lock (FOR SHARE) waits for a batch in
    /// flight and keeps the next one out until COMMIT, and every writer of a drop's holds and
    /// purchases takes that lock first (stockdrop_apply_batch). READ COMMITTED is asked for
    /// rather than left to the server's default: each statement then sees every batch that
    /// committed before the lock was granted (REPEATABLE READ would take its snapshot before
    /// the wait and fail with a serialization error when a batch committed meanwhile).
    public func recover(_ drop: DropID) async throws -> DropRecovery? {
        try await pool.withSession { session in
            try session.transaction(isolation: .readCommitted) {
                guard
                    let row = try session.query(
                        "SELECT \(Self.dropColumns) FROM drops WHERE id = $1 FOR SHARE", [.int64(drop)]
                    ).first
                else {
                    return nil
                }
                let holds = try session.query("""
                    SELECT id, drop_id, user_id, status, created_at, expires_at, ended_at FROM reservations
                    WHERE drop_id = $1 AND status = 'ACTIVE'
                    """, [.int64(drop)]).rows.map(Self.reservation)
                let purchases = try session.query("""
                    SELECT id, reservation_id, drop_id, user_id, price_cents, idempotency_key, created_at
                    FROM purchases WHERE drop_id = $1
                    """, [.int64(drop)]).rows.map(Self.purchase)
                return DropRecovery(drop: try Self.drop(row), activeHolds: holds, purchases: purchases)
            }
        }
    }

    /// One round trip. When it fails, the error says whether the batch may have committed:
    /// the server refusing the statement rolled it back (`batchFailed`), no connection means
    /// nothing was sent (`storeUnavailable`), but a connection lost after sending, or a reply
    /// that cannot be read, leaves it unknown (`outcomeUnknown`).
    public func apply(_ batch: ClaimBatch) async throws -> BatchOutcome {
        let kinds = batch.items.map { Int64($0.kind.rawValue) }
        let users = batch.items.map(\.userID)
        let keys = batch.items.map { $0.idempotencyKey }
        let rows: PostgresRows
        do {
            rows = try await pool.withSession { session in
                do {
                    return try session.query(
                        "SELECT ord, code, reservation_id, user_id, purchase_id, created_us, expires_us, ended_us, sold, reserved, price_cents, idempotency_key FROM stockdrop_apply_batch($1, $2::integer[], $3, $4)",
                        [.int64(batch.dropID), .int64Array(kinds), .int64Array(users), .textArray(keys)])
                } catch let error as PostgresError where error.kind != .server {
                    throw SentBatchLost(underlying: error)
                }
            }
        } catch let lost as SentBatchLost {
            throw EngineError(.outcomeUnknown, "the batch was sent but its answer was lost: \(lost.underlying)")
        } catch let error as PostgresError where error.kind == .server {
            throw EngineError(.batchFailed, "the database refused the batch; nothing was applied: \(error)")
        } catch let error as PostgresError {
            throw EngineError(.storeUnavailable, "no connection to the database; nothing was sent: \(error)")
        }
        do {
            return try Self.outcome(of: batch, rows: rows)
        } catch {
            throw EngineError(.outcomeUnknown, "the batch's answer could not be read: \(error)")
        }
    }

    private struct SentBatchLost: Error {
        let underlying: PostgresError
    }

    public func reservations(of user: UserID) async throws -> [Reservation] {
        try await pool.query("""
            SELECT id, drop_id, user_id, status, created_at, expires_at, ended_at FROM reservations
            WHERE user_id = $1 ORDER BY id DESC LIMIT 1000
            """, [.int64(user)]).rows.map(Self.reservation)
    }

    public func dropsWithOverdueHolds() async throws -> [DropID] {
        try await pool.query(
            "SELECT DISTINCT drop_id FROM reservations WHERE status = 'ACTIVE' AND expires_at <= clock_timestamp()"
        ).rows.map { try $0.int64("drop_id") }
    }

    public func upsertUser(_ user: UserID, name: String, role: String) async throws {
        try await pool.query("""
            INSERT INTO users (id, name, role) VALUES ($1, $2, $3)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role
            """, [.int64(user), .text(name), .text(role)])
    }

    // MARK: - Decoding

    /// Decodes the function's reply: exactly one result per item, one counters row, swept
    /// holds. Anything else is a malformed reply, never filled in with defaults.
    static func outcome(of batch: ClaimBatch, rows: PostgresRows) throws -> BatchOutcome {
        var results = [ClaimResult?](repeating: nil, count: batch.items.count)
        var expired: [ExpiredHold] = []
        var counters: (sold: Int, reserved: Int, committedAt: Date)?
        for row in rows.rows {
            let ord = try row.int("ord")
            let code = try row.string("code")
            switch code {
            case "counters":
                guard counters == nil else { throw PostgresError.decoding("the batch reply has two counters rows") }
                counters = (try row.int("sold"), try row.int("reserved"), micros(try row.int64("created_us")))
                continue
            case "swept":
                expired.append(ExpiredHold(reservationID: try row.int64("reservation_id"), userID: try row.int64("user_id")))
                continue
            default:
                break
            }
            guard ord >= 1, ord <= batch.items.count else {
                throw PostgresError.decoding("batch result for item \(ord) of \(batch.items.count)")
            }
            guard results[ord - 1] == nil else { throw PostgresError.decoding("two batch results for item \(ord)") }
            results[ord - 1] = try result(code: code, row: row, item: batch.items[ord - 1], dropID: batch.dropID)
        }
        guard let counters else { throw PostgresError.decoding("the batch reply has no counters row") }
        let decided = results.compactMap { $0 }
        guard decided.count == results.count else {
            throw PostgresError.decoding(
                "batch returned no result for item \((results.firstIndex { $0 == nil } ?? 0) + 1)")
        }
        return BatchOutcome(results: decided, expired: expired, sold: counters.sold, reserved: counters.reserved,
                            committedAt: counters.committedAt)
    }

    private static func result(code: String, row: PostgresRow, item: ClaimItem, dropID: DropID) throws -> ClaimResult {
        switch code {
        case "reserved", "cancelled":
            let created = try micros(row.int64("created_us"))
            let reservation = Reservation(
                id: try row.int64("reservation_id"), dropID: dropID, userID: item.userID,
                status: code == "reserved" ? .active : .cancelled, createdAt: created,
                expiresAt: try micros(row.int64("expires_us")), endedAt: code == "reserved" ? nil : try micros(row.int64("ended_us")))
            return code == "reserved" ? .reserved(reservation) : .cancelled(reservation)
        case "purchased", "replayed":
            return .purchased(Purchase(
                id: try row.int64("purchase_id"), reservationID: try row.int64("reservation_id"), dropID: dropID,
                userID: item.userID, priceCents: try row.int64("price_cents"), idempotencyKey: try row.optionalString("idempotency_key"),
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
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"), endedAt: try row.optionalDate("ended_at"))
    }

    static func purchase(_ row: PostgresRow) throws -> Purchase {
        Purchase(
            id: try row.int64("id"), reservationID: try row.int64("reservation_id"), dropID: try row.int64("drop_id"),
            userID: try row.int64("user_id"), priceCents: try row.int64("price_cents"),
            idempotencyKey: try row.optionalString("idempotency_key"), createdAt: try row.date("created_at"))
    }

    private static func recentPurchases(of drops: [DropID], _ session: PostgresSession) throws -> [DropID: [RecentPurchase]] {
        guard !drops.isEmpty else { return [:] }
        let rows = try session.query("""
            SELECT d.id AS drop_id, p.id, p.user_id, u.name, p.created_at
            FROM unnest($1::bigint[]) AS d(id)
            CROSS JOIN LATERAL (SELECT * FROM purchases p WHERE p.drop_id = d.id ORDER BY p.id DESC LIMIT 3) p
            LEFT JOIN users u ON u.id = p.user_id
            ORDER BY d.id, p.id DESC
            """, [.int64Array(drops)])
        var recent: [DropID: [RecentPurchase]] = [:]
        for row in rows.rows {
            recent[try row.int64("drop_id"), default: []].append(RecentPurchase(
                purchaseID: try row.int64("id"), userID: try row.int64("user_id"),
                buyerName: try row.optionalString("name"), createdAt: try row.date("created_at")))
        }
        return recent
    }
}
