// What `run --plan-only` tells a person beside the plan's lines (which are for machines:
// `user drop-index arrival-µs`, one per user): per drop, how many users arrive, from when to
// when, and the busiest second of arrivals; and how many arrive past the run's bound, which a
// run counts as dropped instead of sending.
import Engine

public struct PlanSummary: Sendable, Equatable {
    public struct Drop: Sendable, Equatable {
        public var index: Int
        public var name: String
        public var stock: Int
        public var users: Int
        public var firstArrivalMicroseconds: Int64
        public var lastArrivalMicroseconds: Int64
        /// The most users arriving within one second of the run (counted from its start), and
        /// which second that was (the earliest of equals).
        public var busiestSecondUsers: Int
        public var busiestSecond: Int64
    }

    public var scenario: String
    public var shard: ShardSpec
    public var users: Int
    /// Drops in the scenario's order; a drop no user of the plan arrives at is left out.
    public var drops: [Drop]
    public var maxDurationMicroseconds: Int64
    /// Users planned to arrive at or after the bound: never sent, counted as dropped.
    public var usersPastBound: Int

    public init(
        _ scenario: Scenario, shard: ShardSpec, plan: [(user: UserID, dropIndex: Int, arrivalMicroseconds: Int64)]
    ) {
        self.scenario = scenario.name
        self.shard = shard
        users = plan.count
        let bound = scenario.limits.maxDurationMicroseconds
        maxDurationMicroseconds = bound
        usersPastBound = plan.count { $0.arrivalMicroseconds >= bound }
        var perSecond: [Int: [Int64: Int]] = [:]
        var drops: [Int: Drop] = [:]
        for user in plan {
            let second = user.arrivalMicroseconds / 1_000_000
            perSecond[user.dropIndex, default: [:]][second, default: 0] += 1
            guard var drop = drops[user.dropIndex] else {
                let spec = scenario.drops[user.dropIndex]
                drops[user.dropIndex] = Drop(
                    index: user.dropIndex, name: spec.name, stock: spec.stock, users: 1,
                    firstArrivalMicroseconds: user.arrivalMicroseconds,
                    lastArrivalMicroseconds: user.arrivalMicroseconds, busiestSecondUsers: 0, busiestSecond: 0)
                continue
            }
            drop.users += 1
            drop.firstArrivalMicroseconds = min(drop.firstArrivalMicroseconds, user.arrivalMicroseconds)
            drop.lastArrivalMicroseconds = max(drop.lastArrivalMicroseconds, user.arrivalMicroseconds)
            drops[user.dropIndex] = drop
        }
        for (index, seconds) in perSecond {
            let busiest = seconds.max { ($0.value, -$0.key) < ($1.value, -$1.key) }!
            drops[index]?.busiestSecondUsers = busiest.value
            drops[index]?.busiestSecond = busiest.key
        }
        self.drops = drops.values.sorted { $0.index < $1.index }
    }

    /// Lines for a person (standard error, so the plan's own lines stay clean on standard output).
    public var lines: [String] {
        let of = shard == .whole ? "" : " (shard \(shard))"
        var lines = [
            "plan of \(scenario)\(of): \(users) users over \(drops.count) drop(s); each line below is `user drop-index arrival-µs`"
        ]
        for drop in drops {
            lines.append(
                "  drop \(drop.index) \(drop.name.debugDescription) (\(drop.stock) units): \(drop.users) users from +\(Self.milliseconds(drop.firstArrivalMicroseconds)) to +\(Self.milliseconds(drop.lastArrivalMicroseconds)), at most \(drop.busiestSecondUsers) arriving in one second (from +\(drop.busiestSecond) s)"
            )
        }
        if usersPastBound > 0 {
            lines.append(
                "  \(usersPastBound) users arrive at or after limits.maxDuration (+\(Self.milliseconds(maxDurationMicroseconds))): a run counts them as dropped, never sent"
            )
        }
        return lines
    }

    private static func milliseconds(_ microseconds: Int64) -> String { "\(microseconds / 1000) ms" }
}
