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
    /// A fresh database with one drop of one unit, held by a 1.5 s hold still ACTIVE whose
    /// expiry and grace (0.75 s, half its TTL) ended `graceEndedSecondsAgo` ago.
    static func overdueHold(
        _ name: String, graceEndedSecondsAgo: Double
    ) async throws -> (pool: PostgresPool, url: String, drop: DropID) {
        let url = try await TestDatabase.fresh(name)
        let pool = PostgresPool(url: url, size: 1)
        let drop = try await CheckerPlantedFaultTests.plantDrop(pool, stock: 1)
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at)
            VALUES ($1, 7, 'ACTIVE', now() - make_interval(secs => $2 + 2.25), now() - make_interval(secs => $2 + 0.75))
            """, [.int64(drop), .double(graceEndedSecondsAgo)])
        try await pool.query("UPDATE drops SET reserved = 1 WHERE id = $1", [.int64(drop)])
        return (pool, url, drop)
    }

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

    /// A drain ended by its bound can cut in while a sweeper is still expiring holds (the
    /// rowlock sweeper runs every 250 ms): a hold whose grace ended a moment ago is then being
    /// swept, not late. The checker gives it the sweepers' slack and counts it live; with no
    /// slack (a settled drain) the same hold is a broken invariant 4, as it must be.
    @Test func aCheckThatCutsInWhileHoldsAreSweptCountsThemLiveNotLate() async throws {
        let (pool, _, drop) = try await Self.overdueHold("drain_cut_mid_sweep", graceEndedSecondsAgo: 0.75)
        defer { Task { await pool.close() } }

        // The slack is a minute here, not the run's 2 s, so a slow machine between the insert
        // and the check cannot age the hold past it: what is tested is that a slack applies.
        let cut = try await Checker(sweepSlackMilliseconds: 60_000).check(pool: pool, drops: [drop], history: nil)
        let judged = try #require(cut.invariants.first { $0.name == InvariantName.holdsExpire })
        #expect(judged.ok, Comment(rawValue: judged.detail))
        #expect(cut.holdsLiveAtCheck == 1)

        let settled = try await Checker().check(pool: pool, drops: [drop], history: nil)
        let late = try #require(settled.invariants.first { $0.name == InvariantName.holdsExpire })
        #expect(!late.ok)
        #expect(late.counterexamples.first?.contains("is still ACTIVE") == true)
        #expect(settled.holdsLiveAtCheck == nil)
    }

    /// `stockdrop check` run alone during a sale cuts in while the servers' sweepers run, as a
    /// bounded drain does: by default it gives them the same slack (a hold being swept is named
    /// live, not late), and `--sweep-slack-ms 0` judges every hold as a finished run's check does.
    @Test func checkAloneGivesTheSweepersTheirSlackUnlessToldNot() async throws {
        let (pool, url, drop) = try await Self.overdueHold("check_sweep_slack", graceEndedSecondsAgo: 0.5)
        defer { Task { await pool.close() } }
        let check = ["check", "--url", url, "--drops", String(drop)]

        let (help, helpText) = try await VerdictFileTests.run(VerdictFileTests.binary, ["check", "--help"])
        #expect(help == .exited(0))
        #expect(
            helpText.contains("(default: \(Double(LoadDefaults.drainSlackMilliseconds)))"), Comment(rawValue: helpText))
        let (slack, live) = try await VerdictFileTests.run(
            VerdictFileTests.binary, check + ["--sweep-slack-ms", "60000"])
        #expect(slack == .exited(ExitStatus.pass), Comment(rawValue: live))
        #expect(live.contains("1 holds were still live when checked"), Comment(rawValue: live))
        let (none, late) = try await VerdictFileTests.run(VerdictFileTests.binary, check + ["--sweep-slack-ms", "0"])
        #expect(none == .exited(ExitStatus.invariantBroken), Comment(rawValue: late))
        #expect(late.contains("is still ACTIVE"), Comment(rawValue: late))
        let (refused, why) = try await VerdictFileTests.run(
            VerdictFileTests.binary, check + ["--sweep-slack-ms", "-1"])
        #expect(refused == .exited(ExitStatus.usage) && why.contains("--sweep-slack-ms"), Comment(rawValue: why))
    }
}
