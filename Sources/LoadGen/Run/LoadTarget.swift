// What the load generator drives: the engine in this process, or (with the Server issue) a
// running server over HTTP. Both answer every operation with an `Answer` value; a target never
// throws for one request, because an error is a recorded outcome (indeterminate), not a reason
// to stop the run.
import Engine
import Foundation

public enum OperationKind: String, Sendable, Codable, CaseIterable {
    case reserve, purchase, cancel

    /// Counts by operation as reports and shard manifests write them (`reserve`, `purchase`,
    /// `cancel`); nil when there are none.
    static func named(_ counts: [OperationKind: Int]) -> [String: Int]? {
        counts.isEmpty ? nil : Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
    }
}

public struct Answer: Sendable, Equatable {
    /// Recorded as is in the run's history: ok, a rejection code, or an error or timeout
    /// (indeterminate: whether it took effect is unknown).
    public var result: OperationRecord.Result
    /// The reservation a reserve created (or a cancel ended, or a purchase completed).
    public var reservationID: ReservationID?
    public var purchaseID: PurchaseID?
    /// How long the target asked to be left alone before this request is tried again (a
    /// server's Retry-After on a shed request); nil: no hint, the scenario's backoff applies.
    public var retryAfterMilliseconds: Int?
    /// Why a failure was one (nil for answers about the drop): what the report counts errors by.
    public var cause: ErrorCause?

    public init(
        _ result: OperationRecord.Result, reservationID: ReservationID? = nil, purchaseID: PurchaseID? = nil,
        retryAfterMilliseconds: Int? = nil, cause: ErrorCause? = nil
    ) {
        self.result = result
        self.reservationID = reservationID
        self.purchaseID = purchaseID
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.cause = cause
    }

    /// A failure and why.
    public static func failure(_ result: OperationRecord.Result, _ cause: ErrorCause) -> Answer {
        Answer(result, cause: cause)
    }
}

public protocol LoadTarget: Sendable {
    var strategy: Strategy { get }
    /// The database holding the target's rows, for the checker.
    var databaseURL: String { get }
    func createDrop(_ spec: DropSpec) async throws -> DropID
    func reserve(drop: DropID, user: UserID) async -> Answer
    func purchase(drop: DropID, user: UserID, idempotencyKey: String) async -> Answer
    func cancel(drop: DropID, user: UserID) async -> Answer
    /// Readies the target for these users before the run's clock starts (tokens, say).
    func prepare(users: [UserID]) async throws
    /// Lets work in flight finish, then releases the target's resources.
    func close() async
    /// CPU time the serving side has used so far, in microseconds (user plus system): a
    /// server's own figure from its /metrics, summed over instances, or this process's for a
    /// target in process. Nil when it cannot be read. Sampled around the load, it charges the
    /// target's CPU to the requests it answered.
    func cpuMicroseconds() async -> Int64?
    /// Whether something of the target still answers, asked until it does or `seconds` have
    /// passed: after the load, a target that is gone can expire no hold, so the checker must not
    /// blame it for holds left ACTIVE. In process the engine is here, so always.
    func answers(withinSeconds seconds: Double) async -> Bool
}

extension LoadTarget {
    public func prepare(users: [UserID]) async throws {}
    public func cpuMicroseconds() async -> Int64? { nil }
    public func answers(withinSeconds seconds: Double) async -> Bool { true }
}
