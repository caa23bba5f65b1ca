// The engine as a long-lived service: it owns the database pool and the inventory of the
// chosen strategy, answers readiness, and on graceful shutdown (after the HTTP server has
// stopped accepting and answered its requests) lets batches in flight commit, then closes.
import Engine
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

public final class EngineHost: Service {
    public let inventory: any Inventory
    public let strategy: Strategy
    let pool: PostgresPool
    let store: any DropStore
    let metrics: ServerMetrics
    private let knownBuyers = Mutex<Set<UserID>>([])
    private let lastGaugeRefresh = Mutex<ContinuousClock.Instant?>(nil)
    private let logger: Logger

    public let events: EventHub
    /// The Redis relay when REDIS_URL is set (its status shows in /ready).
    public var relay: RedisRelay? {
        get { relayBox.withLock { $0 } }
        set { relayBox.withLock { $0 = newValue } }
    }
    private let relayBox = Mutex<RedisRelay?>(nil)

    public init(configuration: ServerConfiguration, metrics: ServerMetrics, logger: Logger) {
        events = EventHub(stockEventsPerSecond: configuration.stockEventsPerSecond)
        strategy = configuration.strategy
        pool = PostgresPool(url: configuration.databaseURL, size: configuration.poolSize)
        store = InstrumentedStore(base: PostgresStore(pool: pool), metrics: metrics, events: events)
        inventory = configuration.strategy == .actor ? ActorEngine(store: store) : RowLockEngine(store: store)
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        logger.info("engine draining: committing batches in flight")
        await inventory.shutdown()
        await pool.close()
        logger.info("engine stopped")
    }

    /// Records a buyer's display name for the purchase feed, once per buyer while the set is
    /// small (it is forgotten past `knownBuyersLimit`). A failure costs the feed a name, never
    /// the purchase, which has committed.
    func rememberBuyer(_ caller: Caller, logger: Logger) async {
        let isNew = knownBuyers.withLock { known in
            if known.count >= ServerDefaults.knownBuyersLimit { known.removeAll(keepingCapacity: true) }
            return known.insert(caller.userID).inserted
        }
        guard isNew else { return }
        do {
            try await store.upsertUser(caller.userID, name: caller.name, role: caller.role.rawValue)
        } catch {
            knownBuyers.withLock { _ = $0.remove(caller.userID) }
            logger.warning("buyer name not recorded", metadata: ["user": "\(caller.userID)", "error": "\(error)"])
        }
    }

    struct Readiness: Sendable {
        var databaseReachable: Bool
        var schemaVersion: Int?
        var problem: String?
        var ready: Bool { databaseReachable && schemaVersion == Migrations.latestVersion }
    }

    /// Every open drop as a live snapshot, the first message on a socket (at most the first
    /// `maxPageLimit` × 10 drops).
    func liveSnapshot() async -> LiveEvent? {
        var drops: [DropResponse] = []
        var cursor: DropID?
        for _ in 0..<10 {
            guard let page = try? await inventory.listDrops(after: cursor, limit: ServerDefaults.maxPageLimit) else { return nil }
            drops += page.map(DropResponse.init)
            guard page.count == ServerDefaults.maxPageLimit, let last = page.last else { break }
            cursor = last.drop.id
        }
        var event = LiveEvent(type: .snapshot)
        event.drops = drops
        event.committedAt = APITime.string(Date())
        return event
    }

    /// Database reachable and migrations current, within a bound so a probe never hangs. At
    /// most one readiness query is in flight: probes that arrive meanwhile wait for it, so a
    /// hung database and a busy load balancer cannot pile queries into the pool.
    func readiness() async -> Readiness {
        let pool = self.pool
        let query = readinessQuery.withLock { current -> Task<Readiness, Never> in
            if let current { return current }
            let task = Task { await Self.queryReadiness(pool) }
            current = task
            return task
        }
        Task {
            _ = await query.value
            self.readinessQuery.withLock { if $0 == query { $0 = nil } }
        }
        let timedOut = Readiness(databaseReachable: false, schemaVersion: nil,
                                 problem: "the database did not answer within \(ServerDefaults.readinessTimeoutMilliseconds) ms")
        return await firstOf(timeout: .milliseconds(ServerDefaults.readinessTimeoutMilliseconds), orElse: timedOut) { await query.value }
    }

    private let readinessQuery = Mutex<Task<Readiness, Never>?>(nil)

    private static func queryReadiness(_ pool: PostgresPool) async -> Readiness {
        do {
            let rows = try await pool.query("SELECT coalesce(max(version), 0) AS version FROM schema_migrations")
            let version = try rows.first?.int("version") ?? 0
            return Readiness(databaseReachable: true, schemaVersion: version,
                             problem: version == Migrations.latestVersion ? nil : "schema version \(version), expected \(Migrations.latestVersion)")
        } catch {
            return Readiness(databaseReachable: false, schemaVersion: nil, problem: "\(error)")
        }
    }

    /// Reads the gauges that are state rather than events before a scrape, at most once per
    /// `gaugeRefreshMilliseconds` whatever the scrape rate.
    func refreshGauges() async {
        let now = ContinuousClock.now
        let due = lastGaugeRefresh.withLock { last -> Bool in
            if let last, now - last < .milliseconds(ServerDefaults.gaugeRefreshMilliseconds) { return false }
            last = now
            return true
        }
        guard due else { return }
        if let engine = inventory as? ActorEngine {
            metrics.set(gauge: "stockdrop_queued_claims", Double(await engine.queuedClaims()))
        }
        if let rows = try? await pool.query("SELECT coalesce(sum(reserved), 0) AS reserved, coalesce(sum(sold), 0) AS sold FROM drops"),
           let row = rows.first {
            metrics.set(gauge: "stockdrop_active_reservations", Double((try? row.int64("reserved")) ?? 0))
            metrics.set(gauge: "stockdrop_units_sold", Double((try? row.int64("sold")) ?? 0))
        }
    }
}
