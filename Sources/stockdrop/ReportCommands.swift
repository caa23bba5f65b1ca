// `stockdrop report merge`: the shards of one run into one report and one verdict.
import ArgumentParser
import Engine
import Foundation
import LoadGen

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Work with report directories.", subcommands: [MergeCommand.self])
}

struct MergeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge the report directories of every shard of one run (`run --shard`) into one checked report.",
        discussion:
            "Exit status: 0 pass, 1 an invariant broken, 2 a threshold missed, 64 the directories are not one run's complete set of shards (each problem named), 69 the database is unreachable, 74 passed but --junit or --summary-md could not be written."
    )

    @Argument(help: "Every shard's report directory, or a directory holding them (a shared volume).")
    var directories: [String]
    @Option(help: "Where the merged report directory goes.") var reportDir = "reports"
    @Option(help: "The database (default: DATABASE_URL, else the one the shards recorded).") var url: String?
    @Flag(help: "Also write the merged client history (for `stockdrop check --history`).") var keepHistory = false
    @Option(
        help: ArgumentHelp(
            "Wait at most this many seconds for the run's holds to end before checking.",
            discussion:
                "As `run --drain`: default the longest reserveTTL plus the purchase grace and 2 s, at most 63 s."
        ))
    var drain: Double?
    @OptionGroup var verdictFiles: VerdictFileOptions

    func validate() throws {
        try RunCommand.validateDrain(drain)
        if let problem = ReportDirectoryOption.prepare(reportDir) { throw ValidationError("--report-dir: \(problem)") }
    }

    func run() async throws {
        let outcome: MergeOutcome
        do {
            outcome = try await ShardMerge.merge(
                directories: ShardDirectory.expand(directories),
                databaseURL: url ?? ProcessInfo.processInfo.environment["DATABASE_URL"], drainSeconds: drain,
                note: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
        } catch let refusal as MergeRefusal {
            FileHandle.standardError.write(Data("\(refusal)\n".utf8))
            throw ExitCode(ExitStatus.usage)
        } catch let error as RunError {
            FileHandle.standardError.write(Data("merge failed: \(error)\n".utf8))
            throw ExitCode(error.exitCode)
        } catch {
            FileHandle.standardError.write(Data("merge failed: \(error)\n".utf8))
            throw ExitCode(ExitStatus.unavailable)
        }
        let report = outcome.report
        let directory = try ReportWriter.directory(
            root: reportDir, scenario: "\(report.scenario)-merged", startedAt: report.startedAt)
        try ReportWriter.write(
            report, to: directory,
            histories: keepHistory ? [report.strategies[0].strategy.rawValue: outcome.history] : [:])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(outcome.histograms).write(
            to: URL(fileURLWithPath: directory).appendingPathComponent("histograms.json"))
        for line in report.limitedLines { print(line) }
        print(report.summaryTable)
        if let shards = report.shardTable { print("\n" + shards + "\n") }
        for line in report.problemLines { print(line) }
        print(
            "merged \(report.shards?.count ?? 0) shards in \(String(format: "%.2f", outcome.seconds)) s (histories, histograms, drain and checker)"
        )
        print("report: \(directory)/report.html")
        let status = verdictFiles.write(
            junit: JUnitDocument(run: report),
            summary: StepSummary.markdown(report, reportPath: "\(directory)/report.html"), verdict: report.exitCode)
        print(report.verdictLine)
        throw ExitCode(status)
    }
}
