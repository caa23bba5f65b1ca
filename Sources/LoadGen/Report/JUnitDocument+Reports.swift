// What a run, a merge of shards or a check says, as JUnit cases. The job fails exactly when
// the verdict does: the product's broken invariants and missed thresholds are failures; the
// baseline's are skipped cases carrying the finding (it is shown, it is not the verdict); an
// invariant that could not be judged is skipped and says why.
import Foundation

extension JUnitDocument {
    /// A run's report (`run`, or `report merge` for sharded runs): a suite per strategy.
    public init(run report: RunReport) {
        let scenario = Self.slug(report.scenario)
        self.init(
            name: "stockdrop \(report.scenario)",
            suites: report.strategies.map { strategy in
                let classname = "stockdrop.\(scenario).\(strategy.strategy.rawValue)"
                let baseline = strategy.role == .baseline
                let cases =
                    strategy.invariants.map { Self.testCase($0, classname: classname, baseline: baseline) }
                    + strategy.thresholds.map { Self.testCase($0, classname: classname, baseline: baseline) }
                    + (strategy.targetDown.map { [Self.testCase($0, classname: classname, baseline: baseline)] } ?? [])
                var properties = [
                    Property(name: "scenario", value: report.scenario),
                    Property(name: "strategy", value: strategy.strategy.rawValue),
                    Property(name: "role", value: strategy.role.rawValue),
                    Property(name: "seed", value: String(report.seed)),
                    Property(name: "target", value: report.target),
                    Property(name: "exit-code", value: String(report.exitCode)),
                ]
                if let shards = report.shards {
                    properties.append(Property(name: "shards", value: String(shards.count)))
                }
                let notes = report.limitedLines(for: strategy) + report.problemLines(for: strategy)
                return Suite(
                    name: classname, startedAt: report.startedAt, seconds: strategy.durationSeconds,
                    properties: properties, cases: cases,
                    output: notes.isEmpty ? nil : notes.joined(separator: "\n"))
            })
    }

    /// `stockdrop check`: one suite, an invariant per case, named after the database (never
    /// its URL, which may carry a password).
    public init(check report: CheckReport, database: String, startedAt: Date, seconds: Double) {
        let name = Self.slug(database)
        let classname = "stockdrop.check.\(name)"
        self.init(
            name: "stockdrop check \(database)",
            suites: [
                Suite(
                    name: classname, startedAt: startedAt, seconds: seconds,
                    properties: [
                        Property(name: "database", value: database),
                        Property(name: "drops-checked", value: String(report.dropsChecked)),
                        Property(name: "sold", value: String(report.sold)),
                        Property(name: "oversold", value: String(report.oversold)),
                    ],
                    cases: report.invariants.map { Self.testCase($0, classname: classname, baseline: false) },
                    output: nil)
            ])
    }

    static func testCase(_ invariant: InvariantResult, classname: String, baseline: Bool) -> TestCase {
        let name = "invariant \(invariant.number): \(invariant.name)"
        var evidence = invariant.counterexamples
        if invariant.violations > invariant.counterexamples.count {
            evidence.append("(\(invariant.violations) in all, \(invariant.counterexamples.count) shown)")
        }
        let outcome: Outcome
        if !invariant.checked {
            outcome = .skipped(message: "not judged: \(invariant.detail)")
        } else if invariant.ok {
            outcome = .passed
        } else if baseline {
            outcome = .skipped(message: "a finding of the baseline, not the verdict: \(invariant.detail)")
        } else {
            outcome = .failed(type: "invariant", message: invariant.detail, details: evidence.joined(separator: "\n"))
        }
        let output: String? =
            switch outcome {
            case .passed: invariant.detail
            case .skipped where !evidence.isEmpty: evidence.joined(separator: "\n")
            default: nil
            }
        return TestCase(name: name, classname: classname, seconds: 0, outcome: outcome, output: output)
    }

    static func testCase(_ threshold: ThresholdResult, classname: String, baseline: Bool) -> TestCase {
        let actual = threshold.actual.isFinite ? "actual \(threshold.actualText)" : threshold.actualText
        var message = "`\(threshold.expression)` missed: \(actual)"
        if threshold.decidedByHarness {
            message +=
                "; harness-limited: less the harness's own delay it is \(String(format: "%g", threshold.withoutHarnessDelay ?? 0)), which meets it"
        }
        let outcome: Outcome =
            threshold.ok
            ? .passed
            : baseline
                ? .skipped(message: "a finding of the baseline, not the verdict: \(message)")
                : .failed(type: "threshold", message: message, details: "")
        return TestCase(
            name: "threshold \(threshold.expression)", classname: classname, seconds: 0, outcome: outcome,
            output: threshold.ok ? actual : nil)
    }

    /// No server answered after the load (the run exits 69): a failure of its own, since the
    /// invariants it could not judge pass as far as they were judged.
    static func testCase(_ down: TargetDown, classname: String, baseline: Bool) -> TestCase {
        let message =
            "no server answered when the load ended"
            + (down.lastAnswerSeconds.map { String(format: " (its last answer came at +%.2f s)", $0) } ?? "")
            + "; holds left ACTIVE past their expiry were not judged"
        return TestCase(
            name: "the target answered after the load", classname: classname, seconds: 0,
            outcome: baseline
                ? .skipped(message: "a finding of the baseline, not the verdict: \(message)")
                : .failed(type: "target", message: message, details: ""),
            output: nil)
    }

    /// A name as a dotted classname's part: letters, digits, `-` and `_`.
    static func slug(_ text: String) -> String {
        let slug = String(text.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
        return slug.isEmpty ? "unnamed" : slug
    }
}
