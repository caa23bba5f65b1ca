// An HDR histogram of latencies in microseconds (1 µs to 1 h, 3 significant digits), and the
// set a run keeps per operation and outcome. Shards on several machines write theirs and the
// merge adds them: HDR histograms of one configuration add bucket by bucket, so the merged
// percentiles are those of one histogram of every request, not an average of percentiles.
import Engine
import Histogram

public struct LatencyHistogram: Sendable, Equatable {
    static let highestTrackableMicroseconds: UInt64 = 3_600_000_000
    private var histogram = Histogram<UInt64>(
        highestTrackableValue: highestTrackableMicroseconds, numberOfSignificantValueDigits: .three)

    public init() {}

    public init(_ microseconds: [Int64]) {
        for value in microseconds { record(value) }
    }

    public mutating func record(_ microseconds: Int64) {
        _ = histogram.record(UInt64(clamping: max(1, microseconds)))
    }

    /// Every count of `other` added to this one's bucket for the same values: exact.
    public mutating func add(_ other: LatencyHistogram) { histogram.add(other.histogram) }

    public var totalCount: UInt64 { histogram.totalCount }

    var percentiles: LatencyPercentiles {
        guard histogram.totalCount > 0 else { return LatencyPercentiles(p50: 0, p90: 0, p99: 0, p999: 0, max: 0) }
        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1_000 }
        return LatencyPercentiles(
            p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9), max: Double(histogram.max) / 1_000)
    }

    /// [percentile, ms] pairs on the usual HDR ladder for plotting.
    var curve: [[Double]] {
        guard histogram.totalCount > 0 else { return [] }
        return [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100].map {
            [$0, Double($0 == 100 ? histogram.max : histogram.valueAtPercentile($0)) / 1_000]
        }
    }

    /// The non-empty buckets as [value, count] pairs, in value order: a value names its bucket
    /// (recording it again lands in the same one), so the pairs rebuild the histogram exactly.
    public var buckets: [[UInt64]] { histogram.recordedValues().map { [$0.value, $0.count] } }

    public static func == (lhs: LatencyHistogram, rhs: LatencyHistogram) -> Bool { lhs.histogram == rhs.histogram }
}

extension LatencyHistogram: Codable {
    private enum CodingKeys: String, CodingKey {
        case unit, highestTrackableValue, significantDigits, totalCount, buckets
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode("microseconds", forKey: .unit)
        try container.encode(Self.highestTrackableMicroseconds, forKey: .highestTrackableValue)
        try container.encode(3, forKey: .significantDigits)
        try container.encode(totalCount, forKey: .totalCount)
        try container.encode(buckets, forKey: .buckets)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let highest = try container.decode(UInt64.self, forKey: .highestTrackableValue)
        let digits = try container.decode(Int.self, forKey: .significantDigits)
        guard highest == Self.highestTrackableMicroseconds, digits == 3 else {
            throw DecodingError.dataCorruptedError(
                forKey: .highestTrackableValue, in: container,
                debugDescription:
                    "a histogram of another configuration (\(highest) µs, \(digits) digits) cannot be added exactly")
        }
        self.init()
        for pair in try container.decode([[UInt64]].self, forKey: .buckets) {
            guard pair.count == 2, pair[0] <= highest else {
                throw DecodingError.dataCorruptedError(
                    forKey: .buckets, in: container, debugDescription: "a bucket is not [value, count]: \(pair)")
            }
            _ = histogram.record(pair[0], count: pair[1])
        }
        let total = try container.decode(UInt64.self, forKey: .totalCount)
        guard total == totalCount else {
            throw DecodingError.dataCorruptedError(
                forKey: .totalCount, in: container, debugDescription: "buckets add up to \(totalCount), not \(total)")
        }
    }
}

/// A run's latency histograms: per operation, all of its requests and each outcome (ok,
/// rejected, error).
public struct OperationHistograms: Sendable, Equatable, Codable {
    public static let outcomes = ["all", "ok", "rejected", "shed", "error"]

    /// Operation name → outcome → histogram.
    public var histograms: [String: [String: LatencyHistogram]] = [:]

    public init() {}

    public init(_ records: [OperationRecord]) {
        for record in records { self.record(record) }
    }

    public mutating func record(_ record: OperationRecord) {
        let outcome =
            switch record.result {
            case .ok: "ok"
            case .rejected(.overloaded): "shed"
            case .rejected: "rejected"
            case .failed, .error, .timeout: "error"
            }
        // A shed answer (overloaded) is not an answer about the drop: it has a histogram of its
        // own and stays out of `all`, which latency thresholds judge (else shedding fast would
        // make a server's latency look better).
        for key in outcome == "shed" ? ["shed"] : ["all", outcome] {
            histograms[record.operation.rawValue, default: [:]][key, default: LatencyHistogram()].record(
                record.latencyMicroseconds)
        }
    }

    public mutating func add(_ other: OperationHistograms) {
        for (operation, byOutcome) in other.histograms {
            for (outcome, histogram) in byOutcome {
                histograms[operation, default: [:]][outcome, default: LatencyHistogram()].add(histogram)
            }
        }
    }

    public func histogram(_ operation: OperationKind, _ outcome: String = "all") -> LatencyHistogram {
        histograms[operation.rawValue]?[outcome] ?? LatencyHistogram()
    }
}
