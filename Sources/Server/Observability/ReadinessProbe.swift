// What `/ready` answers: the database reachable and its migrations current, within a bound so
// a load balancer's probe never hangs.
import Engine
import Synchronization

final class ReadinessProbe: Sendable {
    struct Readiness: Sendable {
        var databaseReachable: Bool
        var schemaVersion: Int?
        var problem: String?
        var ready: Bool { databaseReachable && schemaVersion == Migrations.latestVersion }
    }

    private let pool: PostgresPool
    private let inFlight = Mutex<Task<Readiness, Never>?>(nil)

    init(pool: PostgresPool) {
        self.pool = pool
    }

    /// At most one readiness query is in flight: probes that arrive meanwhile wait for it, so
    /// a hung database and a busy load balancer cannot pile queries into the pool.
    func check() async -> Readiness {
        let pool = self.pool
        let query = inFlight.withLock { current -> Task<Readiness, Never> in
            if let current { return current }
            let task = Task { await Self.query(pool) }
            current = task
            return task
        }
        Task {
            _ = await query.value
            self.inFlight.withLock { if $0 == query { $0 = nil } }
        }
        let timedOut = Readiness(
            databaseReachable: false, schemaVersion: nil,
            problem: "the database did not answer within \(ServerDefaults.readinessTimeoutMilliseconds) ms")
        return await firstOf(timeout: .milliseconds(ServerDefaults.readinessTimeoutMilliseconds), orElse: timedOut) {
            await query.value
        }
    }

    private static func query(_ pool: PostgresPool) async -> Readiness {
        do {
            let rows = try await pool.query("SELECT coalesce(max(version), 0) AS version FROM schema_migrations")
            let version = try rows.first?.int("version") ?? 0
            return Readiness(
                databaseReachable: true, schemaVersion: version,
                problem: version == Migrations.latestVersion
                    ? nil : "schema version \(version), expected \(Migrations.latestVersion)")
        } catch {
            // /ready is public: the database's own words (socket paths, server text) are not.
            return Readiness(databaseReachable: false, schemaVersion: nil, problem: "the database did not answer")
        }
    }
}
