// The rows the checker reads straight from the tables (never through the engine), with times
// as epoch microseconds of the database's clock.
import Engine

public struct CheckedRows: Sendable {
    public struct DropRow: Sendable {
        public var id: DropID
        public var totalStock: Int
        public var perUserLimit: Int
    }

    public struct ReservationRow: Sendable {
        public var id: ReservationID
        public var drop: DropID
        public var user: UserID
        public var status: ReservationStatus
        public var createdMicroseconds: Int64
        public var expiresMicroseconds: Int64
        public var endedMicroseconds: Int64?
    }

    public struct PurchaseRow: Sendable {
        public var id: PurchaseID
        public var reservationID: ReservationID
        public var drop: DropID
        public var user: UserID
        public var createdMicroseconds: Int64
        /// When the buyer asked (`asked_at`); nil on rows made before asks were recorded.
        public var askedMicroseconds: Int64? = nil
    }

    public var drops: [DropRow]
    public var reservations: [ReservationRow]
    public var purchases: [PurchaseRow]
}

/// What the clients were told, and when: the run's records plus the wall-clock instant of the
/// run's zero and, per drop, the moment the run stopped while some of its buyers still tried.
public struct ClientHistory: Sendable, Codable {
    public var records: [OperationRecord]
    public var startedAtEpochMicroseconds: Int64
    /// Drop → (users cut off, run time in microseconds when they were).
    public var cutOff: [DropID: CutOff]
    /// Where the run's rows are and which drops it made: `check --history` defaults to them.
    public var databaseURL: String?
    public var drops: [DropID]?
    /// How well the harness's clock was matched to the database's (the measured offset's
    /// uncertainty, `ClockOffset`), when it was: `check --history` never judges more tightly
    /// than this, as the run's own check does not, and refuses a database made after the run
    /// began by it rather than by a minute.
    public var clockUncertaintyMicroseconds: Int64? = nil

    public struct CutOff: Sendable, Equatable, Codable {
        public var users: Int
        public var atMicroseconds: Int64
    }

    public init(
        records: [OperationRecord], startedAtEpochMicroseconds: Int64, cutOff: [DropID: CutOff],
        databaseURL: String? = nil, drops: [DropID]? = nil
    ) {
        self.records = records
        self.startedAtEpochMicroseconds = startedAtEpochMicroseconds
        self.cutOff = cutOff
        self.databaseURL = databaseURL
        self.drops = drops
    }
}
