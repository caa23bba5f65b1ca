// How far this machine's wall clock is from the database's, the way NTP reads a server: ask
// for `clock_timestamp()` several times, keep the answer with the shortest round trip (the
// least time for the two clocks to drift apart unseen) and take the database's reading to
// have been made at the middle of it. The true offset lies within half that round trip of
// the estimate: the uncertainty a merge compares with the checker's tolerance.
import Engine
import Foundation

public struct ClockOffset: Sendable, Codable, Equatable {
    /// The database's clock minus this machine's: add it to a local wall-clock time to read
    /// the same instant on the database's clock.
    public var offsetMicroseconds: Int64
    /// Half the kept sample's round trip: the true offset is within ± this of the estimate.
    public var uncertaintyMicroseconds: Int64
    public var roundTripMicroseconds: Int64
    /// Round trips made; the shortest was kept.
    public var samples: Int
    /// When the kept sample was taken, on this machine's clock.
    public var measuredAtEpochMicroseconds: Int64

    /// One round trip: our clock when the query left and when its answer came back, and the
    /// database's clock in between.
    public struct Sample: Sendable, Equatable {
        public var sentEpochMicroseconds: Int64
        public var databaseEpochMicroseconds: Int64
        public var receivedEpochMicroseconds: Int64

        public init(sentEpochMicroseconds: Int64, databaseEpochMicroseconds: Int64, receivedEpochMicroseconds: Int64) {
            self.sentEpochMicroseconds = sentEpochMicroseconds
            self.databaseEpochMicroseconds = databaseEpochMicroseconds
            self.receivedEpochMicroseconds = receivedEpochMicroseconds
        }

        var roundTripMicroseconds: Int64 { max(0, receivedEpochMicroseconds - sentEpochMicroseconds) }
    }

    /// The estimate from the sample with the shortest round trip (the earliest among equals);
    /// nil without samples.
    public static func best(of samples: [Sample]) -> ClockOffset? {
        guard let kept = samples.min(by: { $0.roundTripMicroseconds < $1.roundTripMicroseconds }) else { return nil }
        let middle = kept.sentEpochMicroseconds + kept.roundTripMicroseconds / 2
        return ClockOffset(
            offsetMicroseconds: kept.databaseEpochMicroseconds - middle,
            uncertaintyMicroseconds: (kept.roundTripMicroseconds + 1) / 2,
            roundTripMicroseconds: kept.roundTripMicroseconds,
            samples: samples.count, measuredAtEpochMicroseconds: middle)
    }

    /// `samples` round trips on `pool` (one connection of the harness's own, idle).
    public static func measure(
        pool: PostgresPool, samples: Int = LoadDefaults.clockOffsetSamples
    ) async throws
        -> ClockOffset
    {
        // A first query opens the connection: its round trip is not the network's.
        _ = try await pool.query("SELECT 1")
        var taken: [Sample] = []
        for _ in 0..<max(1, samples) {
            let sent = Date().epochMicroseconds
            let rows = try await pool.query(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS database_us")
            let received = Date().epochMicroseconds
            guard let database = try rows.first?.int64("database_us") else {
                throw RunError.unavailable("the database did not read its clock (no row from clock_timestamp())")
            }
            taken.append(
                Sample(
                    sentEpochMicroseconds: sent, databaseEpochMicroseconds: database,
                    receivedEpochMicroseconds: received))
        }
        guard let best = best(of: taken) else { throw RunError.unavailable("no clock sample was taken") }
        return best
    }
}
