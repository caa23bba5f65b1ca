// Percentiles the bench reports: exact nearest-rank over the samples.
import LoadGen
import Testing

@Suite("latency summary") struct LatencySummaryTests {
    @Test func nearestRankPercentilesInMilliseconds() {
        let summary = LatencySummary(microseconds: (1...1_000).reversed().map { UInt32($0 * 1_000) })
        #expect(summary.count == 1_000)
        #expect(summary.p50 == 500)
        #expect(summary.p90 == 900)
        #expect(summary.p99 == 990)
        #expect(summary.p999 == 999)
        #expect(summary.max == 1_000)
        #expect(LatencySummary(microseconds: []).p99 == 0)
    }
}
