// The verdict in a few lines of Markdown for a CI job's page (GitHub's step summary, or any
// file a pipeline shows): the verdict line, each invariant by strategy, the thresholds, the
// side-by-side figures and where the full report is. report.md stays the long form.
import Foundation

public enum StepSummary {
    /// A run's (or a merge's) summary; `reportPath` is its HTML report.
    public static func markdown(_ report: RunReport, reportPath: String) -> String {
        var md = "### \(report.pass ? "✅" : "❌") stockdrop \(report.scenario): \(report.pass ? "PASS" : "FAIL")\n\n"
        md += "\(report.verdictLine)\n\n"
        if let headline = report.headline { md += "\(headline.prefix(1).uppercased() + headline.dropFirst()).\n\n" }
        let columns = report.strategies.map { $0.role == .baseline ? "\($0.strategy) (baseline)" : "\($0.strategy)" }
        var invariants: [[String]] = [["invariant"] + columns]
        for (index, invariant) in (report.strategies.first?.invariants ?? []).enumerated() {
            invariants.append(
                ["\(invariant.number). \(invariant.name)"]
                    + report.strategies.map { strategy in
                        guard index < strategy.invariants.count else { return "" }
                        return Self.cell(strategy.invariants[index])
                    })
        }
        md += RunReport.markdownTable(invariants)
        let expressions = report.strategies.flatMap { $0.thresholds.map(\.expression) }.reduce(into: [String]()) {
            if !$0.contains($1) { $0.append($1) }
        }
        if !expressions.isEmpty {
            var thresholds: [[String]] = [["threshold"] + columns]
            for expression in expressions {
                thresholds.append(
                    ["`\(expression)`"]
                        + report.strategies.map { strategy in
                            strategy.thresholds.first { $0.expression == expression }.map(Self.cell) ?? ""
                        })
            }
            md += "\n" + RunReport.markdownTable(thresholds)
        }
        md += "\n" + RunReport.markdownTable(report.comparisonRows)
        md += "\nFull report: `\(reportPath)`\n"
        return md
    }

    /// `stockdrop check`'s summary.
    public static func markdown(_ report: CheckReport, database: String) -> String {
        var md = "### \(report.ok ? "✅" : "❌") stockdrop check \(database): \(report.ok ? "PASS" : "FAIL")\n\n"
        md +=
            "\(report.dropsChecked) drops, \(report.sold) units sold, \(report.unsold) unsold, \(report.oversold) oversold.\n\n"
        md += RunReport.markdownTable(
            [["invariant", "verdict"]] + report.invariants.map { ["\($0.number). \($0.name)", Self.cell($0)] })
        return md
    }

    static func cell(_ invariant: InvariantResult) -> String {
        if !invariant.checked { return "not judged" }
        if invariant.ok { return "holds" }
        let example = invariant.counterexamples.first.map { ", e.g. \(Self.inline($0))" } ?? ""
        return "**BROKEN** (\(invariant.violations)\(example))"
    }

    static func cell(_ threshold: ThresholdResult) -> String {
        let actual = threshold.actualText
        if threshold.ok { return "met (\(actual))" }
        return "**missed** (\(actual)\(threshold.decidedByHarness ? ", harness-limited" : ""))"
    }

    /// Text safe inside a table cell.
    static func inline(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}
