// Prometheus metrics through swift-metrics: requests by route and status with latency
// histograms, group-commit batch sizes and commit latency (both strategies commit through
// the store), and gauges read at scrape time (queue depth, ACTIVE holds, units sold). The
// factory is injected, so each app (and each test) has a registry of its own.
import CoreMetrics
import Engine
import Foundation
import Metrics
import Prometheus
import Synchronization

public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "stockdrop_http_request_duration_seconds": ServerDefaults.latencyBucketsSeconds.map {
                .nanoseconds(Int64($0 * 1e9))
            },
            "stockdrop_batch_commit_duration_seconds": ServerDefaults.latencyBucketsSeconds.map {
                .nanoseconds(Int64($0 * 1e9))
            },
        ]
        factory.valueHistogramBuckets = ["stockdrop_batch_claims": ServerDefaults.batchSizeBuckets]
        self.factory = factory
        shed = Counter(label: "stockdrop_http_requests_shed_total", factory: factory)
    }

    /// Made once: a shed answer costs a few microseconds, and a registry lookup per answer
    /// would be a good part of that.
    private let shed: CoreMetrics.Counter

    /// A reserve refused 503 `overloaded` at the event loop (`ShedHandler`).
    func recordShed() { shed.increment() }

    /// What the overload monitor measured last: requests in flight and the event loops' worst
    /// lateness, and the in-flight bound it now admits up to.
    func recordLoad(inFlight: Int, loopLagMicroseconds: Int64) {
        set(gauge: "stockdrop_http_requests_in_flight", Double(inFlight))
        set(gauge: "stockdrop_event_loop_lag_seconds", Double(loopLagMicroseconds) / 1e6)
    }

    func recordShedBound(_ bound: Int) {
        set(gauge: "stockdrop_http_in_flight_bound", Double(bound))
    }

    func recordRequest(route: String, method: String, status: Int, nanoseconds: Int64) {
        let key = RequestKey(route: route, method: method, status: status)
        let handles = requestHandles.withLock { $0[key] } ?? makeHandles(key)
        handles.count.increment()
        handles.duration.recordNanoseconds(nanoseconds)
    }

    /// Metric handles per (route, method, status), made once: building them per request
    /// (labels, registry lookup) was measurable at 20k req/s. Routes are templates and
    /// unmatched paths share one label, so the map stays small.
    private struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }
    private struct RequestHandles: @unchecked Sendable {
        let count: CoreMetrics.Counter
        let duration: CoreMetrics.Timer
    }
    private let requestHandles = Mutex<[RequestKey: RequestHandles]>([:])

    private func makeHandles(_ key: RequestKey) -> RequestHandles {
        let handles = RequestHandles(
            count: Counter(
                label: "stockdrop_http_requests_total",
                dimensions: [("route", key.route), ("method", key.method), ("status", String(key.status))],
                factory: factory),
            duration: Timer(
                label: "stockdrop_http_request_duration_seconds",
                dimensions: [("route", key.route), ("method", key.method)], factory: factory))
        requestHandles.withLock { $0[key] = handles }
        return handles
    }

    func recordBatch(claims: Int, nanoseconds: Int64, failed: Bool) {
        if failed {
            Counter(label: "stockdrop_batch_failures_total", factory: factory).increment()
            return
        }
        Recorder(label: "stockdrop_batch_claims", factory: factory).record(claims)
        Timer(label: "stockdrop_batch_commit_duration_seconds", factory: factory).recordNanoseconds(nanoseconds)
    }

    /// The engine's lease counts, as Prometheus counters (incremented by what grew since the
    /// last scrape) and the owned-drops gauge.
    func record(_ leases: LeaseStatistics) {
        let previous = lastLeases.withLock { last in
            defer { last = leases }
            return last
        }
        set(gauge: "stockdrop_owned_drops", Double(leases.ownedDrops))
        for (label, current, before) in [
            ("stockdrop_lease_takeovers_total", leases.takeovers, previous.takeovers),
            ("stockdrop_fenced_batches_total", leases.fencedBatches, previous.fencedBatches),
            ("stockdrop_leases_lost_total", leases.leasesLost, previous.leasesLost),
        ] {
            Counter(label: label, factory: factory).increment(by: Int64(max(0, current - before)))
        }
    }
    private let lastLeases = Mutex(LeaseStatistics())

    /// A claim sent on to its drop's owner, by result: `answered` (the owner's answer was
    /// returned), `unreachable` (nothing was sent), `unknown` (sent, answer lost), `refused`
    /// (a forwarded claim that found no owner here: hop limit).
    func recordForward(result: String) {
        Counter(label: "stockdrop_forwarded_claims_total", dimensions: [("result", result)], factory: factory)
            .increment()
    }

    /// A drop this owner gave to the instance its claims kept coming from.
    func recordHandBack() {
        Counter(label: "stockdrop_drops_handed_back_total", factory: factory).increment()
    }

    /// Live sockets by event: `opened`, `closed`, `refused_user_limit`, `refused_instance_full`,
    /// `rate_limited` (an upgrade over a rate budget), `token_expired`.
    func recordSocket(event: String) {
        Counter(label: "stockdrop_live_sockets_total", dimensions: [("event", event)], factory: factory).increment()
    }

    func set(gauge label: String, _ value: Double) {
        Gauge(label: label, factory: factory).record(value)
    }

    /// The exposition text of every metric in the registry.
    /// The request log's buffer: lines written, and success lines dropped when it was full.
    func recordLogLines(dropped: Int, written: Int) {
        Gauge(label: "stockdrop_log_lines_dropped", factory: factory).record(dropped)
        Gauge(label: "stockdrop_log_lines_written", factory: factory).record(written)
    }

    func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
