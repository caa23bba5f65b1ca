// The gauges that are state rather than events, read before a scrape: queue depth, leases,
// ACTIVE holds and units sold, live sockets and the events they and the relay dropped.
import Engine
import Synchronization

final class GaugeRefresher: Sendable {
    private let inventory: any Inventory
    private let pool: PostgresPool
    private let metrics: ServerMetrics
    private let events: EventHub
    private let relay: RedisRelay?
    private let lastRefresh = Mutex<ContinuousClock.Instant?>(nil)

    init(inventory: any Inventory, pool: PostgresPool, metrics: ServerMetrics, events: EventHub, relay: RedisRelay?) {
        self.inventory = inventory
        self.pool = pool
        self.metrics = metrics
        self.events = events
        self.relay = relay
    }

    /// At most once per `gaugeRefreshMilliseconds` whatever the scrape rate.
    func refresh() async {
        // In memory: every scrape.
        metrics.set(gauge: "stockdrop_live_sockets", Double(events.subscriberCount))
        metrics.set(gauge: "stockdrop_live_frames_dropped", Double(events.droppedFrameCount))
        if let relay { metrics.set(gauge: "stockdrop_relay_events_dropped", Double(relay.droppedEvents)) }
        // The standard process figures: a load run charges the server's CPU to its requests.
        let usage = ProcessUsage.now()
        metrics.set(gauge: "process_cpu_seconds_total", Double(usage.cpuMicroseconds) / 1_000_000)
        metrics.set(gauge: "process_resident_memory_bytes", Double(usage.residentBytes))
        let now = ContinuousClock.now
        let due = lastRefresh.withLock { last -> Bool in
            if let last, now - last < .milliseconds(ServerDefaults.gaugeRefreshMilliseconds) { return false }
            last = now
            return true
        }
        guard due else { return }
        if let engine = inventory as? ActorEngine {
            metrics.set(gauge: "stockdrop_queued_claims", Double(await engine.queuedClaims()))
            metrics.record(engine.leaseStatistics())
        }
        if let rows = try? await pool.query(
            "SELECT coalesce(sum(reserved), 0) AS reserved, coalesce(sum(sold), 0) AS sold FROM drops"),
            let row = rows.first
        {
            metrics.set(gauge: "stockdrop_active_reservations", Double((try? row.int64("reserved")) ?? 0))
            metrics.set(gauge: "stockdrop_units_sold", Double((try? row.int64("sold")) ?? 0))
        }
    }
}
