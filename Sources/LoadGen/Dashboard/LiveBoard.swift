// The live dashboard's state between the run and the page: every answer goes into a tally,
// every second the run's ticker hands it the progress figures and the database's rows, and it
// publishes a frame (JSON) to each page connected, keeping them all for pages that connect
// later. The end is one more frame with the verdict. One board serves a whole run (its
// strategies one after the other) or one shard.
import Engine
import Foundation
import Synchronization

public final class LiveBoard: Sendable {
    public let scenario: String
    /// `i/n` for a shard, `0/1` for a whole run.
    public let shard: String
    /// At most this many acknowledgements are looked up in one second's read.
    static let lookupsPerSecond = 20_000
    /// Frames kept for pages that connect late: an hour of seconds.
    static let keptFrames = 3_600

    private let state = Mutex(State())

    struct State {
        var strategy = ""
        var plannedUsers = 0
        var drops: [OnlineInvariants.Drop] = []
        var tally = DashboardTally()
        var invariants = OnlineInvariants(drops: [])
        var frames: [String] = []
        /// The last second's frame: the final one keeps its figures.
        var last: DashboardFrame?
        var subscribers: [Int: AsyncStream<String>.Continuation] = [:]
        var nextSubscriber = 0
        var ended = false
        var reportHTML: String?
    }

    public init(scenario: String, shard: String = ShardSpec.whole.description) {
        self.scenario = scenario
        self.shard = shard
    }

    /// A strategy's load starts: its drops (ids as created) and users.
    func begin(strategy: Strategy, drops: [OnlineInvariants.Drop], plannedUsers: Int) {
        state.withLock {
            $0.strategy = strategy.rawValue
            $0.plannedUsers = plannedUsers
            $0.drops = drops
            $0.tally = DashboardTally(drops: drops)
            $0.invariants = OnlineInvariants(drops: drops)
            $0.last = nil
        }
    }

    /// One answer, as its user saw it (called by every virtual user: a lock held for a few
    /// dictionary updates and two histogram records).
    func absorb(_ record: OperationRecord) {
        state.withLock { $0.tally.absorb(record) }
    }

    func takeUnconfirmed() -> (holds: [DashboardTally.Acknowledged], purchases: [DashboardTally.Acknowledged]) {
        state.withLock { $0.tally.takeUnconfirmed(limit: Self.lookupsPerSecond) }
    }

    func giveBack(holds: [DashboardTally.Acknowledged], purchases: [DashboardTally.Acknowledged]) {
        state.withLock { $0.tally.giveBack(holds: holds, purchases: purchases) }
    }

    /// A second of the load: judges what can be judged and publishes the frame. Under the lock
    /// only the judging and a copy of the state (its collections are shared, not copied); the
    /// frame is built and encoded outside it, so answers are not held up behind it.
    func tick(_ tick: ProgressTick, rows: RowFacts?) {
        let (snapshot, second, interval) = state.withLock { state in
            state.invariants.judge(state.tally, rows: rows, atSeconds: tick.elapsedSeconds)
            let interval = tick.elapsedSeconds - (state.last?.elapsedSeconds ?? 0)
            return (state, state.tally.takeSecond(), interval)
        }
        let frame = Self.frame(
            snapshot, tick: tick, second: second, intervalSeconds: interval, scenario: scenario, shard: shard)
        state.withLock { $0.last = frame }
        publish(frame.json, last: false)
    }

    /// The run's end: the report's verdict and its page (which the live page turns into).
    public func finish(_ report: RunReport, reportPath: String) {
        let invariants = report.strategies.flatMap { strategy in
            strategy.invariants.map { invariant in
                DashboardFrame.Invariant(
                    name: report.strategies.count > 1
                        ? "\(strategy.strategy.rawValue): \(invariant.name)" : invariant.name,
                    status: !invariant.checked ? "skipped" : invariant.ok ? "holds" : "broken",
                    counterexample: invariant.ok
                        ? nil : ([invariant.detail] + invariant.counterexamples.prefix(3)).joined(separator: "; "),
                    atSeconds: nil)
            }
        }
        end(
            DashboardFrame.Verdict(
                line: report.verdictLine, pass: report.pass, exitCode: report.exitCode, reportPath: reportPath),
            invariants: invariants, reportHTML: report.html)
    }

    /// A shard's end: its summary; the verdict is the merge's.
    public func finish(shardSummary: String) {
        end(DashboardFrame.Verdict(line: shardSummary), invariants: nil, reportHTML: nil)
    }

    /// A run that failed before its verdict.
    public func finish(failure: String) {
        end(DashboardFrame.Verdict(line: "run failed: \(failure)", pass: false), invariants: nil, reportHTML: nil)
    }

    /// Every frame so far, then each new one as it is published; ends after the final frame.
    public func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .unbounded)
        state.withLock { state in
            for frame in state.frames { continuation.yield(frame) }
            if state.ended {
                continuation.finish()
                return
            }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
            }
        }
        return stream
    }

    /// The run's report page, once it ended with one.
    public var reportHTML: String? { state.withLock { $0.reportHTML } }

    /// Whether the final frame was published.
    public var ended: Bool { state.withLock { $0.ended } }

    /// Frames published so far, oldest first (at most `keptFrames`).
    public var frames: [String] { state.withLock { $0.frames } }

    private func end(_ verdict: DashboardFrame.Verdict, invariants: [DashboardFrame.Invariant]?, reportHTML: String?) {
        let frame = state.withLock { state -> String in
            var frame =
                state.last
                ?? Self.frame(
                    state, tick: nil, second: ([:], [:]), intervalSeconds: 1, scenario: scenario, shard: shard)
            frame.kind = .final
            frame.verdict = verdict
            if let invariants { frame.invariants = invariants }
            frame.reportHTML = reportHTML
            state.reportHTML = reportHTML
            return frame.json
        }
        publish(frame, last: true)
    }

    private func publish(_ frame: String, last: Bool) {
        let subscribers = state.withLock { state -> [AsyncStream<String>.Continuation] in
            guard !state.ended else { return [] }
            state.frames.append(frame)
            if state.frames.count > Self.keptFrames { state.frames.removeFirst(state.frames.count - Self.keptFrames) }
            if last { state.ended = true }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers {
            subscriber.yield(frame)
            if last { subscriber.finish() }
        }
    }

    /// A frame from the state and this second's figures (pure).
    static func frame(
        _ state: State, tick: ProgressTick?,
        second: (counts: [OperationKind: [DashboardTally.Outcome: Int]], latency: [OperationKind: LatencyHistogram]),
        intervalSeconds: Double, scenario: String, shard: String
    ) -> DashboardFrame {
        // The ticker sleeps a second after its reads, so a tick is a little over a second
        // apart: counts are divided by the real interval.
        let perSecond = intervalSeconds > 0.05 ? 1 / intervalSeconds : 1
        func named(
            _ counts: [OperationKind: [DashboardTally.Outcome: Int]], scale: Double = 1
        ) -> [String: [String: Int]] {
            Dictionary(
                uniqueKeysWithValues: OperationKind.allCases.map { operation in
                    (
                        operation.rawValue,
                        Dictionary(
                            uniqueKeysWithValues: DashboardTally.Outcome.allCases.map {
                                ($0.rawValue, Int((Double(counts[operation]?[$0] ?? 0) * scale).rounded()))
                            })
                    )
                })
        }
        func latency(_ histogram: LatencyHistogram?) -> DashboardFrame.Latency? {
            guard let histogram, histogram.totalCount > 0 else { return nil }
            let p = histogram.percentiles
            return DashboardFrame.Latency(p50: p.p50, p99: p.p99, max: p.max)
        }
        func merged(_ histograms: [OperationKind: LatencyHistogram]) -> LatencyHistogram {
            var all = LatencyHistogram()
            for histogram in histograms.values { all.add(histogram) }
            return all
        }
        var windows: [String: DashboardFrame.LatencyWindow] = [
            "all": .init(lastSecond: latency(merged(second.latency)), total: latency(merged(state.tally.totalLatency)))
        ]
        for operation in OperationKind.allCases {
            windows[operation.rawValue] = .init(
                lastSecond: latency(second.latency[operation]), total: latency(state.tally.totalLatency[operation]))
        }
        let counters = Dictionary((tick?.drops ?? []).map { ($0.id, $0) }) { first, _ in first }
        let drops = state.drops.map { drop in
            let read = counters[drop.id]
            return DashboardFrame.Drop(
                id: drop.id, name: drop.name, stock: drop.stock,
                available: read.map { $0.totalStock - $0.sold - $0.reserved }, held: read?.reserved, sold: read?.sold)
        }
        let reading = tick?.counters
        let (holds, purchases) = state.tally.unconfirmedCount
        let errors = state.tally.total.values.reduce(0) { $0 + ($1[.error] ?? 0) }
        return DashboardFrame(
            kind: .tick, scenario: scenario, strategy: state.strategy, shard: shard,
            elapsedSeconds: tick?.elapsedSeconds ?? 0,
            users: .init(
                planned: state.plannedUsers, arrived: reading?.arrived ?? 0, sent: reading?.sent ?? 0,
                lateSends: reading?.late ?? 0),
            requestsPerSecond: named(second.counts, scale: perSecond), requestsTotal: named(state.tally.total),
            latencyMilliseconds: windows, drops: drops, errors: errors, commonestError: reading?.commonestError,
            unconfirmed: holds + purchases,
            invariants: state.invariants.all.map { invariant in
                switch invariant.status {
                case .holds: .init(name: invariant.name, status: "holds")
                case .judgedAtTheEnd: .init(name: invariant.name, status: "judged at the end")
                case .broken(let counterexample, let atSeconds):
                    .init(name: invariant.name, status: "broken", counterexample: counterexample, atSeconds: atSeconds)
                }
            },
            verdict: nil, reportHTML: nil)
    }
}
