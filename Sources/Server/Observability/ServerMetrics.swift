// Prometheus metrics, each family named, typed and explained once (`MetricFamily`): requests
// by route and status with latency histograms, group-commit batch sizes and commit latency
// (both strategies commit through the store), and gauges read at scrape time (queue depth,
// ACTIVE holds, units sold). Series are made on the registry directly, not through
// swift-metrics' factory, which registers every family without HELP text. Each app (and each
// test) has a registry of its own.
import Engine
import Foundation
import Prometheus
import Synchronization

public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        shed = registry.makeCounter(descriptor: MetricFamily.httpRequestsShed.descriptor, labels: [])
        // Counters of events that may not happen for hours exist at 0 from the start: one that
        // first appears at 1 hides its first event from increase() and rate(), and a family
        // missing from /metrics reads as a server that does not have it.
        for family in [MetricFamily.batchFailures, .dropsHandedBack, .relayEventsDropped] { _ = counter(family) }
        for result in ServerMetrics.forwardResults { _ = counter(.forwardedClaims, [("result", result)]) }
        for event in ServerMetrics.socketEvents { _ = counter(.liveSocketEvents, [("event", event)]) }
    }

    /// What `recordForward(result:)` and `recordSocket(event:)` count.
    static let forwardResults = ["answered", "unreachable", "unknown", "refused"]
    static let socketEvents = [
        "opened", "closed", "refused_user_limit", "refused_instance_full", "rate_limited", "token_expired",
    ]

    /// Made once: a shed answer costs a few microseconds, and a registry lookup per answer
    /// would be a good part of that.
    private let shed: Prometheus.Counter

    /// A reserve refused 503 `overloaded` at the event loop (`ShedHandler`).
    func recordShed() { shed.increment() }

    /// What the overload monitor measured last: requests in flight and the event loops' worst
    /// lateness, and the in-flight bound it now admits up to.
    func recordLoad(inFlight: Int, loopLagMicroseconds: Int64) {
        set(.httpRequestsInFlight, Double(inFlight))
        set(.eventLoopLag, Double(loopLagMicroseconds) / 1e6)
    }

    func recordShedBound(_ bound: Int) {
        set(.httpInFlightBound, Double(bound))
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
    private struct RequestHandles: Sendable {
        let count: Prometheus.Counter
        let duration: DurationHistogram
    }
    private let requestHandles = Mutex<[RequestKey: RequestHandles]>([:])

    private func makeHandles(_ key: RequestKey) -> RequestHandles {
        let handles = RequestHandles(
            count: counter(
                .httpRequests, [("route", key.route), ("method", key.method), ("status", String(key.status))]),
            duration: registry.makeDurationHistogram(
                descriptor: MetricFamily.httpRequestDuration.descriptor,
                labels: [("route", key.route), ("method", key.method)], buckets: Self.latencyBuckets))
        requestHandles.withLock { $0[key] = handles }
        return handles
    }

    private static let latencyBuckets = ServerDefaults.latencyBucketsSeconds.map {
        Duration.nanoseconds(Int64($0 * 1e9))
    }

    func recordBatch(claims: Int, nanoseconds: Int64, failed: Bool) {
        if failed {
            counter(.batchFailures).increment()
            return
        }
        registry.makeValueHistogram(
            descriptor: MetricFamily.batchClaims.descriptor, buckets: ServerDefaults.batchSizeBuckets
        ).record(Double(claims))
        registry.makeDurationHistogram(
            descriptor: MetricFamily.batchCommitDuration.descriptor, buckets: Self.latencyBuckets
        ).recordNanoseconds(nanoseconds)
    }

    /// The engine's lease counts, as counters, and the owned-drops gauge.
    func record(_ leases: LeaseStatistics) {
        set(.ownedDrops, Double(leases.ownedDrops))
        advance(.leaseTakeovers, to: Double(leases.takeovers))
        advance(.fencedBatches, to: Double(leases.fencedBatches))
        advance(.leasesLost, to: Double(leases.leasesLost))
    }

    /// A claim sent on to its drop's owner, by result: `answered` (the owner's answer was
    /// returned), `unreachable` (nothing was sent), `unknown` (sent, answer lost), `refused`
    /// (a forwarded claim that found no owner here: hop limit).
    func recordForward(result: String) {
        counter(.forwardedClaims, [("result", result)]).increment()
    }

    /// A drop this owner gave to the instance its claims kept coming from.
    func recordHandBack() {
        counter(.dropsHandedBack).increment()
    }

    /// Live sockets by event: `opened`, `closed`, `refused_user_limit`, `refused_instance_full`,
    /// `rate_limited` (an upgrade over a rate budget), `token_expired`.
    func recordSocket(event: String) {
        counter(.liveSocketEvents, [("event", event)]).increment()
    }

    /// The request log's buffer: lines written, and success lines dropped when it was full.
    func recordLogLines(dropped: Int, written: Int) {
        advance(.logLinesDropped, to: Double(dropped))
        advance(.logLinesWritten, to: Double(written))
    }

    func set(_ family: MetricFamily, _ value: Double) {
        precondition(family.kind == .gauge, "\(family.name) is not a gauge")
        registry.makeGauge(descriptor: family.descriptor, labels: []).set(value)
    }

    /// A counter kept elsewhere (a total since the start: CPU seconds, lines written), brought
    /// up to `reading` by what it grew since the last scrape.
    func advance(_ family: MetricFamily, to reading: Double) {
        let grown = lastReadings.withLock { last -> Double in
            defer { last[family.name] = max(reading, last[family.name] ?? 0) }
            return reading - (last[family.name] ?? 0)
        }
        // Made even when nothing grew: a counter that exists at 0 lets rate() see its first event.
        let series = counter(family)
        if grown > 0 { series.increment(by: grown) }
    }
    private let lastReadings = Mutex<[String: Double]>([:])

    private func counter(_ family: MetricFamily, _ labels: [(String, String)] = []) -> Prometheus.Counter {
        precondition(family.kind == .counter, "\(family.name) is not a counter")
        return registry.makeCounter(descriptor: family.descriptor, labels: labels)
    }

    /// The exposition text of every metric in the registry.
    func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
