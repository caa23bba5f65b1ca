// What `run --plan-only` says of a plan: per drop its users, first and last arrival and busiest
// second, and the users a run would drop for arriving past its bound.
import Engine
import Testing

@testable import LoadGen

@Suite struct PlanSummaryTests {
    @Test func eachDropSaysItsUsersTheirSpanAndTheBusiestSecond() {
        var scenario = ScenarioFixtures.scenario(users: 7, stock: 5, drops: 3)
        scenario.limits.maxDurationSeconds = 2.5
        let plan: [(user: UserID, dropIndex: Int, arrivalMicroseconds: Int64)] = [
            (1, 0, 0), (2, 0, 0), (3, 0, 500_000), (4, 0, 1_200_000), (5, 0, 1_900_000),
            (6, 2, 2_500_000), (7, 2, 2_600_000),
        ]
        let summary = PlanSummary(scenario, shard: .whole, plan: plan)
        #expect(summary.users == 7)
        #expect(summary.drops.map(\.index) == [0, 2], "a drop no user arrives at is left out")
        #expect(summary.drops[0].users == 5)
        #expect(summary.drops[0].firstArrivalMicroseconds == 0)
        #expect(summary.drops[0].lastArrivalMicroseconds == 1_900_000)
        #expect(summary.drops[0].busiestSecondUsers == 3)
        #expect(summary.drops[0].busiestSecond == 0)
        #expect(summary.drops[1].busiestSecondUsers == 2)
        #expect(summary.drops[1].busiestSecond == 2)
        #expect(summary.usersPastBound == 2, "arrivals at or after the bound are never sent")
        #expect(summary.lines.count == 4)
        #expect(summary.lines[0].hasSuffix("7 users over 2 drop(s); each line below is `user drop-index arrival-µs`"))
        #expect(summary.lines[3].hasPrefix("  2 users arrive at or after limits.maxDuration (+2500 ms)"))
    }

    @Test func equalSecondsNameTheEarliest() {
        let scenario = ScenarioFixtures.scenario(users: 4, stock: 5, drops: 1)
        let plan: [(user: UserID, dropIndex: Int, arrivalMicroseconds: Int64)] = [
            (1, 0, 3_100_000), (2, 0, 3_200_000), (3, 0, 1_000_000), (4, 0, 1_999_999),
        ]
        let summary = PlanSummary(scenario, shard: .whole, plan: plan)
        #expect(summary.drops[0].busiestSecondUsers == 2)
        #expect(summary.drops[0].busiestSecond == 1)
    }

    @Test func theShardsSummariesAddUpToTheWholePlans() throws {
        let scenario = ShardTests.scenario()
        let whole = PlanSummary(scenario, shard: .whole, plan: LoadRunner.plan(scenario, shard: .whole))
        var users: [Int: Int] = [:]
        var first: [Int: Int64] = [:]
        var last: [Int: Int64] = [:]
        for index in 0..<3 {
            let shard = try ShardSpec.parse("\(index)/3").get()
            let summary = PlanSummary(scenario, shard: shard, plan: LoadRunner.plan(scenario, shard: shard))
            #expect(summary.lines[0].contains("(shard \(index)/3)"))
            for drop in summary.drops {
                users[drop.index, default: 0] += drop.users
                first[drop.index] = min(first[drop.index] ?? .max, drop.firstArrivalMicroseconds)
                last[drop.index] = max(last[drop.index] ?? .min, drop.lastArrivalMicroseconds)
            }
        }
        #expect(whole.users == 1_000 + 777 + 334)
        #expect(whole.drops.count == 3)
        for drop in whole.drops {
            #expect(users[drop.index] == drop.users)
            #expect(first[drop.index] == drop.firstArrivalMicroseconds)
            #expect(last[drop.index] == drop.lastArrivalMicroseconds)
        }
    }
}
