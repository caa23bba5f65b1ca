// The gauges that are state rather than events, read before a scrape: queue depth, leases,
// ACTIVE holds and units sold, live sockets and the events they and the relay dropped.
import Engine
import Synchronization

final class GaugeRefresher: Sendable {
    private let inventory: any Inventory
    private let status: any StoreStatus
    private let metrics: ServerMetrics
    private let events: EventHub
    private let relay: RedisRelay?
    private let lastRefresh = Mutex<ContinuousClock.Instant?>(nil)

    init(
        inventory: any Inventory, status: any StoreStatus, metrics: ServerMetrics, events: EventHub, relay: RedisRelay?
    ) {
        self.inventory = inventory
        self.status = status
        self.metrics = metrics
        self.events = events
        self.relay = relay
    }

    /// At most once per `gaugeRefreshMilliseconds` whatever the scrape rate.
    func refresh() async {
        // In memory: every scrape.
        metrics.set(.liveSockets, Double(events.sockets.subscriberCount))
        metrics.advance(.liveFramesDropped, to: Double(events.sockets.droppedFrameCount))
        if let relay { metrics.advance(.relayEventsDropped, to: Double(relay.droppedEvents)) }
        // The standard process figures: a load run charges the server's CPU to its requests.
        let usage = ProcessUsage.now()
        metrics.advance(.processCPU, to: Double(usage.cpuMicroseconds) / 1_000_000)
        metrics.set(.processResidentMemory, Double(usage.residentBytes))
        let now = ContinuousClock.now
        let due = lastRefresh.withLock { last -> Bool in
            if let last, now - last < .milliseconds(ServerDefaults.gaugeRefreshMilliseconds) { return false }
            last = now
            return true
        }
        guard due else { return }
        if let batches = inventory.batches {
            metrics.set(.queuedClaims, Double(await batches.queuedClaims()))
        }
        if let leases = inventory.leases { metrics.record(leases.leaseStatistics()) }
        if let totals = try? await status.stockTotals() {
            metrics.set(.activeReservations, Double(totals.reserved))
            metrics.set(.unitsSold, Double(totals.sold))
        }
    }
}
