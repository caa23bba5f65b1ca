// What one strategy's load produced (`StrategyLoad`, or a merge of shards), before the report
// summarises it.
import Engine
import Foundation

/// Everything one strategy's run produced, before it is summarised.
public struct StrategyResult: Sendable {
    public var strategy: Strategy
    public var databaseURL: String
    public var drops: [DropID]
    public var totalStock: Int
    public var history: ClientHistory
    public var loadSeconds: Double
    public var plannedUsers: Int
    public var neverSent: Int
    /// Users still being shed when the run stopped.
    public var shedAtStop = 0
    /// Requests users would have sent after the run's bound, by operation: a purchase whose
    /// think time ran past it leaves its hold to expire.
    public var unsentAtStop: [OperationKind: Int] = [:]
    public var stockSamples: [StockSample]
    public var check: CheckReport
    /// The live feed as `watchers` saw it (server targets only).
    public var live: LiveFigures?
    /// The faults a nemesis opened and healed during the load.
    public var faults: [FaultRecord] = []
    /// CPU time the target used from the first arrival to the last answer (nil: unreadable).
    public var targetCPUMicroseconds: Int64? = nil
    /// The latency histograms, when they were not recorded from `history` here (a merge of
    /// shards adds theirs); nil: built from the history.
    public var histograms: OperationHistograms? = nil
    /// The load generators' peak resident memory (a merge: the largest shard's); nil: this
    /// process's.
    public var harnessPeakResidentBytes: Int? = nil
    /// CPU time the harness process used while its users ran (in process, the engine's too).
    public var harnessCPUMicroseconds: Int64? = nil
    /// Event-loop threads the harness drove its users from, and their own CPU time over the
    /// load (nil in process).
    public var harnessThreads: Int? = nil
    public var harnessThreadsCPUMicroseconds: Int64? = nil
    /// The buyers' connections to a server target.
    public var connections: ConnectionFigures? = nil
    /// The claims as the server measured them (its /metrics histogram over the load), by
    /// operation; nil in process, and for shards (each would see the others' requests too).
    public var serverLatency: [String: ServerLatency]? = nil
    /// The failures by cause, most frequent first (empty: none).
    public var errorCauses: [ErrorCauseCount] = []
    /// Set when no server answered after the load (for as long as the drain would have waited).
    public var targetDown: TargetDown? = nil
}

/// The target was gone when the load ended: nothing could expire the holds it left.
public struct TargetDown: Sendable, Codable, Equatable {
    /// When the last answer about a drop came, in seconds from the run's start (nil: none came).
    public var lastAnswerSeconds: Double?

    /// From the run's records: when the target last answered.
    init(after records: [OperationRecord]) {
        lastAnswerSeconds = records.lazy.filter { !$0.result.isFailure }.map(\.answeredMicroseconds).max()
            .map { Double($0) / 1e6 }
    }
}

public struct StockSample: Sendable, Codable, Equatable {
    public var second: Double
    public var available: Int
    /// The harness process's resident memory at that second (a soak's flatness).
    public var residentBytes: Int = 0
}
