// Applies the migrations that a database lacks, each in its own transaction, under an
// advisory lock so that two processes starting together do not race to apply the same one.
public enum Migrator {
    /// Arbitrary but fixed: the advisory lock key that serializes migrators.
    static let advisoryLockKey: Int64 = 0x5354_4F43_4B44_524F  // "STOCKDRO"

    /// Applies what is missing and returns the versions applied now (empty when current).
    @discardableResult
    public static func migrate(
        _ connection: PostgresConnection, migrations: [Migration] = Migrations.all
    ) async throws -> [Int] {
        try await connection.withSession { session in
            try session.execute("SET client_min_messages = warning")
            // A standby (or a read-only session) would refuse the first write with a message
            // that does not say why; say it before anything else.
            if try session.query("SELECT current_setting('transaction_read_only') AS read_only").first?.string(
                "read_only") == "on"
            {
                throw PostgresError(
                    kind: .server, sqlState: "25006",
                    message:
                        "the database is read-only (a standby?): stockdrop needs the primary; point DATABASE_URL at it, at a balancer that follows it, or at several hosts with target_session_attrs=read-write"
                )
            }
            try session.query("SELECT pg_advisory_lock($1)", [.int64(advisoryLockKey)])
            defer { _ = try? session.query("SELECT pg_advisory_unlock($1)", [.int64(advisoryLockKey)]) }
            try session.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """)
            let applied = Set(
                try session.query("SELECT version FROM schema_migrations").rows.map { try $0.int("version") })
            var appliedNow: [Int] = []
            for migration in migrations.sorted(by: { $0.version < $1.version })
            where !applied.contains(migration.version) {
                try session.transaction {
                    try session.execute(migration.sql)
                    try session.query(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        [.int32(Int32(migration.version)), .text(migration.name)])
                }
                appliedNow.append(migration.version)
            }
            return appliedNow
        }
    }

    /// The highest applied version, or 0 for a database never migrated.
    public static func currentVersion(_ connection: PostgresConnection) async throws -> Int {
        try await connection.withSession { session in
            let exists = try session.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
            guard try exists.first?.bool("present") == true else { return 0 }
            return try session.query("SELECT coalesce(max(version), 0) AS version FROM schema_migrations").first?.int(
                "version") ?? 0
        }
    }
}
