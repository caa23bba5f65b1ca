// The verdict is the product's: with both strategies, what the rowlock baseline breaks or misses
// is a finding shown beside the actor's figures, never the run's failure; the actor's own
// broken invariant or missed threshold always is. Real runs of both strategies, then faults
// planted in their reports.
import Engine
import Foundation
import Testing

@testable import LoadGen

@Suite(.serialized) struct VerdictTests {
    /// The clean reports, made once for every test of the suite (two real runs).
    static let clean = Task { try await cleanReports() }

    /// One real run of each strategy, judged clean by the checker.
    static func cleanReports() async throws -> [StrategyReport] {
        var reports: [StrategyReport] = []
        for strategy in [Strategy.actor, .rowlock] {
            let (run, pool) = try await CheckerPlantedFaultTests.realRun("verdict_\(strategy)", strategy: strategy)
            await pool.close()
            // Thrown, not #require'd: the first test to await the shared task reports it.
            guard run.check.ok else { throw BrokenCleanRun(strategy: strategy, broken: run.check.broken) }
            reports.append(StrategyReport(run, thresholds: []))
        }
        return reports
    }

    struct BrokenCleanRun: Error {
        let strategy: Strategy
        let broken: [InvariantResult]
    }

    static func breakInvariant(_ report: inout StrategyReport) {
        report.invariants[0].ok = false
        report.invariants[0].detail = "planted"
        report.invariants[0].counterexamples = ["planted counterexample"]
    }

    static func missThreshold(_ report: inout StrategyReport) {
        report.thresholds = [ThresholdResult(expression: "p99(reserve) < 1ms", ok: false, actual: 5)]
    }

    static func summary(_ reports: [StrategyReport], _ exitCode: Int32) -> RunReport {
        RunReport(
            scenario: "verdict", seed: 1, startedAt: Date(), pass: exitCode == 0, exitCode: exitCode,
            target: "inprocess", strategies: reports, comparison: LoadRunner.comparison(reports))
    }

    @Test func theBaselinesFindingsAreShownAndDoNotFailTheRun() async throws {
        var reports = try await Self.clean.value
        Self.breakInvariant(&reports[1])
        Self.missThreshold(&reports[1])
        let exitCode = LoadRunner.judge(&reports)
        #expect(exitCode == ExitStatus.pass)
        #expect(reports.map(\.role) == [.product, .baseline])

        let summary = Self.summary(reports, exitCode)
        #expect(summary.verdictLine.hasPrefix("PASS") && summary.verdictLine.contains("baseline's findings"))
        #expect(summary.problemLines.contains { $0.hasPrefix("rowlock (baseline, a finding): invariant 1") })
        #expect(summary.problemLines.contains { $0.hasPrefix("rowlock (baseline, a finding): threshold") })
        #expect(summary.summaryTable.contains("baseline (findings)"))
        // What a drop measures leads: answers/s first in the table and in the headline.
        #expect(summary.comparisonRows[1].first == "answers/s")
        #expect(summary.headline?.hasPrefix("actor answered ") == true)
        #expect(summary.markdown.hasPrefix("# verdict: PASS\n\nActor answered "))
    }

    @Test func theProductsOwnProblemsFailTheRun() async throws {
        let clean = try await Self.clean.value

        var broken = clean
        Self.breakInvariant(&broken[0])
        Self.missThreshold(&broken[1])
        #expect(LoadRunner.judge(&broken) == ExitStatus.invariantBroken)
        #expect(Self.summary(broken, ExitStatus.invariantBroken).verdictLine.hasPrefix("FAIL: an invariant is broken"))

        var missed = clean
        Self.missThreshold(&missed[0])
        #expect(LoadRunner.judge(&missed) == ExitStatus.thresholdMissed)

        // Run alone, rowlock is the product: its problems are the verdict.
        var alone = [clean[1]]
        Self.breakInvariant(&alone[0])
        #expect(LoadRunner.judge(&alone) == ExitStatus.invariantBroken)
        #expect(alone[0].role == .product)

        var both = clean
        #expect(LoadRunner.judge(&both) == ExitStatus.pass)
    }

    /// A ratio below 1 says the actor sold out later, in words that read so.
    @Test func timeToSellOutReadsAsSoonerOrLater() {
        #expect(RunReport.soonerOrLater(11.5) == "11.5x sooner")
        #expect(RunReport.soonerOrLater(0.2) == "5.0x later")
        #expect(RunReport.soonerOrLater(1) == "about the same")
        #expect(RunReport.soonerOrLater(0.97) == "about the same")
        #expect(RunReport.soonerOrLater(0) == "n/a")
        // A ratio of two zeros read "0.0x"; a longer actor run read "0.67x shorter".
        #expect(RunReport.times(0) == "n/a" && RunReport.times(3.94) == "3.9x")
        #expect(RunReport.shorterOrLonger(2) == "2.00x shorter" && RunReport.shorterOrLonger(0.5) == "2.00x longer")
    }
}
