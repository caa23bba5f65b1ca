import Testing

// Threshold expressions: parsed once, evaluated against a run's figures.
@testable import LoadGen

@Suite struct ThresholdTests {
    @Test func parsesTheDesignExamples() throws {
        let oversold = try Threshold.parse("oversold == 0").get()
        #expect(oversold.metric == .count(.oversold) && oversold.comparison == .equal && oversold.value == 0)
        let p99 = try Threshold.parse("p99(reserve) < 50ms").get()
        #expect(
            p99.metric == .latency(percentile: 99, operation: .reserve) && p99.comparison == .less && p99.value == 50)
        let rate = try Threshold.parse("committed_claims_per_second >= 20_000").get()
        #expect(rate.comparison == .greaterOrEqual && rate.value == 20_000)
        #expect(try Threshold.parse("max(purchase) <= 1s").get().value == 1_000)
    }

    /// A run that gave no figure misses the threshold whatever its operator (`rss_growth > 0.5`
    /// of a load too short to sample passed, `< 0.5` failed).
    @Test func noFigureMissesEveryOperator() throws {
        for op in ["<", "<=", ">", ">=", "==", "!="] {
            let result = try Threshold.parse("rss_growth \(op) 0.5").get().evaluate(.infinity)
            #expect(!result.ok, "\(op)")
            #expect(result.actualText == "no figure")
        }
    }

    /// A latency's figure says its unit: `p99(reserve) < 1us` missed with "actual 18.127" read
    /// as microseconds; it was milliseconds.
    @Test func aLatencyFigureSaysItsUnit() throws {
        #expect(try Threshold.parse("p99(reserve) < 1us").get().evaluate(18.127).actualText == "18.127 ms")
        #expect(try Threshold.parse("errors == 0").get().evaluate(3).actualText == "3")
    }

    @Test func evaluatesWithTheRightOperator() throws {
        let threshold = try Threshold.parse("p99(reserve) <= 50ms").get()
        #expect(threshold.evaluate(50).ok)
        #expect(!threshold.evaluate(50.01).ok)
        #expect(try Threshold.parse("errors != 0").get().evaluate(0).ok == false)
    }

    @Test(arguments: ["oversld == 0", "p98(reserve) < 1ms", "p99(buy) < 1ms", "errors = 0", "errors == many"])
    func rejectsNonsenseWithAReason(_ text: String) {
        guard case .failure(let error) = Threshold.parse(text) else {
            Issue.record("`\(text)` parsed")
            return
        }
        #expect(!error.message.isEmpty)
    }

    @Test func suggestsTheNearestMetric() {
        guard case .failure(let error) = Threshold.parse("oversld == 0") else { return }
        #expect(error.message.contains("did you mean `oversold`"))
    }
}
