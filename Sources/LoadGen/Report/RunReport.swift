// `report.json`: the stable, machine-readable result of a run. The fields docs/design.md lists keep
// their names and meaning; `schemaVersion` changes when one of them does. Fields beyond that
// list (users, stock, timeline, latencyCurves) feed the HTML report and may grow.
import Engine
import Foundation

public struct RunReport: Sendable, Codable {
    /// 2: `rejected` no longer counts `overloaded`, which has its own `shed` count and latency.
    public static let currentSchemaVersion = 2

    public var schemaVersion = RunReport.currentSchemaVersion
    public var scenario: String
    public var seed: UInt64
    public var startedAt: Date
    public var pass: Bool
    public var exitCode: Int32
    public var target: String
    public var strategies: [StrategyReport]
    /// With both strategies: actor ÷ rowlock.
    public var comparison: StrategyComparison?
    /// A merge of shards (`stockdrop report merge`): each shard's own figures and clock.
    public var shards: [ShardLine]? = nil
}

public struct StrategyReport: Sendable, Codable {
    public var strategy: Strategy
    /// `product`: its invariants and thresholds are the run's verdict. `baseline`: run beside
    /// the product for comparison (with `--strategy both`); what it breaks or misses is a
    /// finding shown in the report, not a failure of the run.
    public var role: Role = .product
    public var durationSeconds: Double
    public var invariants: [InvariantResult]
    public var operations: [String: OperationStats]
    public var throughput: Throughput
    public var thresholds: [ThresholdResult]
    public var users: UserFigures
    public var stock: StockFigures
    public var timeline: [TimelinePoint]
    /// Reserve latency at percentiles 0…99.999, for the percentile chart: [percentile, ms].
    public var latencyCurves: [String: [[Double]]]
    /// Where the rows are, for `stockdrop check --url`.
    public var database: String
    /// The live feed as the scenario's `watchers` saw it; absent without watchers.
    public var live: LiveFigures? = nil
    /// From a batch's clock reading (its rows' timestamp) to each caller hearing of its row: the
    /// window in which the checker must allow a batch's effects to lie.
    public var stampToAnswerMilliseconds: LatencyPercentiles? = nil
    /// A nemesis run's faults, in order, with what each did to the buyers.
    public var faults: [FaultReport]? = nil
    /// What a run found besides its verdict (a nemesis run: an instance that did not exit 0
    /// after SIGTERM at the end), with the evidence.
    public var findings: [String]? = nil
    /// What the load cost the machine: the target's CPU per request, the harness's memory.
    public var resources: ResourceFigures? = nil
    /// Where requests' time went: the harness's own delay, connection set-up, the network and
    /// server, the server's own histogram; and whether the harness limited the run.
    public var timing: TimingFigures? = nil
    /// Purchases refused `expired`, sent in time (the server's fault) or late.
    public var expiredPurchases: ExpiredPurchases? = nil
    /// Holds still within their TTL and grace when the checker looked (the drain ended first):
    /// their expiry was not judged. Nil or 0: every hold had ended or was due.
    public var holdsLiveAtCheck: Int? = nil
    /// Failures by cause, most frequent first (nil: none): the report says why, not only how many.
    public var errorCauses: [ErrorCauseCount]? = nil
    /// Set when no server answered after the load.
    public var targetDown: TargetDown? = nil

    public var invariantsBroken: Int { invariants.filter { !$0.ok }.count }

    public enum Role: String, Sendable, Codable { case product, baseline }
}

public struct ResourceFigures: Sendable, Codable, Equatable {
    /// CPU time the target used while the load ran (user plus system; a server's from its
    /// /metrics, summed over instances; in process, the whole process, harness included).
    public var targetCPUMicroseconds: Int64?
    /// targetCPUMicroseconds ÷ requests sent.
    public var targetCPUMicrosecondsPerRequest: Double?
    /// The harness process's peak resident memory so far (getrusage), in bytes.
    public var harnessPeakResidentBytes: Int
    /// The harness's resident memory once warm (the sample nearest `LoadDefaults.warmUpSeconds`
    /// into the load) and at the load's last sample, and the growth between them; absent for
    /// a load shorter than twice the warm-up.
    public var harnessResidentBytesAfterWarmUp: Int? = nil
    public var harnessResidentBytesAtEnd: Int? = nil
    public var harnessResidentGrowthAfterWarmUp: Double? = nil
}

public struct OperationStats: Sendable, Codable, Equatable {
    public var count: Int
    public var ok: Int
    /// Answers about the drop that refused the request, by code (`overloaded` is not one:
    /// it is counted in `shed`).
    public var rejected: [String: Int]
    /// Requests the target shed (`overloaded`): nothing applied, try again after Retry-After.
    public var shed: Int = 0
    /// Failures: refusals with nothing applied, errors and timeouts (the last two
    /// indeterminate: their effect is unknown).
    public var errors: Int
    /// The timeouts among `errors`.
    public var timeouts: Int
    public var latencyMilliseconds: LatencyPercentiles
    /// The same split by outcome: ok, rejected, shed, error.
    public var latencyByOutcomeMilliseconds: [String: LatencyPercentiles]
}

public struct LatencyPercentiles: Sendable, Codable, Equatable {
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
}

public struct Throughput: Sendable, Codable, Equatable {
    /// Holds committed per second of the run. Bounded by stock in a drop scenario (1,000 units
    /// make at most ~1,000 holds plus the re-sales of returned units); `stockdrop bench`
    /// measures the commit rate.
    public var committedClaimsPerSecond: Double
    public var requestsPerSecond: Double
    /// Requests answered about the drop (a success or a rejection, not a failure) per second:
    /// what a buyer waiting for "yes" or "no" experiences.
    public var answersPerSecond: Double
    /// Seconds from the start until every unit of every drop was first held or sold (nil
    /// when some drop never sold out).
    public var timeToSellOutSeconds: Double?
}

public struct UserFigures: Sendable, Codable, Equatable {
    public var planned: Int
    public var arrived: Int
    /// Arrivals scheduled after the run's maxDuration: never sent (an open model drops them).
    public var droppedSends: Int
    /// Sends that left later than intended by more than `LoadDefaults.lateSendMilliseconds`.
    public var lateSends: Int
    /// Users turned away and still retrying when the run stopped.
    public var cutOffWhileTrying: Int
    /// Users still being shed (`overloaded`) when the run stopped: refused for the target's
    /// load, not for stock (nil in reports written before shedding existed).
    public var shedAtStop: Int? = nil
    /// Requests users would have sent after the run's bound, by operation (`reserve`,
    /// `purchase`, `cancel`): their think time or backoff ran past `limits.maxDuration`. Nil: none.
    public var unsentAtStop: [String: Int]? = nil
}

public struct StockFigures: Sendable, Codable, Equatable {
    public var total: Int
    public var sold: Int
    public var unsold: Int
    public var oversold: Int
    public var lostWrites: Int
}

public struct TimelinePoint: Sendable, Codable, Equatable {
    public var second: Int
    public var sent: Int
    public var ok: Int
    public var rejected: Int
    public var errors: Int
    public var committedClaims: Int
    /// Sampled once a second; nil when no sample fell in that second.
    public var availableStock: Int?
}

public struct StrategyComparison: Sendable, Codable, Equatable {
    /// actor answers/s ÷ rowlock answers/s.
    public var answersPerSecondRatio: Double
    /// rowlock time to sell out ÷ actor's (above 1: the actor sold out sooner; nil when
    /// either never sold out).
    public var timeToSellOutRatio: Double?
    public var committedClaimsPerSecondRatio: Double
    public var requestsPerSecondRatio: Double
    /// rowlock p99 ÷ actor p99 (above 1: the actor answers faster).
    public var p99ReserveLatencyRatio: Double
    /// rowlock duration ÷ actor duration.
    public var durationRatio: Double
}
