// What a run sends to Prometheus: pure builders from what the run already has. While it goes,
// each progress tick's live counters; at the end, the report's own figures (requests by
// operation and outcome exactly as the report counts them, latency percentiles, units, and
// the verdict of every invariant and threshold as 0/1). Every series carries `run_id`,
// `scenario`, `strategy` and `shard`.
import Foundation

public enum RunSeries {
    public struct Identity: Sendable {
        public var runID: String
        public var scenario: String
        /// `i/n` for a shard, `0/1` for a whole run.
        public var shard: String

        public init(runID: String, scenario: String, shard: String) {
            self.runID = runID
            self.scenario = scenario
            self.shard = shard
        }

        func labels(_ strategy: String, _ more: [String: String] = [:]) -> [String: String] {
            ["run_id": runID, "scenario": scenario, "strategy": strategy, "shard": shard].merging(more) { $1 }
        }
    }

    typealias Kind = RemoteWriteRequest.Metadata.Kind

    /// Each family sent, with its type and HELP (sent as remote-write metadata).
    static let families: [String: (Kind, String)] = [
        "stockdrop_run_users_arrived_total": (.counter, "Virtual users that have sent their first request."),
        "stockdrop_run_requests_sent_total": (.counter, "Requests the harness has sent."),
        "stockdrop_run_answers_total": (.counter, "Requests answered so far, by outcome: ok, rejected, shed, error."),
        "stockdrop_run_late_sends_total": (.counter, "Sends the harness held back past 10 ms of their intended time."),
        "stockdrop_run_units_available": (
            .gauge, "Units neither held nor sold over the run's drops, read from the database."
        ),
        "stockdrop_run_latency_last_second_p99_seconds": (
            .gauge, "The last second's p99 latency, from the intended send and from the actual send."
        ),
        "stockdrop_run_elapsed_seconds": (.gauge, "Seconds since the run's schedule started."),
        "stockdrop_run_requests_total": (
            .counter,
            "The run's requests by operation and outcome (ok, rejected, shed, error), as its report counts them."
        ),
        "stockdrop_run_latency_seconds": (
            .gauge,
            "Latency from the intended send by operation, at quantiles 0.5, 0.9, 0.99, 0.999 and 1 (the maximum)."
        ),
        "stockdrop_run_units": (.gauge, "Units over the run's drops by state: total, sold, unsold, oversold."),
        "stockdrop_run_invariant_ok": (.gauge, "1 when the invariant held over the whole run, 0 when it broke."),
        "stockdrop_run_threshold_ok": (.gauge, "1 when the scenario's threshold was met, 0 when it was missed."),
        "stockdrop_run_pass": (.gauge, "1 when the run's verdict passed (exit 0), else 0."),
    ]

    static var metadata: [RemoteWriteRequest.Metadata] {
        families.sorted { $0.key < $1.key }.map { .init(family: $0.key, kind: $0.value.0, help: $0.value.1) }
    }

    /// A progress tick's figures.
    public static func live(
        _ tick: ProgressTick, strategy: String, identity: Identity, atMilliseconds: Int64
    ) -> RemoteWriteRequest {
        let c = tick.counters
        func series(_ name: String, _ value: Double, _ more: [String: String] = [:]) -> RemoteWriteRequest.Series {
            .init(
                name: name, labels: identity.labels(strategy, more), value: value, timestampMilliseconds: atMilliseconds
            )
        }
        var all = [
            series("stockdrop_run_users_arrived_total", Double(c.arrived)),
            series("stockdrop_run_requests_sent_total", Double(c.sent)),
            series("stockdrop_run_answers_total", Double(c.ok), ["outcome": "ok"]),
            series("stockdrop_run_answers_total", Double(c.rejected), ["outcome": "rejected"]),
            series("stockdrop_run_answers_total", Double(c.shed), ["outcome": "shed"]),
            series("stockdrop_run_answers_total", Double(c.errors), ["outcome": "error"]),
            series("stockdrop_run_late_sends_total", Double(c.late)),
            series("stockdrop_run_elapsed_seconds", tick.elapsedSeconds),
        ]
        if let available = tick.availableStock {
            all.append(series("stockdrop_run_units_available", Double(available)))
        }
        if let p99 = tick.lastSecondP99 {
            all.append(
                series("stockdrop_run_latency_last_second_p99_seconds", p99.fromIntended / 1e3, ["from": "intended"]))
            all.append(series("stockdrop_run_latency_last_second_p99_seconds", p99.fromSend / 1e3, ["from": "send"]))
        }
        return RemoteWriteRequest(series: all, metadata: metadata)
    }

    /// The report's figures, one set per strategy.
    public static func final(_ report: RunReport, identity: Identity, atMilliseconds: Int64) -> RemoteWriteRequest {
        var all: [RemoteWriteRequest.Series] = []
        for strategy in report.strategies {
            let name = strategy.strategy.rawValue
            func add(_ metric: String, _ value: Double, _ more: [String: String] = [:]) {
                all.append(
                    .init(
                        name: metric, labels: identity.labels(name, more), value: value,
                        timestampMilliseconds: atMilliseconds))
            }
            for (operation, stats) in strategy.operations.sorted(by: { $0.key < $1.key }) {
                let rejected = stats.rejected.values.reduce(0, +)
                for (outcome, count) in [
                    ("ok", stats.ok), ("rejected", rejected), ("shed", stats.shed), ("error", stats.errors),
                ] {
                    add("stockdrop_run_requests_total", Double(count), ["operation": operation, "outcome": outcome])
                }
                let latency = stats.latencyMilliseconds
                for (quantile, milliseconds) in [
                    ("0.5", latency.p50), ("0.9", latency.p90), ("0.99", latency.p99), ("0.999", latency.p999),
                    ("1", latency.max),
                ] {
                    add(
                        "stockdrop_run_latency_seconds", milliseconds / 1e3,
                        ["operation": operation, "quantile": quantile])
                }
            }
            for (state, units) in [
                ("total", strategy.stock.total), ("sold", strategy.stock.sold), ("unsold", strategy.stock.unsold),
                ("oversold", strategy.stock.oversold),
            ] {
                add("stockdrop_run_units", Double(units), ["state": state])
            }
            add("stockdrop_run_late_sends_total", Double(strategy.users.lateSends))
            for invariant in strategy.invariants where invariant.checked {
                add("stockdrop_run_invariant_ok", invariant.ok ? 1 : 0, ["invariant": invariant.name])
            }
            for threshold in strategy.thresholds {
                add("stockdrop_run_threshold_ok", threshold.ok ? 1 : 0, ["threshold": threshold.expression])
            }
            add("stockdrop_run_pass", report.pass ? 1 : 0)
        }
        return RemoteWriteRequest(series: all, metadata: metadata)
    }
}
