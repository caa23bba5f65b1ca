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
    /// When the request left: after any delay of the harness's own and any connection set-up.
    public var sentMicroseconds: Int64
    public var answeredMicroseconds: Int64
    /// Spent opening the connection the request went out on (0: an open one was free). Part of
    /// what the user waited for, and of `sent − intended`, but the server's side as much as the
    /// harness's (its accept queue), so reported apart.
    public var connectMicroseconds: Int64 = 0
    /// Spent waiting for a free connection at the harness's bound: the harness's own time.
    public var connectionWaitMicroseconds: Int64 = 0

    public init(
        operation: OperationKind, result: Result, user: UserID, drop: DropID, reservationID: ReservationID? = nil,
        purchaseID: PurchaseID? = nil, intendedMicroseconds: Int64, sentMicroseconds: Int64,
        answeredMicroseconds: Int64, connectMicroseconds: Int64 = 0, connectionWaitMicroseconds: Int64 = 0
    ) {
        self.operation = operation
        self.result = result
        self.user = user
        self.drop = drop
        self.reservationID = reservationID
        self.purchaseID = purchaseID
        self.intendedMicroseconds = intendedMicroseconds
        self.sentMicroseconds = sentMicroseconds
        self.answeredMicroseconds = answeredMicroseconds
        self.connectMicroseconds = connectMicroseconds
        self.connectionWaitMicroseconds = connectionWaitMicroseconds
    }

    /// From the intended send time, so a stalled system cannot hide queueing (no coordinated
    /// omission).
    public var latencyMicroseconds: Int64 { max(0, answeredMicroseconds - intendedMicroseconds) }
    /// From the moment the request left to its answer: the network and the server, nothing of
    /// the harness's.
    public var sendToAnswerMicroseconds: Int64 { max(0, answeredMicroseconds - sentMicroseconds) }
    /// How long the harness itself held the request past its intended time: its scheduler
    /// running late (CPU) and the wait for a free connection, not the connection's set-up.
    public var harnessDelayMicroseconds: Int64 {
        max(0, sentMicroseconds - intendedMicroseconds - connectMicroseconds)
    }
}

extension OperationRecord {
    private enum CodingKeys: String, CodingKey {
        case operation, result, user, drop, reservationID, purchaseID, intendedMicroseconds, sentMicroseconds,
            answeredMicroseconds, connectMicroseconds, connectionWaitMicroseconds
    }

    /// Histories written before the connection figures existed read as "no set-up, no wait".
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            operation: try container.decode(OperationKind.self, forKey: .operation),
            result: try container.decode(Result.self, forKey: .result),
            user: try container.decode(UserID.self, forKey: .user),
            drop: try container.decode(DropID.self, forKey: .drop),
            reservationID: try container.decodeIfPresent(ReservationID.self, forKey: .reservationID),
            purchaseID: try container.decodeIfPresent(PurchaseID.self, forKey: .purchaseID),
            intendedMicroseconds: try container.decode(Int64.self, forKey: .intendedMicroseconds),
            sentMicroseconds: try container.decode(Int64.self, forKey: .sentMicroseconds),
            answeredMicroseconds: try container.decode(Int64.self, forKey: .answeredMicroseconds),
            connectMicroseconds: try container.decodeIfPresent(Int64.self, forKey: .connectMicroseconds) ?? 0,
            connectionWaitMicroseconds: try container.decodeIfPresent(Int64.self, forKey: .connectionWaitMicroseconds)
                ?? 0)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(operation, forKey: .operation)
        try container.encode(result, forKey: .result)
        try container.encode(user, forKey: .user)
        try container.encode(drop, forKey: .drop)
        try container.encodeIfPresent(reservationID, forKey: .reservationID)
        try container.encodeIfPresent(purchaseID, forKey: .purchaseID)
        try container.encode(intendedMicroseconds, forKey: .intendedMicroseconds)
        try container.encode(sentMicroseconds, forKey: .sentMicroseconds)
        try container.encode(answeredMicroseconds, forKey: .answeredMicroseconds)
        if connectMicroseconds != 0 { try container.encode(connectMicroseconds, forKey: .connectMicroseconds) }
        if connectionWaitMicroseconds != 0 {
            try container.encode(connectionWaitMicroseconds, forKey: .connectionWaitMicroseconds)
        }
    }
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
