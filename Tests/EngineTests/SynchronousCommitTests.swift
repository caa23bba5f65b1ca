// With synchronous replication, a commit cancelled while it waits for its standby (a cancel
// request, an administrator's shutdown) is committed on the primary and reported as a success
// with only a WARNING: an acknowledgement built on it is lost at the next failover. Planted
// here on a PostgreSQL of its own whose synchronous standby never comes
// (`synchronous_standby_names = 'nobody'`): a commit waits until another session cancels it
// (pg_cancel_backend, what PQcancel or a client's cancel does). The wrapper must call it in
// doubt and the store `outcome_unknown`. (statement_timeout never fires there: PostgreSQL
// disables it before the commit; the client's own deadline drops the connection, which was
// already in doubt.) A read-only database (a standby a failover left behind) is refused by the
// migrator and reported by the store.
import Engine
import Foundation
import TestSupport
import Testing

@Suite(.serialized) struct SynchronousCommitTests {
    /// A cluster of its own (the shared one must keep committing): commits wait for a standby
    /// named `nobody` only in the test database, where synchronous_commit is on.
    static let waitingForAStandby = Task { () throws -> String in
        // One directory that every run reuses (the cluster stays up between runs, as the
        // shared test cluster does), not a new PostgreSQL per run.
        let directory = NSTemporaryDirectory() + "stockdrop-syncrep-tests"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let embedded = try EmbeddedPostgres(checkout: directory)
        try await embedded.start()
        let admin = try await PostgresConnection.connect(embedded.url(database: "postgres"))
        try await admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
        try await admin.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
        try await admin.query("SELECT pg_reload_conf()")
        await admin.close()
        let url = try await embedded.freshDatabase("syncrep")
        let connection = try await PostgresConnection.connect(url)
        try await Migrator.migrate(connection)
        try await connection.execute("ALTER DATABASE syncrep SET synchronous_commit = on")
        await connection.close()
        return url
    }

    /// Cancels every session of the database that waits for its synchronous standby, until
    /// stopped: what a client's cancel request does to a commit in that wait.
    static func cancellingWaits(_ url: String) -> Task<Int, any Error> {
        Task {
            let canceller = try await PostgresConnection.connect(url)
            defer { Task { await canceller.close() } }
            try await canceller.execute("SET synchronous_commit = local")
            var cancelled = 0
            while !Task.isCancelled {
                cancelled += try await canceller.query(
                    "SELECT pg_cancel_backend(pid) AS done FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = current_database()"
                ).count
                try? await Task.sleep(for: .milliseconds(20))
            }
            return cancelled
        }
    }

    /// A drop made without waiting for the standby (synchronous_commit local for this session).
    static func drop(named name: String, on url: String) async throws -> DropID {
        let setup = try await PostgresConnection.connect(url)
        defer { Task { await setup.close() } }
        try await setup.execute("SET synchronous_commit = local")
        return try #require(
            try await setup.query(
                """
                INSERT INTO drops (name, price_cents, total_stock, per_user_limit, reserve_ttl_ms)
                VALUES ($1, 100, 5, 1, 60000) RETURNING id
                """, [.text(name)]
            ).first?.int64("id"))
    }

    @Test func aCommitCancelledWhileWaitingForItsStandbyIsInDoubt() async throws {
        let url = try await Self.waitingForAStandby.value
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let canceller = Self.cancellingWaits(url)
        let error = await #expect(throws: PostgresError.self) {
            try await connection.query("INSERT INTO users (id, name, role) VALUES (4242, 'in doubt', 'user')")
        }
        canceller.cancel()
        #expect(try await canceller.value >= 1)
        #expect(error?.kind == .inDoubt, "\(String(describing: error))")
        #expect(await !connection.isHealthy, "the connection is dropped with its suspect standby link")
        // It committed here: exactly why it may not be called a failure either.
        let reader = try await PostgresConnection.connect(url)
        defer { Task { await reader.close() } }
        #expect(try await reader.query("SELECT count(*) AS n FROM users WHERE id = 4242").first?.int("n") == 1)
    }

    /// Told by severity and SQLSTATE, which the server never translates, whatever its
    /// lc_messages; the English words too. Errors and notices with the same code are not it.
    @Test func theWarningIsToldByItsCodeInAnyLanguage() {
        #expect(
            PostgresSession.isUnreplicatedCommit(
                severity: "WARNING", sqlState: "57014",
                message: "storniere Warten auf synchrone Replikation wegen Benutzeraufforderung"))
        #expect(
            PostgresSession.isUnreplicatedCommit(
                severity: "WARNING", sqlState: "57P01",
                message:
                    "canceling the wait for synchronous replication and terminating connection due to administrator command"
            ))
        #expect(
            PostgresSession.isUnreplicatedCommit(
                severity: "WARNING", sqlState: nil,
                message: "canceling wait for synchronous replication due to user request"))
        #expect(
            !PostgresSession.isUnreplicatedCommit(
                severity: "ERROR", sqlState: "57014", message: "canceling statement due to statement timeout"))
        #expect(
            !PostgresSession.isUnreplicatedCommit(severity: "NOTICE", sqlState: "00000", message: "relation exists"))
    }

    @Test func theStoreCallsSuchABatchOutcomeUnknown() async throws {
        let url = try await Self.waitingForAStandby.value
        let drop = try await Self.drop(named: "in doubt", on: url)

        let pool = PostgresPool(url: url, size: 1)
        let canceller = Self.cancellingWaits(url)
        let error = await #expect(throws: EngineError.self) {
            try await PostgresStore(pool: pool).apply(ClaimBatch(dropID: drop, items: [ClaimItem(.reserve, user: 7)]))
        }
        canceller.cancel()
        _ = try await canceller.value
        await pool.close()
        #expect(error?.code == .outcomeUnknown, "\(String(describing: error))")
        // The hold is in the database: an answer of "nothing applied" would have been false.
        let reader = try await PostgresConnection.connect(url)
        defer { Task { await reader.close() } }
        #expect(
            try await reader.query(
                "SELECT count(*) AS n FROM reservations WHERE drop_id = $1 AND user_id = 7", [.int64(drop)]
            ).first?.int("n") == 1)
    }

    /// Leases across a failover: an engine trusts a lease only from its grant's answer, so a
    /// grant whose commit stopped waiting for the standby (committed here, perhaps on no
    /// standby, so perhaps gone after a promotion) must not come back as a grant. It fails
    /// instead, and the engine answers nothing from memory under it; the row it left names this
    /// instance, which only delays another instance until the lease runs out.
    @Test func aLeaseGrantThatStoppedWaitingForItsStandbyIsNeverTrusted() async throws {
        let url = try await Self.waitingForAStandby.value
        let drop = try await Self.drop(named: "lease in doubt", on: url)

        let pool = PostgresPool(url: url, size: 1)
        let canceller = Self.cancellingWaits(url)
        let owner = LeaseOwner(instance: "s1~doubt")
        await #expect(throws: (any Error).self, "a grant in doubt is no grant") {
            _ = try await PostgresStore(pool: pool).acquireLease(on: drop, for: owner)
        }
        canceller.cancel()
        #expect(try await canceller.value >= 1)
        await pool.close()
        let reader = try await PostgresConnection.connect(url)
        defer { Task { await reader.close() } }
        // Committed on this node all the same: exactly the grant a promotion may take away.
        #expect(
            try await reader.query("SELECT lease_owner FROM drops WHERE id = $1", [.int64(drop)]).first?.string(
                "lease_owner") == owner.instance)
    }

    @Test func aReadOnlyDatabaseIsRefusedByTheMigratorAndReportedByTheStore() async throws {
        let url = try await TestDatabase.fresh("read_only")
        let admin = try await PostgresConnection.connect(url)
        try await admin.execute("ALTER DATABASE test_read_only SET default_transaction_read_only = on")
        await admin.close()
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let refusal = await #expect(throws: PostgresError.self) { try await Migrator.migrate(connection) }
        #expect(refusal?.message.contains("read-only") == true)
        #expect(refusal?.message.contains("target_session_attrs=read-write") == true)
        let pool = PostgresPool(url: url, size: 1)
        #expect(try await PostgresStore(pool: pool).readiness().acceptsWrites == false)
        await pool.close()
        let writable = PostgresPool(url: try await TestDatabase.fresh("read_write"), size: 1)
        #expect(try await PostgresStore(pool: writable).readiness().acceptsWrites == true)
        await writable.close()
    }
}
