// Prometheus metrics through swift-metrics: requests by route and status with latency
// histograms, group-commit batch sizes and commit latency (both strategies commit through
// the store), and gauges read at scrape time (queue depth, ACTIVE holds, units sold). The
// factory is injected, so each app (and each test) has a registry of its own.
import CoreMetrics
import Engine
import Foundation
import Metrics
import Prometheus

public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "stockdrop_http_request_duration_seconds": ServerDefaults.latencyBucketsSeconds.map { .nanoseconds(Int64($0 * 1e9)) },
            "stockdrop_batch_commit_duration_seconds": ServerDefaults.latencyBucketsSeconds.map { .nanoseconds(Int64($0 * 1e9)) },
        ]
        factory.valueHistogramBuckets = ["stockdrop_batch_claims": ServerDefaults.batchSizeBuckets]
        self.factory = factory
    }

    func recordRequest(route: String, method: String, status: Int, nanoseconds: Int64) {
        Counter(label: "stockdrop_http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))], factory: factory).increment()
        Timer(label: "stockdrop_http_request_duration_seconds", dimensions: [("route", route), ("method", method)], factory: factory)
            .recordNanoseconds(nanoseconds)
    }

    func recordBatch(claims: Int, nanoseconds: Int64, failed: Bool) {
        if failed {
            Counter(label: "stockdrop_batch_failures_total", factory: factory).increment()
            return
        }
        Recorder(label: "stockdrop_batch_claims", factory: factory).record(claims)
        Timer(label: "stockdrop_batch_commit_duration_seconds", factory: factory).recordNanoseconds(nanoseconds)
    }

    func set(gauge label: String, _ value: Double) {
        Gauge(label: label, factory: factory).record(value)
    }

    /// The exposition text of every metric in the registry.
    func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
