// The database refuses what must never happen, whatever code above it does.
import Engine
import Foundation
import TestSupport
import Testing

@Suite("schema") struct SchemaTests {
    @Test func migrationsAppliedTwiceChangeNothing() async throws {
        let url = try await TestDatabase.fresh("schema_idempotent", migrated: false)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        #expect(try await Migrator.currentVersion(connection) == 0)
        let first = try await Migrator.migrate(connection)
        #expect(first == Migrations.all.map(\.version))
        let shape = try await schemaShape(connection)
        let second = try await Migrator.migrate(connection)
        #expect(second.isEmpty)
        #expect(try await schemaShape(connection) == shape)
        #expect(try await Migrator.currentVersion(connection) == Migrations.latestVersion)
        let rows = try await connection.query("SELECT count(*) AS n FROM schema_migrations")
        #expect(try rows.first?.int("n") == Migrations.all.count)
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
        let url = try await TestDatabase.fresh("schema_concurrent", migrated: false)
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    let connection = try await PostgresConnection.connect(url)
                    let versions = try await Migrator.migrate(connection)
                    await connection.close()
                    return versions
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(applied.sorted() == Migrations.all.map(\.version))
    }

    @Test func databaseRefusesOversellAndBrokenRules() async throws {
        let url = try await TestDatabase.fresh("schema_refusals")
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let dropID = try #require(
            try await connection.query(
                "INSERT INTO drops (name, price_cents, total_stock) VALUES ('Last pair', 100, 1) RETURNING id"
            ).first
        ).int64("id")

        // Counters past total stock.
        let oversell = await #expect(throws: PostgresError.self) {
            try await connection.query("UPDATE drops SET sold = 1, reserved = 1 WHERE id = $1", [.int64(dropID)])
        }
        #expect(oversell?.sqlState == "23514")
        #expect(oversell?.constraint == "drops_no_oversell")
        let negative = await #expect(throws: PostgresError.self) {
            try await connection.query("UPDATE drops SET reserved = -1 WHERE id = $1", [.int64(dropID)])
        }
        #expect(negative?.sqlState == "23514")
        let negativeStock = await #expect(throws: PostgresError.self) {
            try await connection.query("INSERT INTO drops (name, price_cents, total_stock) VALUES ('x', 1, -5)")
        }
        #expect(negativeStock?.sqlState == "23514")

        // A second ACTIVE reservation for one user on one drop.
        let insertHold =
            "INSERT INTO reservations (drop_id, user_id, status, expires_at) VALUES ($1, 7, 'ACTIVE', now() + interval '1 minute') RETURNING id"
        let reservationID = try #require(try await connection.query(insertHold, [.int64(dropID)]).first).int64("id")
        let secondHold = await #expect(throws: PostgresError.self) {
            try await connection.query(insertHold, [.int64(dropID)])
        }
        #expect(secondHold?.sqlState == "23505")
        #expect(secondHold?.constraint == "reservations_one_active_per_user")

        // A second purchase for one reservation.
        let insertPurchase =
            "INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents) VALUES ($1, $2, 7, 100)"
        try await connection.query(insertPurchase, [.int64(reservationID), .int64(dropID)])
        let secondPurchase = await #expect(throws: PostgresError.self) {
            try await connection.query(insertPurchase, [.int64(reservationID), .int64(dropID)])
        }
        #expect(secondPurchase?.sqlState == "23505")
        #expect(secondPurchase?.constraint == "purchases_one_per_reservation")

        // An unknown status, and a final status without an end time.
        let unknownStatus = await #expect(throws: PostgresError.self) {
            try await connection.query(
                "UPDATE reservations SET status = 'HELD', ended_at = now() WHERE id = $1", [.int64(reservationID)])
        }
        #expect(unknownStatus?.sqlState == "23514")
        #expect(unknownStatus?.constraint == "reservations_status_known")
        let endless = await #expect(throws: PostgresError.self) {
            try await connection.query(
                "UPDATE reservations SET status = 'EXPIRED' WHERE id = $1", [.int64(reservationID)])
        }
        #expect(endless?.constraint == "reservations_ended_iff_final")

        // Foreign keys: no hold on a drop that does not exist, no purchase of a missing hold.
        let orphanHold = await #expect(throws: PostgresError.self) {
            try await connection.query(insertHold, [.int64(dropID + 1000)])
        }
        #expect(orphanHold?.sqlState == "23503")
        let deleteDrop = await #expect(throws: PostgresError.self) {
            try await connection.query("DELETE FROM drops WHERE id = $1", [.int64(dropID)])
        }
        #expect(deleteDrop?.sqlState == "23503")
        let moveHold = await #expect(throws: PostgresError.self) {
            try await connection.query(
                "UPDATE reservations SET drop_id = drop_id + 1000 WHERE id = $1", [.int64(reservationID)])
        }
        #expect(moveHold?.sqlState == "23503")
        let orphanPurchase = await #expect(throws: PostgresError.self) {
            try await connection.query(insertPurchase, [.int64(reservationID + 1000), .int64(dropID)])
        }
        #expect(orphanPurchase?.sqlState == "23503")
    }

    /// Tables, columns, constraints and indexes, as one comparable text.
    private func schemaShape(_ connection: PostgresConnection) async throws -> [String] {
        let rows = try await connection.query(
            """
            SELECT table_name || '.' || column_name || ':' || data_type AS item FROM information_schema.columns WHERE table_schema = 'public'
            UNION ALL SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
            UNION ALL SELECT indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public'
            ORDER BY 1
            """)
        return try rows.rows.map { try $0.string("item") }
    }
}
