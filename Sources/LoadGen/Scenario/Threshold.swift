// A pass/fail rule over a run's figures, written as `metric op value`:
//   oversold == 0          errors == 0            p99(reserve) < 50ms
//   committed_claims_per_second > 20000           dropped_sends == 0
import Foundation

public struct Threshold: Sendable, Equatable {
    public enum Metric: Sendable, Equatable, CustomStringConvertible {
        case count(CountMetric)
        /// A latency percentile of one operation, in milliseconds (100 = max).
        case latency(percentile: Double, operation: OperationKind)

        public var description: String {
            switch self {
            case .count(let metric): metric.rawValue
            case .latency(let p, let operation):
                "\(Threshold.percentileNames.first { $0.value == p }?.key ?? "p\(p)")(\(operation.rawValue))"
            }
        }
    }

    public enum CountMetric: String, Sendable, CaseIterable {
        case oversold, errors, timeouts
        case invariantsBroken = "invariants_broken"
        case lostWrites = "lost_writes"
        case lateSends = "late_sends"
        case droppedSends = "dropped_sends"
        case sold, unsold
        case committedClaimsPerSecond = "committed_claims_per_second"
        case requestsPerSecond = "requests_per_second"
        case answersPerSecond = "answers_per_second"
        /// Seconds until every unit was first held or sold; infinite when it never was.
        case timeToSellOutSeconds = "time_to_sell_out_seconds"
        /// The harness's resident memory growth from the end of the warm-up to the end of the
        /// load, as a fraction (0.05 is 5%); infinite for a load too short to judge.
        case residentGrowth = "rss_growth"
        /// Requests the target shed (503 `overloaded`, or the engine's full queue).
        case shed
        /// Requests answered about the drop: a success or a rejection other than `overloaded`.
        case answers
        /// Purchases refused `expired` although sent a round trip (and the clock tolerance)
        /// before their hold expired: the server's delay cost the buyer the unit.
        case expiredInTime = "expired_in_time"
    }

    public enum Comparison: String, Sendable, CaseIterable {
        case lessOrEqual = "<="
        case greaterOrEqual = ">="
        case equal = "=="
        case notEqual = "!="
        case less = "<"
        case greater = ">"

        func holds(_ actual: Double, _ limit: Double) -> Bool {
            switch self {
            case .less: actual < limit
            case .lessOrEqual: actual <= limit
            case .greater: actual > limit
            case .greaterOrEqual: actual >= limit
            case .equal: actual == limit
            case .notEqual: actual != limit
            }
        }
    }

    public var expression: String
    public var metric: Metric
    public var comparison: Comparison
    /// Milliseconds for latency metrics; a plain number otherwise.
    public var value: Double

    static let percentileNames: [String: Double] = ["p50": 50, "p90": 90, "p99": 99, "p999": 99.9, "max": 100]

    /// Parses one expression; the error says what was expected.
    public static func parse(_ expression: String) -> Result<Threshold, ThresholdSyntaxError> {
        let text = expression.trimmingCharacters(in: .whitespaces)
        // Two-character operators first, so `<=` is not read as `<`.
        guard let comparison = Comparison.allCases.first(where: { text.contains($0.rawValue) }),
            let range = text.range(of: comparison.rawValue)
        else {
            return .failure(ThresholdSyntaxError("expected `metric op value` with op one of < <= > >= == !="))
        }
        let left = text[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
        let right = text[range.upperBound...].trimmingCharacters(in: .whitespaces)
        let metric: Metric
        if let open = left.firstIndex(of: "("), left.hasSuffix(")") {
            let name = String(left[..<open])
            let argument = String(left[left.index(after: open)..<left.index(before: left.endIndex)])
            guard let percentile = percentileNames[name] else {
                return .failure(
                    ThresholdSyntaxError(
                        "unknown latency metric `\(name)`; use one of \(percentileNames.keys.sorted().joined(separator: ", "))"
                    ))
            }
            guard let operation = OperationKind(rawValue: argument) else {
                return .failure(
                    ThresholdSyntaxError("unknown operation `\(argument)`; use reserve, purchase or cancel"))
            }
            metric = .latency(percentile: percentile, operation: operation)
        } else if let count = CountMetric(rawValue: left) {
            metric = .count(count)
        } else {
            let names = CountMetric.allCases.map(\.rawValue) + ["p50(op)", "p90(op)", "p99(op)", "p999(op)", "max(op)"]
            let hint =
                Suggestion.nearest(to: left, among: CountMetric.allCases.map(\.rawValue)).map {
                    " (did you mean `\($0)`?)"
                } ?? ""
            return .failure(
                ThresholdSyntaxError("unknown metric `\(left)`\(hint); known: \(names.joined(separator: ", "))"))
        }
        let value: Double?
        if case .latency = metric {
            value = ScenarioDuration.milliseconds(right) ?? Double(right).flatMap { $0 == 0 ? 0 : nil }
        } else {
            value = Double(right.replacingOccurrences(of: "_", with: ""))
        }
        guard let value, value.isFinite else {
            let expected = if case .latency = metric { "a duration such as 50ms" } else { "a number" }
            return .failure(ThresholdSyntaxError("`\(right)` is not \(expected)"))
        }
        return .success(Threshold(expression: text, metric: metric, comparison: comparison, value: value))
    }

    /// A run that gave no figure (infinite `actual`) misses every threshold on it, whatever its
    /// operator: `rss_growth > 0.5` of a load too short to sample passed, `< 0.5` failed.
    public func evaluate(_ actual: Double) -> ThresholdResult {
        var result = ThresholdResult(
            expression: expression, ok: actual.isFinite && comparison.holds(actual, value), actual: actual)
        // A latency is compared in milliseconds whatever unit the expression used.
        if case .latency = metric { result.unit = "ms" }
        return result
    }
}

public struct ThresholdSyntaxError: Error, Sendable, Equatable {
    public var message: String
    init(_ message: String) { self.message = message }
}

public struct ThresholdResult: Sendable, Codable, Equatable {
    public var expression: String
    public var ok: Bool
    /// Infinite when the run gave no figure (a drop that never sold out, a load too short to
    /// judge its memory, a latency of an operation never sent): written as null in
    /// report.json, which has no infinity. Such a threshold is missed.
    public var actual: Double
    /// A latency threshold missed only because of the harness's own delay: the same percentile
    /// less that delay (`withoutHarnessDelay`) meets it. The run was harness-limited; the miss
    /// says nothing about the server.
    public var decidedByHarness = false
    /// A latency threshold's figure less the harness's delay (nil for counts).
    public var withoutHarnessDelay: Double? = nil

    /// The figure's unit, when it has one (`ms` for a latency: `p99(reserve) < 1us` missed
    /// with "actual 18.127" read as microseconds).
    public var unit: String? = nil

    /// The figure as the reports print it: `%g` and its unit, or "no figure".
    public var actualText: String {
        actual.isFinite ? String(format: "%g", actual) + (unit.map { " \($0)" } ?? "") : "no figure"
    }

    public init(expression: String, ok: Bool, actual: Double) {
        self.expression = expression
        self.ok = ok
        self.actual = actual
    }

    private enum CodingKeys: String, CodingKey {
        case expression, ok, actual, unit, decidedByHarness, withoutHarnessDelay
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        expression = try container.decode(String.self, forKey: .expression)
        ok = try container.decode(Bool.self, forKey: .ok)
        actual = try container.decodeIfPresent(Double.self, forKey: .actual) ?? .infinity
        unit = try container.decodeIfPresent(String.self, forKey: .unit)
        decidedByHarness = try container.decodeIfPresent(Bool.self, forKey: .decidedByHarness) ?? false
        withoutHarnessDelay = try container.decodeIfPresent(Double.self, forKey: .withoutHarnessDelay)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(expression, forKey: .expression)
        try container.encode(ok, forKey: .ok)
        if actual.isFinite {
            try container.encode(actual, forKey: .actual)
        } else {
            try container.encodeNil(forKey: .actual)
        }
        try container.encodeIfPresent(unit, forKey: .unit)
        if decidedByHarness { try container.encode(true, forKey: .decidedByHarness) }
        try container.encodeIfPresent(withoutHarnessDelay, forKey: .withoutHarnessDelay)
    }
}

extension Threshold {
    /// Checked in every run whatever its scenario says: a run that got no answer about its
    /// drops (every request shed or failed) measured nothing, and must not pass.
    public static let builtIn: Threshold = {
        guard case .success(let threshold) = Threshold.parse("answers > 0") else {
            preconditionFailure("bad built-in threshold")
        }
        return threshold
    }()

    /// A nemesis run's own thresholds (its scenario's are for clean runs: under faults errors,
    /// timeouts and slow answers are expected). What must hold is the promise itself.
    public static let nemesis: [Threshold] = ["oversold == 0", "lost_writes == 0", "invariants_broken == 0"].map {
        text in
        guard case .success(let threshold) = Threshold.parse(text) else {
            preconditionFailure("bad built-in threshold \(text)")
        }
        return threshold
    }
}
