// The verdict where CI reads it: JUnit XML, checked against a JUnit schema (xmllint with
// Tests/Schemas/junit.xsd) and then case by case, and the Markdown step summary; for a
// passing run, a missed threshold and an oversell planted in the database; and the commands,
// which refuse a path they cannot write before anything is sent.
import Engine
import Foundation
import TestSupport
import Testing

@testable import LoadGen

@Suite(.serialized) struct VerdictFileTests {
    static let binary = URL(fileURLWithPath: ".build/debug/stockdrop").standardized.path

    /// Runs `executable` to its end (at most a minute) off the cooperative pool; its exit and
    /// what it printed (standard output and error together).
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> (exit: ChildSpawn.Exit, output: String) {
        // Never the CI runner's own summary file: a test's summary goes where the test says.
        let outcome = try await ChildSpawn.run(
            executable, arguments, environment: ["GITHUB_STEP_SUMMARY": ""].merging(environment) { $1 },
            timeoutSeconds: 60)
        return (outcome.exit, outcome.output)
    }

    /// xmllint's complaints about `xml` against the JUnit schema; empty when it is valid.
    static func schemaProblems(_ xml: String) async throws -> String {
        let xmllint = try #require(ChildSpawn.which("xmllint"), "xmllint (Debian libxml2-utils): run scripts/setup.sh")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("junit-\(UUID()).xml").path
        try xml.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (exit, output) = try await run(xmllint, ["--noout", "--schema", "Tests/Schemas/junit.xsd", file])
        return exit == .exited(0) ? "" : "xmllint \(exit): \(output)"
    }

    static func testCase(_ document: JUnitDocument, _ suite: String, _ name: String) -> JUnitDocument.TestCase? {
        document.suites.first { $0.name == suite }?.cases.first { $0.name == name }
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stockdrop-verdict-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func aPassingRunIsASuiteOfPassedCasesPerStrategy() async throws {
        var reports = try await VerdictTests.clean.value
        reports[0].thresholds = [ThresholdResult(expression: "p99(reserve) < 10s", ok: true, actual: 12.5)]
        let exitCode = LoadRunner.judge(&reports)
        let report = VerdictTests.summary(reports, exitCode)
        let document = JUnitDocument(run: report)
        #expect(try await Self.schemaProblems(document.xml) == "")
        #expect(document.suites.map(\.name) == ["stockdrop.verdict.actor", "stockdrop.verdict.rowlock"])
        #expect(document.failures == 0)
        let actor = try #require(document.suites.first)
        #expect(actor.cases.count == 8 && actor.cases.allSatisfy { $0.outcome == .passed })
        #expect(actor.cases.allSatisfy { $0.classname == "stockdrop.verdict.actor" })
        #expect(actor.cases.map(\.name).contains("invariant 1: no-oversell"))
        let threshold = try #require(Self.testCase(document, actor.name, "threshold p99(reserve) < 10s"))
        #expect(threshold.output == "actual 12.5")
        #expect(actor.properties.contains(JUnitDocument.Property(name: "role", value: "product")))
        #expect(document.suites[1].properties.contains(JUnitDocument.Property(name: "role", value: "baseline")))
        #expect(
            document.xml.contains("<testsuites name=\"stockdrop verdict\" tests=\"15\" failures=\"0\" errors=\"0\""))
    }

    @Test func aMissedThresholdFailsTheProductAndIsOnlyAFindingOfTheBaseline() async throws {
        var reports = try await VerdictTests.clean.value
        VerdictTests.missThreshold(&reports[0])
        VerdictTests.missThreshold(&reports[1])
        let exitCode = LoadRunner.judge(&reports)
        #expect(exitCode == ExitStatus.thresholdMissed)
        let document = JUnitDocument(run: VerdictTests.summary(reports, exitCode))
        #expect(try await Self.schemaProblems(document.xml) == "")
        #expect(document.failures == 1, "the job fails exactly when the verdict does")
        let product = try #require(Self.testCase(document, "stockdrop.verdict.actor", "threshold p99(reserve) < 1ms"))
        guard case .failed(let type, let message, _) = product.outcome else {
            Issue.record("the product's missed threshold is a failure: \(product.outcome)")
            return
        }
        #expect(type == "threshold" && message == "`p99(reserve) < 1ms` missed: actual 5")
        let baseline = try #require(
            Self.testCase(document, "stockdrop.verdict.rowlock", "threshold p99(reserve) < 1ms"))
        guard case .skipped(let finding) = baseline.outcome else {
            Issue.record("the baseline's missed threshold is a finding: \(baseline.outcome)")
            return
        }
        #expect(finding.hasPrefix("a finding of the baseline, not the verdict: `p99(reserve) < 1ms` missed"))
    }

    /// Thirteen holds written straight into a 12-unit drop after a real run: the checker
    /// finds the oversell, and the JUnit names it with the drop as its counterexample.
    @Test func anOversellPlantedInTheDatabaseFailsItsInvariantWithTheEvidence() async throws {
        let (cleanRun, pool) = try await CheckerPlantedFaultTests.realRun("junit_oversell")
        var run = cleanRun
        defer { Task { await pool.close() } }
        let drop = run.drops[0]
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, expires_at)
            SELECT $1, 9000000 + n, 'ACTIVE', now() + interval '1 hour' FROM generate_series(1, 13) AS n
            """, [.int64(drop)])
        run.check = try await CheckerPlantedFaultTests.check(run)
        var reports = [StrategyReport(run, thresholds: [])]
        let exitCode = LoadRunner.judge(&reports)
        #expect(exitCode == ExitStatus.invariantBroken)
        let report = VerdictTests.summary(reports, exitCode)
        let document = JUnitDocument(run: report)
        #expect(try await Self.schemaProblems(document.xml) == "")
        let oversell = try #require(
            Self.testCase(document, "stockdrop.verdict.actor", "invariant 1: \(InvariantName.noOversell)"))
        guard case .failed(let type, _, let details) = oversell.outcome else {
            Issue.record("the oversell is a failure: \(oversell.outcome)")
            return
        }
        #expect(type == "invariant")
        #expect(details.contains("drop \(drop): ") && details.contains("total stock 12"), "\(details)")
        #expect(document.failures == reports[0].invariantsBroken)

        let summary = StepSummary.markdown(report, reportPath: "reports/x/report.html")
        #expect(summary.hasPrefix("### ❌ stockdrop verdict: FAIL\n\nFAIL: an invariant is broken (exit 1)"))
        #expect(summary.contains("| 1. no-oversell | **BROKEN** ("))
        #expect(summary.contains("Full report: `reports/x/report.html`"))
    }

    @Test func theStepSummaryHasTheVerdictTheTablesAndTheReportPath() async throws {
        var reports = try await VerdictTests.clean.value
        VerdictTests.missThreshold(&reports[1])
        let exitCode = LoadRunner.judge(&reports)
        let report = VerdictTests.summary(reports, exitCode)
        let summary = StepSummary.markdown(report, reportPath: "reports/r/report.html")
        #expect(summary.hasPrefix("### ✅ stockdrop verdict: PASS\n\nPASS: every invariant holds"))
        #expect(summary.contains("| invariant | actor | rowlock (baseline) |"))
        #expect(summary.contains("| 1. no-oversell | holds | holds |"))
        #expect(summary.contains("| `p99(reserve) < 1ms` |  | **missed** (5) |"))
        #expect(summary.contains("| answers/s |"), "the side-by-side figures")
        #expect(summary.hasSuffix("Full report: `reports/r/report.html`\n"))
    }

    /// What a counterexample quotes (a server's or a database's words) can hold anything.
    @Test func textThatIsNotXMLIsEscapedOrReplaced() async throws {
        let invariant = InvariantResult(
            number: 1, name: "no-oversell", ok: false, detail: "a \"quoted\" <detail> & more\nline two",
            checked: true, counterexamples: ["bell \u{07} and ]]> and \u{FFFE}"], violations: 3)
        let document = JUnitDocument(
            name: "odd",
            suites: [
                JUnitDocument.Suite(
                    name: "stockdrop.odd.actor", startedAt: Date(timeIntervalSince1970: 0), seconds: .nan,
                    properties: [], cases: [JUnitDocument.testCase(invariant, classname: "c", baseline: false)],
                    output: "<system> out")
            ])
        #expect(try await Self.schemaProblems(document.xml) == "")
        #expect(document.xml.contains("message=\"a &quot;quoted&quot; &lt;detail&gt; &amp; more&#10;line two\""))
        #expect(document.xml.contains("bell \u{FFFD} and ]]&gt; and \u{FFFD}\n(3 in all, 1 shown)</failure>"))
        #expect(document.xml.contains("time=\"0.000\""))
    }

    @Test func theCommandsRefuseAPathTheyCannotWriteBeforeSendingAnything() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A load ran to its end before an unwritable --report-dir was found: exit 1, no verdict.
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: "\(directory)/afile"))
        for (arguments, complaint) in [
            (
                ["--junit", "/nonexistent-stockdrop/junit.xml"],
                "--junit: the directory /nonexistent-stockdrop does not exist"
            ),
            (["--summary-md", directory], "--summary-md: \(directory) is a directory"),
            (
                ["--report-dir", "/proc/stockdrop-reports"],
                "--report-dir: cannot make the directory /proc/stockdrop-reports"
            ),
            (
                ["--report-dir", "\(directory)/afile/reports"],
                "--report-dir: cannot make the directory \(directory)/afile/reports: \(directory)/afile is a file"
            ),
            (["--pool-size", "0"], "--pool-size must be 1…200"),
            (
                ["--shard", "0/2", "--run-file", "\(directory)/run.json", "--junit", "\(directory)/j.xml"],
                "a sharded run's verdict is the merge's"
            ),
        ] {
            let (exit, output) = try await Self.run(Self.binary, ["run", "scenarios/ci.yaml"] + arguments)
            #expect(exit == .exited(ExitStatus.usage) && output.contains(complaint), "\(arguments): \(exit) \(output)")
            #expect(!output.contains("users, "), "nothing was started: \(output)")
        }
        let (exit, output) = try await Self.run(
            Self.binary, ["report", "merge", "\(directory)/a", "--junit", "/nonexistent-stockdrop/j.xml"])
        #expect(exit == .exited(ExitStatus.usage) && output.contains("--junit: the directory"), "\(output)")
        // A run's own report directory is not a shard's: it read "no shard directories given".
        let (plain, why) = try await Self.run(Self.binary, ["report", "merge", directory])
        #expect(plain == .exited(ExitStatus.usage) && why.contains("\(directory): no shard.json"), "\(why)")
    }

    /// What `check` cannot judge is refused with the usage (64), never read as a broken
    /// invariant (1) or a database down (69): a history file that is missing or not one, a
    /// tolerance out of range, a drop id the database has not, and a history whose database a
    /// later run recreated (every answer in it read as a lost write).
    @Test func checkRefusesWhatItCannotJudge() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("{}".utf8).write(to: URL(fileURLWithPath: "\(directory)/history-actor.json"))
        for (arguments, complaint) in [
            (["--history", "\(directory)/none.json"], "--history \(directory)/none.json: no such file"),
            (["--history", "\(directory)/history-actor.json"], "it is not a client history"),
            (
                ["--history", directory],
                "it is a directory (name a history in it, e.g. \(directory)/history-actor.json)"
            ),
            (["--tolerance-ms", "nan"], "--tolerance-ms must be 0…10000"),
        ] {
            let (exit, output) = try await Self.run(Self.binary, ["check"] + arguments)
            #expect(exit == .exited(ExitStatus.usage) && output.contains(complaint), "\(arguments): \(exit) \(output)")
        }

        let (run, pool) = try await CheckerPlantedFaultTests.realRun("check_refusals")
        defer { Task { await pool.close() } }
        let drops = run.drops.map(String.init).joined(separator: ",")
        let (unknown, said) = try await Self.run(
            Self.binary, ["check", "--url", run.databaseURL, "--drops", drops + ",99999"])
        #expect(unknown == .exited(ExitStatus.usage) && said.contains("no drop has id 99999"), "\(said)")

        let history = "\(directory)/history-run.json"
        try JSONEncoder().encode(run.history).write(to: URL(fileURLWithPath: history))
        let (own, verdict) = try await Self.run(Self.binary, ["check", "--history", history])
        #expect(own == .exited(ExitStatus.pass), "the run's own database: \(verdict)")
        // As if the next run, 10 s later, had recreated the database under the same name.
        #expect(run.history.clockUncertaintyMicroseconds != nil, "the run matched its clock to the database's")
        try await pool.query(
            "UPDATE drops SET created_at = to_timestamp(($2 + 10000000) / 1e6) WHERE id = ANY($1)",
            [.int64Array(run.drops), .int64(run.history.startedAtEpochMicroseconds)])
        let (foreign, refusal) = try await Self.run(Self.binary, ["check", "--history", history])
        #expect(foreign == .exited(ExitStatus.usage), "\(refusal)")
        #expect(refusal.contains("this database is not that run's"), "\(refusal)")
    }

    /// `stockdrop check` on a real run's database: JUnit and a summary appended to the file
    /// named and to GITHUB_STEP_SUMMARY, again at each run, as a job's steps would.
    @Test func checkWritesItsVerdictWhereCIReadsIt() async throws {
        let (run, pool) = try await CheckerPlantedFaultTests.realRun("junit_check")
        await pool.close()
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let junit = "\(directory)/check.xml"
        let summary = "\(directory)/summary.md"
        let github = "\(directory)/github-step-summary.md"
        for _ in 0..<2 {
            let (exit, output) = try await Self.run(
                Self.binary,
                [
                    "check", "--url", run.databaseURL, "--drops", run.drops.map(String.init).joined(separator: ","),
                    "--junit", junit, "--summary-md", summary,
                ],
                environment: ["GITHUB_STEP_SUMMARY": github])
            #expect(exit == .exited(ExitStatus.pass), "\(output)")
        }
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(try await Self.schemaProblems(xml) == "")
        #expect(xml.contains("<testsuite name=\"stockdrop.check.test_checker_junit_check\" tests=\"7\" failures=\"0\""))
        #expect(xml.contains("<skipped message=\"not judged: "), "no history: the client's invariants are not judged")
        for path in [summary, github] {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.components(separatedBy: "### ✅ stockdrop check test_checker_junit_check: PASS").count == 3)
            #expect(text.contains("| 1. no-oversell | holds |"))
        }
    }
}
