// One server-sent event of the live dashboard, as JSON: a frame a second while a strategy's
// load runs, and one at the end with the verdict (and, for a whole run, the report's page).
// A page that connects late is sent every earlier frame first, so its charts start at zero.
import Foundation

public struct DashboardFrame: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// A second of a strategy's load.
        case tick
        /// The end: `verdict` is set (and `reportHTML` for a whole run).
        case final
    }

    public struct Users: Sendable, Codable, Equatable {
        public var planned: Int
        public var arrived: Int
        public var sent: Int
        /// Sends the harness itself held back past 10 ms of their time.
        public var lateSends: Int
    }

    public struct Latency: Sendable, Codable, Equatable {
        public var p50: Double
        public var p99: Double
        public var max: Double
    }

    /// Latency in milliseconds from the intended send, over the last second (nil when nothing
    /// was answered in it) and since the strategy's start.
    public struct LatencyWindow: Sendable, Codable, Equatable {
        public var lastSecond: Latency?
        public var total: Latency?
    }

    public struct Drop: Sendable, Codable, Equatable {
        public var id: Int64
        public var name: String
        public var stock: Int
        /// From the database's counters this second; nil when it could not be read.
        public var available: Int?
        public var held: Int?
        public var sold: Int?
    }

    public struct Invariant: Sendable, Codable, Equatable {
        public var name: String
        /// `holds`, `broken`, `judged at the end`, and at the end also `skipped`.
        public var status: String
        public var counterexample: String?
        public var atSeconds: Double?
    }

    public struct Verdict: Sendable, Codable, Equatable {
        /// The run's last line (PASS or FAIL and why), or a shard's summary.
        public var line: String
        /// nil for a shard: the verdict is the merge's.
        public var pass: Bool?
        public var exitCode: Int32?
        public var reportPath: String?
    }

    public var kind: Kind
    public var scenario: String
    public var strategy: String
    public var shard: String
    public var elapsedSeconds: Double
    public var users: Users
    /// Operation → outcome (ok, rejected, shed, error) → answers in the last second.
    public var requestsPerSecond: [String: [String: Int]]
    /// The same since the strategy's start.
    public var requestsTotal: [String: [String: Int]]
    /// `all` and each operation.
    public var latencyMilliseconds: [String: LatencyWindow]
    public var drops: [Drop]
    /// Answers that were errors or timeouts (or refusals that applied nothing), since the start.
    public var errors: Int
    /// The cause most of them had (`429 rate_limited`, `cannot connect`), nil while none.
    public var commonestError: String? = nil
    /// Acknowledged holds and purchases not looked up in the database yet (a backlog that grows
    /// means the durability check is behind the answers).
    public var unconfirmed: Int
    public var invariants: [Invariant]
    public var verdict: Verdict?
    public var reportHTML: String?

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }
}
