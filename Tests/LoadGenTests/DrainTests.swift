// After its load a run waits for the holds it left to end, so the checker judges every expiry;
// the wait is bounded (a run of 10-minute holds sat idle 10 minutes, saying nothing), says what
// it waits for, and a hold still live when the checker looks is named as not judged.
import Engine
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import LoadGen

@Suite struct DrainTests {
    @Test func theWaitIsTheLongestHoldAndItsGraceAtMostAMinuteUnlessAsked() {
        #expect(StrategyLoad.drainMilliseconds(2_000) == 2_000 + 1_000 + 2_000)
        #expect(StrategyLoad.drainMilliseconds(600_000) == LoadDefaults.maxDrainMilliseconds)
        #expect(StrategyLoad.drainMilliseconds(600_000, bound: 120_000) == 120_000)
        #expect(StrategyLoad.drainMilliseconds(2_000, bound: 120_000) == 5_000)
        #expect(StrategyLoad.drainMilliseconds(2_000, bound: 0) == 0)
    }

    @Test func holdsThatOutliveTheWaitAreCheckedLiveAndNamed() async throws {
        let url = try await TestDatabase.fresh("drain_live_holds")
        // Every buyer walks away from a 10-minute hold: without a bound the run waited for them.
        let scenario = ScenarioFixtures.scenario(
            users: 30, stock: 5, ttlMilliseconds: 600_000, after: AfterReserve(purchase: 0, cancel: 0, abandon: 1))
        let notes = Mutex<[String]>([])
        var options = RunOptions(strategies: [.actor], databaseURL: url)
        options.drainSeconds = 0.3
        options.note = { line in notes.withLock { $0.append(line) } }
        let outcome = try await LoadRunner.run(scenario, options: options) { _, _ in }
        let report = try #require(outcome.report.strategies.first)
        #expect(outcome.report.exitCode == ExitStatus.pass)
        #expect(report.holdsLiveAtCheck == 5)
        let expiry = try #require(report.invariants.first { $0.name == InvariantName.holdsExpire })
        #expect(expiry.ok)
        #expect(expiry.detail.contains("5 holds were still live when checked"), Comment(rawValue: expiry.detail))
        #expect(
            notes.withLock { $0 }.contains {
                $0.hasPrefix("actor: load done; waiting up to 0.3 s for its 5 holds still ACTIVE")
            }, Comment(rawValue: notes.withLock { $0 }.joined(separator: "\n")))
        #expect(
            outcome.report.problemLines.contains { $0.hasPrefix("actor: note: 5 holds were still live when checked") })
    }
}
