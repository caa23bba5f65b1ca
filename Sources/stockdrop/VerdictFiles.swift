// `--junit PATH` and `--summary-md PATH` (and GitHub's GITHUB_STEP_SUMMARY): the verdict
// written where CI systems read it, for `run`, `report merge` and `check`. A path that
// cannot be written is refused before anything is sent (exit 64), not found out after a run.
import ArgumentParser
import Foundation
import LoadGen

struct VerdictFileOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Also write the verdict as JUnit XML to PATH.",
            discussion:
                "A testsuite per strategy, a testcase per invariant and per threshold; the product's broken invariants and missed thresholds are failures, the baseline's are skipped cases that carry the finding, so the job fails exactly when the exit status does."
        ), completion: .file())
    var junit: String?
    @Option(
        help: "Also append the verdict in Markdown to PATH (it is appended to $GITHUB_STEP_SUMMARY too, when set).",
        completion: .file())
    var summaryMd: String?

    var asked: Bool { junit != nil || summaryMd != nil }

    func validate() throws {
        for (flag, path) in [("--junit", junit), ("--summary-md", summaryMd)] {
            if let path, let problem = Self.whyUnwritable(path) { throw ValidationError("\(flag): \(problem)") }
        }
    }

    /// Writes what was asked for. A file that could not be written is said on standard error;
    /// the exit status to end with is returned: the verdict's, or 74 when the verdict passed
    /// but a file CI reads is missing.
    func write(
        junit document: @autoclosure () -> JUnitDocument, summary: @autoclosure () -> String, verdict: Int32
    )
        -> Int32
    {
        var failed = false
        if let junit {
            failed = !Self.write(Data(document().xml.utf8), to: junit, appending: false) || failed
        }
        let environment = ProcessInfo.processInfo.environment["GITHUB_STEP_SUMMARY"].flatMap { $0.isEmpty ? nil : $0 }
        var summaries = [summaryMd].compactMap { $0 }
        if let environment, environment != summaryMd { summaries.append(environment) }
        if !summaries.isEmpty {
            let text = summary()
            for path in summaries {
                // GITHUB_STEP_SUMMARY is the runner's file: a problem with it is warned of,
                // not a reason to fail a run that passed.
                let wrote = Self.write(Data((text + "\n").utf8), to: path, appending: true)
                if path == summaryMd { failed = !wrote || failed }
            }
        }
        return verdict == ExitStatus.pass && failed ? ExitStatus.cannotWrite : verdict
    }

    static func write(_ data: Data, to path: String, appending: Bool) -> Bool {
        do {
            if appending, FileManager.default.fileExists(atPath: path) {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                defer { try? handle.close() }
                try handle.seekToEnd()
                try handle.write(contentsOf: data)
            } else {
                try data.write(to: URL(fileURLWithPath: path))
            }
            return true
        } catch {
            FileHandle.standardError.write(Data("could not write \(path): \(error)\n".utf8))
            return false
        }
    }

    /// Why `path` cannot be written, or nil when it can: an existing file must be writable,
    /// a new one needs a writable directory.
    static func whyUnwritable(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return "\(path) is a directory" }
            return access(path, W_OK) == 0 ? nil : "\(path) is not writable"
        }
        let parent = (path as NSString).deletingLastPathComponent
        let directory = parent.isEmpty ? "." : parent
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue
        else { return "the directory \(directory) does not exist" }
        return access(directory, W_OK) == 0 ? nil : "the directory \(directory) is not writable"
    }
}
