// `stockdrop bench --compare-url URL`: the same committed-claims phase against two databases
// in one run, alternated round by round (reference, other, reference, …) so that both meet the
// same machine in the same minutes: what a setting costs (synchronous replication against one
// node, a balancer's hop, another server) as a ratio, not two figures from different hours.
import Engine
import Foundation

public struct BenchComparison: Codable, Sendable {
    public var strategy: Strategy
    public var callers: Int
    public var seconds: Double
    /// The databases, without credentials.
    public var reference: String
    public var other: String
    /// Committed claims per second, one figure per round.
    public var referenceClaimsPerSecond: [Double]
    public var otherClaimsPerSecond: [Double]

    /// The other's median ÷ the reference's.
    public var ratioOfMedians: Double {
        Self.median(otherClaimsPerSecond) / max(Self.median(referenceClaimsPerSecond), 1e-9)
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    public var table: String {
        var lines = [
            "committed claims/s, \(strategy), \(callers) callers, \(String(format: "%g", seconds)) s per round, alternated:",
            "  reference  \(reference)", "  other      \(other)",
        ]
        for round in referenceClaimsPerSecond.indices {
            lines.append(
                "  round \(round + 1): reference \(String(format: "%.0f", referenceClaimsPerSecond[round]))"
                    + ", other \(round < otherClaimsPerSecond.count ? String(format: "%.0f", otherClaimsPerSecond[round]) : "-")"
            )
        }
        lines.append(
            "  other ÷ reference (medians): \(String(format: "%.2f", ratioOfMedians))"
                + " (\(String(format: "%.0f", Self.median(otherClaimsPerSecond))) against \(String(format: "%.0f", Self.median(referenceClaimsPerSecond))))"
        )
        return lines.joined(separator: "\n")
    }
}

extension Bench {
    /// `rounds` rounds of the committed-claims phase of `strategy` against `options`'
    /// database, each followed by the same against `otherURL`. Each round on each side starts
    /// on an empty database (the embedded one's `stockdrop_bench_<strategy>`, else
    /// `stockdrop_bench_compare` created on that server), so neither side's tables grow
    /// round after round while the other's do not.
    public static func compare(
        _ options: BenchOptions, with otherURL: String, rounds: Int, progress: @Sendable (String) -> Void
    ) async throws -> BenchComparison {
        let strategy = options.strategies.first ?? .actor
        var comparison = BenchComparison(
            strategy: strategy, callers: options.callers, seconds: options.seconds,
            reference: RedactedURL.database(options.databaseURL), other: RedactedURL.database(otherURL),
            referenceClaimsPerSecond: [], otherClaimsPerSecond: [])
        /// The committed-claims phase on an empty database of the server `url` leads to.
        func measure(_ url: String?) async throws -> Double {
            var side = options
            side.pairedRounds = 0  // no ceiling here: the two databases are each other's reference
            if let url, !url.isEmpty {
                side.databaseURL = try await Database.fresh("stockdrop_bench_compare", onServerOf: url)
            }
            return try await run(strategy, side, soldOut: false, progress: progress).committedClaimsPerSecond
        }
        for round in 1...rounds {
            progress("bench: round \(round) of \(rounds), the reference")
            comparison.referenceClaimsPerSecond.append(try await measure(options.databaseURL))
            progress("bench: round \(round) of \(rounds), the other")
            comparison.otherClaimsPerSecond.append(try await measure(otherURL))
        }
        return comparison
    }
}
