// One request as its virtual user saw it: what was asked, what came back, and when. The
// checker compares these with the rows (invariants 5 and 6); the report's histograms and time
// series are built from them. Times are microseconds since the run's start on a monotonic
// clock; `RunClock` maps them to wall-clock time for comparison with the database's.
import Engine
import Foundation

public struct OperationRecord: Sendable, Equatable, Codable {
    public enum Result: Sendable, Equatable, Codable {
        /// `failed`: the target said nothing was applied (the store refused the batch, the
        /// database was unreachable, the server was draining). `error` and `timeout`: the
        /// request may or may not have taken effect (a lost answer, an `outcome_unknown`).
        case ok
        case rejected(RejectionCode)
        case failed, error, timeout

        /// The request may or may not have taken effect (Jepsen's `:info`).
        public var isIndeterminate: Bool { self == .error || self == .timeout }
        /// Not an answer about the drop: a failure, determinate or not.
        public var isFailure: Bool { self == .failed || isIndeterminate }

        public var label: String {
            switch self {
            case .ok: "ok"
            case .rejected(let code): code.rawValue
            case .failed: "failed"
            case .error: "error"
            case .timeout: "timeout"
            }
        }
    }

    public var operation: OperationKind
    public var result: Result
    public var user: UserID
    public var drop: DropID
    public var reservationID: ReservationID?
    public var purchaseID: PurchaseID?
    /// When the user meant to send (arrival, or the end of a think time or backoff).
    public var intendedMicroseconds: Int64
    public var sentMicroseconds: Int64
    public var answeredMicroseconds: Int64

    /// From the intended send time, so a stalled system cannot hide queueing (no coordinated
    /// omission).
    public var latencyMicroseconds: Int64 { max(0, answeredMicroseconds - intendedMicroseconds) }
}

/// The run's time base: a monotonic clock for measuring, and the wall-clock instant of its
/// zero for comparing with the database's timestamps.
public struct RunClock: Sendable {
    public let started: ContinuousClock.Instant
    public let startedAt: Date

    public init() {
        started = ContinuousClock.now
        startedAt = Date()
    }

    /// A clock whose zero is the wall-clock instant `zero` (a shard's agreed start): read at
    /// or after it, so a shard that began late finds its first arrivals already due.
    public init(zeroAt zero: Date) {
        let now = ContinuousClock.now
        let sinceZero = Date().timeIntervalSince(zero)
        started = now.advanced(by: .microseconds(-Int64((sinceZero * 1_000_000).rounded())))
        startedAt = zero
    }

    public var nowMicroseconds: Int64 { Self.microseconds(ContinuousClock.now - started) }

    public func date(atMicroseconds micros: Int64) -> Date { startedAt.addingTimeInterval(Double(micros) / 1e6) }

    public func instant(atMicroseconds micros: Int64) -> ContinuousClock.Instant {
        started.advanced(by: .microseconds(micros))
    }

    static func microseconds(_ duration: Duration) -> Int64 {
        let parts = duration.components
        return parts.seconds * 1_000_000 + parts.attoseconds / 1_000_000_000_000
    }
}
