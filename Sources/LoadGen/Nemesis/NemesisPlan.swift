// The faults a nemesis run injects and when, as Jepsen's nemeses do: a seeded schedule of
// fault windows, each opened on a target (the hot drop's owner, the database, Redis) and
// healed before the next. The same seed gives the same schedule.
import Engine

public enum FaultKind: String, Sendable, Codable, CaseIterable {
    /// SIGKILL of the instance that owns the hot drop; healed by starting it again.
    case killServer = "kill-server"
    /// SIGSTOP of the hot drop's owner (its lease lapses while it sleeps); healed by SIGCONT.
    case pauseServer = "pause-server"
    /// PostgreSQL stopped at once (`pg_ctl -m immediate`: no checkpoint, every connection cut)
    /// and started again: the crash-recovery path. Needs the embedded cluster.
    case restartPostgres = "restart-postgres"
    /// The TCP proxy between the instances and PostgreSQL stops moving bytes: a hung database.
    case pausePostgres = "pause-postgres"
    /// SIGKILL of Redis; healed by starting it again (instances reconnect on their own).
    case killRedis = "kill-redis"
    /// SIGKILL of the PostgreSQL primary of a Patroni cluster (its Patroni, postmaster and
    /// backends: a machine gone); Patroni promotes the synchronous standby once the leader key
    /// lapses. Healed by starting the old node again, as a replica.
    case killPrimary = "kill-primary"
    /// A planned change of primary through Patroni's REST API (nothing to heal).
    case switchover

    /// Faults of a database that fails over: the run starts a Patroni cluster instead of the
    /// embedded PostgreSQL.
    public var needsFailoverDatabase: Bool { self == .killPrimary || self == .switchover }
}

public struct NemesisPlan: Sendable, Equatable {
    public var faults: [FaultKind]
    /// A fault opens about once per interval (±25%); it is healed after 30–70% of it.
    public var intervalMilliseconds: Int
    /// At most this many faults in the run (nil: one per interval until the load ends).
    public var maxFaults: Int? = nil
    /// The `stockdrop serve` instances of the run's cluster.
    public var instances: Int = LoadDefaults.nemesisInstances

    public init(faults: [FaultKind], intervalMilliseconds: Int = LoadDefaults.nemesisIntervalMilliseconds) {
        self.faults = faults
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// `kill-server,pause-postgres`, or `all` (every fault but the failover ones).
    public static func parseFaults(_ text: String) -> Result<[FaultKind], NemesisPlanError> {
        var kinds: [FaultKind] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if part == "all" {
                // Every fault of the embedded PostgreSQL; the failover ones are named.
                kinds += FaultKind.allCases.filter { !$0.needsFailoverDatabase }
            } else if let kind = FaultKind(rawValue: part) {
                kinds.append(kind)
            } else {
                let known = FaultKind.allCases.map(\.rawValue).joined(separator: ", ")
                return .failure(NemesisPlanError(description: "`\(part)` is not a fault; known: \(known), all"))
            }
        }
        guard !kinds.isEmpty else { return .failure(NemesisPlanError(description: "name at least one fault")) }
        if kinds.contains(where: \.needsFailoverDatabase), kinds.contains(.restartPostgres) {
            return .failure(
                NemesisPlanError(
                    description:
                        "restart-postgres crashes the embedded PostgreSQL; kill-primary and switchover run on a Patroni cluster: use kill-primary there"
                ))
        }
        var seen: Set<FaultKind> = []
        return .success(kinds.filter { seen.insert($0).inserted })
    }

    /// One fault window: opened at `startMicroseconds` of the run, healed `lastsMicroseconds`
    /// later.
    public struct Window: Sendable, Equatable {
        public var kind: FaultKind
        public var startMicroseconds: Int64
        public var lastsMicroseconds: Int64
    }

    /// The windows that open before `endMicroseconds`, in order and never overlapping. With
    /// several kinds each window draws one at random, but every kind comes once before any
    /// comes twice (a short run still sees them all).
    public func schedule(seed: UInt64, endMicroseconds: Int64) -> [Window] {
        var random = SplitMix64(seed: seed ^ 0x6E65_6D65_7369_7321)
        let interval = Double(intervalMilliseconds) * 1_000
        var windows: [Window] = []
        var bag: [FaultKind] = []
        var previousEnd: Int64 = 0
        var nominal = interval
        while true {
            let start = max(
                previousEnd + Int64(interval * 0.2), Int64(nominal * Double.random(in: 0.75...1.25, using: &random)))
            guard start < endMicroseconds, windows.count < (maxFaults ?? Int.max) else { return windows }
            if bag.isEmpty { bag = faults.shuffled(using: &random) }
            let lasts = Int64(interval * Double.random(in: 0.3...0.7, using: &random))
            windows.append(Window(kind: bag.removeLast(), startMicroseconds: start, lastsMicroseconds: lasts))
            previousEnd = start + lasts
            nominal += interval
        }
    }
}

public struct NemesisPlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
}
