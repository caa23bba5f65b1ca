// The libpq wrapper against a real PostgreSQL: types round-trip, errors carry SQLSTATE,
// blocking calls stay off Swift's cooperative threads, and the pool keeps its size.
import Engine
import Foundation
import TestSupport
import Testing

@Suite("libpq wrapper") struct PostgresConnectionTests {
    @Test func roundTripsEveryColumnTypeTheSchemaUses() async throws {
        let url = try await TestDatabase.fresh("wrapper_types", migrated: false)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let moment = Date(timeIntervalSince1970: 1_795_000_000.123456)
        let text = "Air Max '86 \"quoted\" \\ back ✓ 🚀"
        let row = try #require(
            try await connection.query(
                """
                SELECT $1::bigint AS big, $2::integer AS int, $3::text AS text, $4::boolean AS yes,
                       $5::timestamptz AS at, $6::bytea AS raw, $7::bigint[] AS ids, $8::float8 AS ratio,
                       $9::text AS missing, $10::bigint[] AS none, $11::text[] AS names, $12::boolean AS no,
                       $13::bigint AS negative
                """,
                [
                    .int64(Int64.max), .int32(-42), .text(text), .bool(true),
                    .timestamp(moment), .bytes([0, 1, 254, 255]), .int64Array([1, -2, Int64.min]), .double(0.25),
                    .null, .int64Array([]), .textArray(["a,b", "c\"d", "e\\f"]), .bool(false),
                    .int64(-7),
                ]
            ).first)
        #expect(try row.int64("big") == Int64.max)
        #expect(try row.int("int") == -42)
        #expect(try row.string("text") == text)
        #expect(try row.bool("yes") == true)
        #expect(try row.bool("no") == false)
        #expect(try abs(row.date("at").timeIntervalSince(moment)) < 0.000_001)
        #expect(try row.bytes("raw") == [0, 1, 254, 255])
        #expect(try row.int64Array("ids") == [1, -2, Int64.min])
        #expect(try row.double("ratio") == 0.25)
        #expect(try row.isNull("missing"))
        #expect(try row.optionalDate("missing") == nil)
        #expect(try row.int64Array("none") == [])
        #expect(try row.int64("negative") == -7)
        let names = try await connection.query(
            "SELECT unnest($1::text[]) AS name", [.textArray(["a,b", "c\"d", "e\\f"])])
        #expect(try names.rows.map { try $0.string("name") } == ["a,b", "c\"d", "e\\f"])
    }

    @Test func roundTripsTheSchemasTables() async throws {
        let url = try await TestDatabase.fresh("wrapper_tables")
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let startsAt = Date(timeIntervalSince1970: 1_800_000_000.5)
        let drop = try #require(
            try await connection.query(
                """
                INSERT INTO drops (name, price_cents, total_stock, starts_at, per_user_limit, reserve_ttl_ms)
                VALUES ($1, $2, $3, $4, $5, $6)
                RETURNING id, name, price_cents, total_stock, sold, reserved, starts_at, per_user_limit, reserve_ttl_ms, created_at
                """, [.text("Jordan 1"), .int64(15_000), .int32(3), .timestamp(startsAt), .int32(2), .int32(2_000)]
            ).first)
        #expect(try drop.string("name") == "Jordan 1")
        #expect(try drop.int64("price_cents") == 15_000)
        #expect(try drop.int("total_stock") == 3)
        #expect(try drop.int("sold") == 0)
        #expect(try drop.date("starts_at") == startsAt)
        #expect(try drop.int("per_user_limit") == 2)
        #expect(try drop.int("reserve_ttl_ms") == 2_000)
        #expect(try abs(drop.date("created_at").timeIntervalSinceNow) < 60)
        let reservation = try #require(
            try await connection.query(
                """
                INSERT INTO reservations (drop_id, user_id, status, expires_at) VALUES ($1, $2, 'ACTIVE', now() + interval '1 minute')
                RETURNING id, status, ended_at
                """, [.int64(try drop.int64("id")), .int64(77)]
            ).first)
        #expect(try reservation.string("status") == "ACTIVE")
        #expect(try reservation.optionalDate("ended_at") == nil)
    }

    /// Every connection has bounded waits unless its URL says otherwise.
    @Test func connectionsGetBoundedWaitsAndTheURLWins() async throws {
        let url = try await TestDatabase.fresh("connection_defaults", migrated: false)
        let connection = try await PostgresConnection.connect(url)
        #expect(try await connection.query("SHOW statement_timeout").first?.string("statement_timeout") == "30s")
        #expect(
            try await connection.query("SHOW idle_in_transaction_session_timeout").first?
                .string("idle_in_transaction_session_timeout") == "1min")
        await connection.close()
        let own = try await PostgresConnection.connect(url + "&options=-c%20statement_timeout%3D5000")
        #expect(try await own.query("SHOW statement_timeout").first?.string("statement_timeout") == "5s")
        await own.close()
    }

    @Test func errorsCarrySQLStateAndMessage() async throws {
        let url = try await TestDatabase.fresh("wrapper_errors", migrated: false)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        let syntax = await #expect(throws: PostgresError.self) { try await connection.query("SELEC 1") }
        #expect(syntax?.sqlState == "42601")
        #expect(syntax?.kind == .server)
        let division = await #expect(throws: PostgresError.self) {
            try await connection.query("SELECT 1 / $1::integer", [.int32(0)])
        }
        #expect(division?.sqlState == "22012")
        #expect(division?.message.contains("division by zero") == true)
        // The connection stays usable after a statement error.
        #expect(try await connection.query("SELECT 1 AS one").first?.int("one") == 1)
        let refused = await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect("postgresql://postgres@/nope?host=/nonexistent-dir")
        }
        #expect(refused?.isConnectionFailure == true)
    }

    @Test func transactionsRollBackOnError() async throws {
        let url = try await TestDatabase.fresh("wrapper_transactions", migrated: false)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        try await connection.execute("CREATE TABLE t (v integer PRIMARY KEY)")
        await #expect(throws: PostgresError.self) {
            try await connection.withSession { session in
                try session.transaction {
                    try session.query("INSERT INTO t VALUES (1)")
                    try session.query("INSERT INTO t VALUES (1)")
                }
            }
        }
        #expect(try await connection.query("SELECT count(*) AS n FROM t").first?.int("n") == 0)
        try await connection.withSession { session in
            try session.transaction { try session.query("INSERT INTO t VALUES (2)") }
        }
        #expect(try await connection.query("SELECT count(*) AS n FROM t").first?.int("n") == 1)
    }

    @Test func aPipelineIsOneTransactionAnsweredStatementByStatement() async throws {
        let url = try await TestDatabase.fresh("wrapper_pipeline", migrated: false)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        try await connection.execute("CREATE TABLE t (v integer PRIMARY KEY)")
        let (rows, completed) = try await connection.withSession { session in
            var completed: [Int] = []
            let rows = try session.pipeline(
                [("INSERT INTO t VALUES ($1) RETURNING v", [.int32(1)]), ("SELECT count(*) AS n FROM t", [])]
            ) { completed.append($0) }
            return (rows, completed)
        }
        #expect(completed == [0, 1])
        #expect(try rows[0].first?.int("v") == 1)
        #expect(try rows[1].first?.int("n") == 1, "the second statement sees the first: one transaction")
        // A refusal of the second statement takes the first with it, and the session goes on.
        let refused = await #expect(throws: PostgresError.self) {
            try await connection.withSession { session in
                try session.pipeline([("INSERT INTO t VALUES (2)", []), ("INSERT INTO t VALUES (1)", [])]) { _ in }
            }
        }
        #expect(refused?.sqlState == "23505")
        #expect(try await connection.query("SELECT count(*) AS n FROM t").first?.int("n") == 1)
    }

    /// libpq blocks; if it ran on the cooperative pool (2 threads here), 20 sleeping queries
    /// would hold both threads and no other task could take a step until they returned.
    /// Judged by order, not by timing (the machine is shared): other tasks must finish 20
    /// steps while every query is still asleep (with libpq on the pool, two queries would end
    /// first). The queries sleep 15 s: with 3 s, then 8 s, other tests that blocked the pool
    /// themselves (a child process waited for, a file lock, a polling sleep; all moved off it
    /// since) delayed the 20 steps past the queries' end.
    @Test func blockingQueriesNeverStallTheCooperativePool() async throws {
        let url = try await TestDatabase.fresh("wrapper_blocking", migrated: false)
        var opened: [PostgresConnection] = []
        for _ in 0..<20 { opened.append(try await PostgresConnection.connect(url)) }
        let connections = opened
        let finished = TickCounter()
        let queries = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for connection in connections {
                    group.addTask {
                        try await connection.query("SELECT pg_sleep(15)")
                        await finished.tick()
                    }
                }
                try await group.waitForAll()
            }
        }
        // Every query is on its connection's thread before the steps start.
        try await Task.sleep(for: .milliseconds(200))
        for _ in 0..<20 { await Task { await Task.yield() }.value }
        let finishedDuringSteps = await finished.count
        try await queries.value
        for connection in connections { await connection.close() }
        #expect(finishedDuringSteps == 0, "other tasks waited for \(finishedDuringSteps) blocking queries to return")
    }

    @Test func poolNeverExceedsItsSizeAndReplacesBrokenConnections() async throws {
        let url = try await TestDatabase.fresh("wrapper_pool", migrated: false)
        let pool = PostgresPool(url: url, size: 4)
        let gauge = ConcurrencyGauge()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    try await pool.withConnection { connection in
                        await gauge.enter()
                        try await connection.query("SELECT pg_sleep(0.01)")
                        await gauge.leave()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(await gauge.peak <= 4)
        #expect(await gauge.peak >= 2)
        // Kill every backend of the pool; the next leases must get working connections.
        try await pool.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for _ in 0..<12 {
            _ = try? await pool.query("SELECT 1")
        }
        #expect(try await pool.query("SELECT 1 AS one").first?.int("one") == 1)
        await pool.close()
    }
}

actor TickCounter {
    private(set) var count = 0
    func tick() { count += 1 }
}

actor ConcurrencyGauge {
    private var current = 0
    private(set) var peak = 0
    func enter() {
        current += 1
        peak = max(peak, current)
    }
    func leave() { current -= 1 }
}
