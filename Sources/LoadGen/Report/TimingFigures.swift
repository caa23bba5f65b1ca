// Where each request's time went, so the report can tell the harness's time from the server's:
//
//   intended ─(harness: its scheduler late, a wait for a free connection)─► ready to go
//            ─(set-up: opening a connection, when none was free)─► sent
//            ─(network and server: the server's socket queue, then its own handling)─► answered
//
// Latency thresholds judge intended → answered (what a buyer felt; no coordinated omission).
// When the harness itself held a server target's requests back (more than 1% of them past
// 10 ms, or its threads had no CPU to spare) the run is "harness-limited": its figures are the harness's as much as
// the server's, and a latency threshold that only the harness's delay made fail is marked so.
import Foundation

public struct TimingFigures: Sendable, Codable, Equatable {
    /// sent − intended − set-up, over every request: the harness's own delay.
    public var harnessDelayMilliseconds: LatencyPercentiles
    /// Requests the harness held more than `LoadDefaults.lateSendMilliseconds`.
    public var lateSends: Int
    /// Requests that waited for a free connection at the bound, and how long they waited.
    public var connectionWaits: Int
    public var connectionWaitMilliseconds: LatencyPercentiles
    /// Requests that opened the connection they went out on, and how long opening took.
    public var connects: Int
    public var connectMilliseconds: LatencyPercentiles
    public var connections: ConnectionFigures?
    /// Per operation, each way of measuring it.
    public var operations: [String: OperationTiming]
    /// The harness process's CPU while the users ran (in process: the engine's too).
    public var harnessCPUMicroseconds: Int64?
    public var harnessCPUMicrosecondsPerRequest: Double?
    /// The CPU of the threads that drove the users ÷ (load time × their number): near 1, the
    /// harness had no CPU to spare (server targets only: in process, harness and engine share
    /// the threads).
    public var harnessCPUShare: Double?
    public var harnessLimited: Bool
    /// What made it so, with the figures.
    public var harnessLimitedBecause: [String]

    public struct OperationTiming: Sendable, Codable, Equatable {
        /// intended → answered: what the thresholds judge.
        public var fromIntendedMilliseconds: LatencyPercentiles
        /// sent → answered: the network and the server only.
        public var fromSendMilliseconds: LatencyPercentiles
        /// intended → answered less the harness's own delay (set-up included): what a buyer
        /// would have felt from a harness that never fell behind.
        public var withoutHarnessDelayMilliseconds: LatencyPercentiles
        /// The server's own histogram (its /metrics), when the target is a server.
        public var server: ServerLatency?
    }

    /// Share of requests the harness may hold late before the run is called harness-limited.
    static let lateShareLimit = 0.01
    /// A harness whose threads were busier than this had no CPU to spare.
    static let cpuShareLimit = 0.9

    init(_ run: StrategyResult, records: [OperationRecord]) {
        let lateMicroseconds = Int64(LoadDefaults.lateSendMilliseconds * 1_000)
        var delay = LatencyHistogram()
        var waits = LatencyHistogram()
        var connects = LatencyHistogram()
        var fromSend: [OperationKind: LatencyHistogram] = [:]
        var fromIntended: [OperationKind: LatencyHistogram] = [:]
        var without: [OperationKind: LatencyHistogram] = [:]
        var late = 0
        var lateWaiting = 0
        for record in records {
            let harness = record.harnessDelayMicroseconds
            delay.record(harness)
            if harness > lateMicroseconds {
                late += 1
                if record.connectionWaitMicroseconds > 0 { lateWaiting += 1 }
            }
            if record.connectionWaitMicroseconds > 0 { waits.record(record.connectionWaitMicroseconds) }
            if record.connectMicroseconds > 0 { connects.record(record.connectMicroseconds) }
            // Per operation, as the latency thresholds count: shed answers apart.
            guard record.result != .rejected(.overloaded) else { continue }
            fromSend[record.operation, default: LatencyHistogram()].record(record.sendToAnswerMicroseconds)
            fromIntended[record.operation, default: LatencyHistogram()].record(record.latencyMicroseconds)
            without[record.operation, default: LatencyHistogram()].record(record.latencyMicroseconds - harness)
        }
        harnessDelayMilliseconds = delay.percentiles
        lateSends = late
        connectionWaits = Int(waits.totalCount)
        connectionWaitMilliseconds = waits.percentiles
        self.connects = Int(connects.totalCount)
        connectMilliseconds = connects.percentiles
        connections = run.connections
        var operations: [String: OperationTiming] = [:]
        for operation in OperationKind.allCases {
            guard let sent = fromSend[operation] else { continue }
            operations[operation.rawValue] = OperationTiming(
                fromIntendedMilliseconds: fromIntended[operation]!.percentiles,
                fromSendMilliseconds: sent.percentiles,
                withoutHarnessDelayMilliseconds: without[operation]!.percentiles,
                server: run.serverLatency?[operation.rawValue])
        }
        self.operations = operations
        harnessCPUMicroseconds = run.harnessCPUMicroseconds
        harnessCPUMicrosecondsPerRequest = run.harnessCPUMicroseconds.map { Double($0) / Double(max(records.count, 1)) }
        // The lanes' own threads, not the process (its watchers, ticker and spool are not
        // what sends the requests).
        if let cpu = run.harnessThreadsCPUMicroseconds, let threads = run.harnessThreads, run.loadSeconds > 0 {
            harnessCPUShare = Double(cpu) / (run.loadSeconds * 1e6 * Double(threads))
        }

        // In process the harness and the engine share the process's threads: a send held back
        // there is the process's, not the harness's alone, so only a server target's run is
        // called harness-limited (its late sends are counted either way).
        var because: [String] = []
        let share = Double(late) / Double(max(records.count, 1))
        if run.connections != nil, share > Self.lateShareLimit {
            var reason = String(
                format:
                    "%d of %d requests (%.1f%%) left more than %.0f ms after their time because of the harness itself (its delay p99 %@ ms, max %@ ms)",
                late, records.count, share * 100, LoadDefaults.lateSendMilliseconds,
                Self.number(harnessDelayMilliseconds.p99), Self.number(harnessDelayMilliseconds.max))
            if lateWaiting > 0, let bound = run.connections?.boundPerServer {
                reason +=
                    "; \(lateWaiting) of them waited for a free connection at the bound of \(bound) per server (--connections)"
            }
            because.append(reason)
        }
        if let cpuShare = harnessCPUShare, cpuShare >= Self.cpuShareLimit {
            because.append(
                String(
                    format:
                        "the harness's %d threads were busy %.0f%% of the load: it had no CPU to spare (give it cores of its own, or shard the load)",
                    run.harnessThreads ?? 0, cpuShare * 100))
        }
        harnessLimited = !because.isEmpty
        harnessLimitedBecause = because
    }

    static func number(_ milliseconds: Double) -> String { String(format: "%.1f", milliseconds) }
}

extension LatencyPercentiles {
    /// The value a threshold's percentile names (100: the max).
    func at(_ percentile: Double) -> Double {
        switch percentile {
        case 50: p50
        case 90: p90
        case 99: p99
        case 99.9: p999
        default: max
        }
    }
}
