// The bench's references and targets, and the figures the harness reads from a server.
import Engine
import Foundation
import TestSupport
import Testing

@testable import LoadGen

@Suite struct BenchTests {
    @Test func theCeilingsWriteEveryClaimTheyCountIntoTheRealTables() async throws {
        let url = try await TestDatabase.fresh("bench_ceilings")
        let options = BenchOptions(strategies: [.actor], callers: 50, seconds: 0.3, databaseURL: url)
        let ceilings = try await BenchCeilingRun.measureDatabase(options) { _ in }
        #expect(ceilings.batchClaims == 50)
        #expect(ceilings.plainInsertClaims > 0 && ceilings.plainInsertClaims % 50 == 0)
        #expect(ceilings.batchFunctionClaims > 0 && ceilings.batchFunctionClaims % 50 == 0)
        let pool = PostgresPool(url: url, size: 1)
        let rows = try await pool.query(
            """
            SELECT (SELECT count(*) FROM reservations WHERE status = 'ACTIVE') AS holds,
                   (SELECT count(DISTINCT (drop_id, user_id)) FROM reservations) AS distinct_holds,
                   (SELECT sum(reserved) FROM drops) AS counted
            """)
        await pool.close()
        let total = ceilings.plainInsertClaims + ceilings.batchFunctionClaims
        #expect(try rows.first?.int("holds") == total)
        #expect(try rows.first?.int("distinct_holds") == total)
        #expect(try rows.first?.int("counted") == total)
        // (a) and (b) were measured in turn, a ratio for each pair (five by default).
        #expect(ceilings.batchFunctionPaired?.count == 5)
        #expect(ceilings.batchFunctionPaired?.allSatisfy { $0.referencePerSecond > 0 && $0.ratio > 0 } == true)
    }

    /// The actor's pairs with (a) commit real holds too: every claim the bench counts, in the
    /// phase and in the pairs, is a row of the hot drop, and the target is the pairs' median.
    @Test func theActorIsPairedWithThePlainInsertAndEveryClaimIsARow() async throws {
        let url = try await TestDatabase.fresh("bench_paired")
        let options = BenchOptions(strategies: [.actor], callers: 20, seconds: 0.4, pairedRounds: 3, databaseURL: url)
        let report = try await Bench.run(options) { _ in }
        let actor = try #require(report.results.first)
        let rounds = try #require(actor.pairedWithPlainInsert)
        #expect(rounds.count == 3)
        #expect(rounds.allSatisfy { $0.referencePerSecond > 0 && $0.measuredPerSecond > 0 })
        #expect(actor.committedClaims > 0 && actor.committedClaimsInDatabase == actor.committedClaims)
        let target = report.targets.first { $0.name == "actor / plain insert" }
        #expect(target?.value == PairedRound.medianRatio(rounds))
        // The sold-out rejections are paired with the bare actor the same way.
        let soldOut = try #require(actor.pairedWithBareActor)
        #expect(soldOut.count == 3 && soldOut.allSatisfy { $0.referencePerSecond > 0 && $0.measuredPerSecond > 0 })
        let rejections = report.targets.first { $0.name == "actor sold-out rejections / bare actor" }
        #expect(rejections?.value == PairedRound.medianRatio(soldOut))
    }

    @Test func theTargetsAreRatiosToTheCeilingsOfTheSameRun() {
        let ceilings = BenchCeilings(
            batchClaims: 1_000, plainInsertClaims: 0, plainInsertClaimsPerSecond: 100_000,
            plainInsertTransactionMilliseconds: LatencySummary(microseconds: []), batchFunctionClaims: 0,
            batchFunctionClaimsPerSecond: 85_000, batchFunctionCallMilliseconds: LatencySummary(microseconds: []),
            bareActorAnswersPerSecond: 2_000_000)
        var actor = BenchResult(
            strategy: .actor, callers: 1_000, seconds: 5, committedClaims: 0, committedClaimsPerSecond: 60_000,
            committedClaimsInDatabase: 0, reserveLatencyMilliseconds: LatencySummary(microseconds: [30_000]),
            rejections: 0, rejectionsPerSecond: 1_600_000,
            rejectionLatencyMilliseconds: LatencySummary(microseconds: []),
            errors: 0)
        actor.actorBytesPerActiveReservation = nil
        let targets = Dictionary(
            uniqueKeysWithValues: BenchTarget.all(results: [actor], ceilings: ceilings).map { ($0.name, $0) })
        #expect(targets["batch function / plain insert"]?.value == 0.85)
        #expect(targets["batch function / plain insert"]?.met == true)
        #expect(targets["actor / plain insert"]?.value == 0.6)
        #expect(targets["actor / plain insert"]?.met == false)
        // Little's law: 1,000 callers at 60,000/s spend 16.7 ms each; 30 ms is 1.8 of it.
        let little = try? #require(targets["actor reserve p99 / (callers ÷ claims/s)"])
        #expect(abs((little?.value ?? 0) - 1.8) < 0.01 && little?.met == true)
        #expect(targets["actor sold-out rejections / bare actor"]?.value == 0.8)

        // Measured in pairs taken in turn, a ratio is the median of the pairs' own, not the
        // phases' totals (60,000 ÷ 100,000 above): here 0.5, 0.8, 0.7, so 0.7, which meets 0.70.
        actor.pairedWithPlainInsert = [
            PairedRound(referencePerSecond: 100_000, measuredPerSecond: 50_000),
            PairedRound(referencePerSecond: 60_000, measuredPerSecond: 48_000),
            PairedRound(referencePerSecond: 80_000, measuredPerSecond: 56_000),
        ]
        var paired = ceilings
        paired.batchFunctionPaired = [
            PairedRound(referencePerSecond: 100_000, measuredPerSecond: 70_000),
            PairedRound(referencePerSecond: 100_000, measuredPerSecond: 90_000),
        ]
        let pairedTargets = Dictionary(
            uniqueKeysWithValues: BenchTarget.all(results: [actor], ceilings: paired).map { ($0.name, $0) })
        #expect(abs((pairedTargets["actor / plain insert"]?.value ?? 0) - 0.7) < 1e-9)
        #expect(pairedTargets["actor / plain insert"]?.met == true)
        #expect(abs((pairedTargets["batch function / plain insert"]?.value ?? 0) - 0.8) < 1e-9)
    }

    @Test func theServersCPUIsReadFromItsMetrics() {
        let text = """
            # TYPE process_cpu_seconds_total gauge
            process_cpu_seconds_total_other 9
            process_cpu_seconds_total 12.5
            stockdrop_live_sockets 3
            """
        #expect(HTTPTarget.metric("process_cpu_seconds_total", in: text) == 12.5)
        #expect(HTTPTarget.metric("process_resident_memory_bytes", in: text) == nil)
    }

    @Test func aThresholdWithoutAFigureIsWrittenAsNull() throws {
        let result = ThresholdResult(expression: "rss_growth < 0.05", ok: false, actual: .infinity)
        let json = try JSONEncoder().encode(result)
        #expect(String(decoding: json, as: UTF8.self).contains("\"actual\":null"))
        #expect(try JSONDecoder().decode(ThresholdResult.self, from: json) == result)
    }
}
