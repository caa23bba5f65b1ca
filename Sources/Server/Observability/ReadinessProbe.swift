// What `/ready` answers: the database reachable, taking writes (a primary, not a standby a
// failover left behind) and its migrations current, within a bound so a load balancer's probe
// never hangs.
import Engine
import Synchronization

final class ReadinessProbe: Sendable {
    struct Readiness: Sendable {
        var databaseReachable: Bool
        var schemaVersion: Int?
        var problem: String?
        var acceptsWrites = true
        var ready: Bool { databaseReachable && acceptsWrites && schemaVersion == Migrations.latestVersion }
    }

    private let status: any StoreStatus
    private let inFlight = Mutex<Task<Readiness, Never>?>(nil)

    init(status: any StoreStatus) {
        self.status = status
    }

    /// At most one readiness query is in flight: probes that arrive meanwhile wait for it, so
    /// a hung database and a busy load balancer cannot pile queries into the pool.
    func check() async -> Readiness {
        let status = self.status
        let query = inFlight.withLock { current -> Task<Readiness, Never> in
            if let current { return current }
            let task = Task { await Self.query(status) }
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

    private static func query(_ status: any StoreStatus) async -> Readiness {
        do {
            let store = try await status.readiness()
            let version = store.schemaVersion
            guard store.acceptsWrites else {
                return Readiness(
                    databaseReachable: true, schemaVersion: version,
                    problem: "the database is read-only (a standby, not the primary)", acceptsWrites: false)
            }
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
