// Why a request got no answer about the drop. A run's errors are counted by cause, so a run
// failed by the target's rate limit, a wrong secret or dropped connections says which, and what
// to do about it, instead of a bare count: 3,743 errors from a server that limits each client
// address to 500 requests/s read, before this, like a server that could not keep up.
import Engine

public struct ErrorCause: Sendable, Equatable {
    /// Short and stable, the report's key: `429 rate_limited`, `503 outcome_unknown`,
    /// `timeout`, `connection lost`, `store_unavailable`.
    public var label: String
    /// This instance's particulars (the server's message, the socket's error), for the example.
    public var detail: String

    public init(_ label: String, _ detail: String = "") {
        self.label = label
        self.detail = detail
    }

    /// An HTTP answer that is not an answer about the drop: its status and, when the body has
    /// one, the server's error code.
    static func http(status: Int, code: String?, message: String?) -> ErrorCause {
        ErrorCause(code.map { "\(status) \($0)" } ?? "HTTP \(status)", message ?? "")
    }

    /// A rate limit's refusal (nothing applied): the run measured the limit, not the server.
    static let rateLimited = "429 rate_limited"
    /// A 429 without the server's error body: a balancer or proxy in front of it said it.
    static let bareRateLimited = "HTTP 429"

    /// Whether a cause is a rate limit's: the server's own or a proxy's.
    static func isRateLimit(_ label: String) -> Bool { label == rateLimited || label == bareRateLimited }

    /// The causes the harness knows, with what they mean for the run and what to do.
    static let hints: [String: String] = [
        rateLimited:
            "the server's rate limit answered before any route (the example names the limit): every buyer of the run comes from this machine's address, so a limit per client address throttles the whole load, and one per user throttles fast retries; start the server with --no-rate-limit to load-test it",
        bareRateLimited:
            "a 429 without the server's error body: a balancer or proxy in front of the server limited the run before it reached the server; lift that limit for the load test",
        "401 unauthorized": "the server refused the run's tokens: is STOCKDROP_JWT_SECRET the server's?",
        "timeout": "no answer within --timeout-ms: the request may or may not have been applied",
        "connection lost":
            "the connection closed before the answer (the request may have been applied): a server that stopped, or one past its --max-connections",
        "cannot connect":
            "no connection could be opened (nothing sent): is the server up, and its listen backlog large enough?",
        "503 outcome_unknown": "the database's answer was lost after the claim reached it: it may have been applied",
    ]
}

/// The errors of one cause over a run (report.json's `errorCauses`).
public struct ErrorCauseCount: Sendable, Codable, Equatable {
    public var cause: String
    public var count: Int
    /// By operation name (`reserve`, `purchase`, `cancel`).
    public var byOperation: [String: Int]
    /// The first instance's particulars.
    public var example: String
    /// What the cause means and what to do, when the harness knows it.
    public var hint: String?
}

/// Errors counted by cause. Bounded: a target inventing a new message per request cannot grow
/// it past `limit` causes; later ones are counted under `other`.
struct ErrorTally: Sendable, Equatable {
    static let limit = 32
    private(set) var counts: [String: ErrorCauseCount] = [:]

    mutating func add(_ cause: ErrorCause, _ operation: OperationKind) {
        add(cause, operation: operation.rawValue, count: 1)
    }

    mutating func add(_ other: ErrorCauseCount) {
        for (operation, count) in other.byOperation.sorted(by: { $0.key < $1.key }) {
            add(ErrorCause(other.cause, other.example), operation: operation, count: count)
        }
    }

    private mutating func add(_ cause: ErrorCause, operation: String, count: Int) {
        let label = counts[cause.label] != nil || counts.count < Self.limit ? cause.label : "other"
        counts[
            label,
            default: ErrorCauseCount(
                cause: label, count: 0, byOperation: [:], example: cause.detail, hint: ErrorCause.hints[label])
        ].count += count
        counts[label]?.byOperation[operation, default: 0] += count
    }

    /// Most frequent first (ties by name, so reports compare).
    var sorted: [ErrorCauseCount] {
        counts.values.sorted { $0.count != $1.count ? $0.count > $1.count : $0.cause < $1.cause }
    }

    /// Several runs' (shards') counts as one.
    static func merged(_ lists: [[ErrorCauseCount]]) -> [ErrorCauseCount] {
        var tally = ErrorTally()
        for list in lists { for count in list { tally.add(count) } }
        return tally.sorted
    }
}

extension ErrorCauseCount {
    /// `cancel 62, purchase 123, reserve 3731`: the report tables' by-operation cell.
    var byOperationCell: String {
        byOperation.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// `3743 × 429 rate_limited (reserve 3622, purchase 86, cancel 35), e.g. more than 500
    /// requests/s per client address`.
    var line: String {
        let operations = OperationKind.allCases.compactMap { operation in
            byOperation[operation.rawValue].map { "\(operation.rawValue) \($0)" }
        }
        return "\(count) × \(cause) (\(operations.joined(separator: ", ")))"
            + (example.isEmpty ? "" : ", e.g. \(example)")
    }
}
