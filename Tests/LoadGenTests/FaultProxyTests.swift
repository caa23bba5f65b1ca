// The proxy the nemesis pauses: bytes flow through it, stop while it is paused (a statement
// then meets the client's answer deadline), and flow again on resume, including on the
// connections opened during the pause.
import Engine
import Foundation
import LoadGen
import TestSupport
import Testing

@Suite struct FaultProxyTests {
    /// The acquire deadline far below connect_timeout: a waiter must give up while the holder
    /// still tries to connect, even when a loaded machine runs the timers late (a first run in
    /// a fresh clone once saw the holder's connect fail first and hand its slot on).
    static let deadlines = DatabaseDeadlines(
        connectSeconds: 4, statementMilliseconds: 500, answerMilliseconds: 1_000, acquireMilliseconds: 300)

    @Test func aPausedProxyHangsStatementsUntilTheDeadlineAndResumes() async throws {
        let url = try await TestDatabase.fresh("fault_proxy", migrated: false)
        let proxy = try await FaultProxy.start(upstream: .unixSocket(try TestDatabase.socketPath(of: url)))
        let proxied = try TestDatabase.url(url, throughPort: proxy.port)
        let connection = try await PostgresConnection.connect(proxied, deadlines: Self.deadlines)
        #expect(try await connection.query("SELECT 1 AS one").first?.int("one") == 1)

        proxy.pause()
        let started = ContinuousClock.now
        let hung = await #expect(throws: PostgresError.self) { try await connection.query("SELECT 2 AS two") }
        #expect(hung?.kind == .timeout)
        #expect(started.duration(to: .now) >= .milliseconds(900))
        #expect(await connection.isHealthy == false)
        // A connect during the pause gives up after connect_timeout.
        await #expect(throws: PostgresError.self) {
            try await PostgresConnection.connect(proxied, deadlines: Self.deadlines)
        }
        // A pooled caller waits at most the acquire deadline for a connection in use.
        let pool = PostgresPool(url: proxied, size: 1, deadlines: Self.deadlines)
        async let holder: Void = { _ = try? await pool.query("SELECT pg_sleep(0)") }()
        try await Task.sleep(for: .milliseconds(100))
        let waitStarted = ContinuousClock.now
        let waited = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 3") }
        #expect(waited?.kind == .timeout)
        #expect(waitStarted.duration(to: .now) < .seconds(5))
        await holder

        proxy.resume()
        let fresh = try await PostgresConnection.connect(proxied, deadlines: Self.deadlines)
        #expect(try await fresh.query("SELECT 4 AS four").first?.int("four") == 4)
        #expect(try await pool.query("SELECT 5 AS five").first?.int("five") == 5)
        await fresh.close()
        await connection.close()
        await pool.close()
        await proxy.stop()
    }
}
