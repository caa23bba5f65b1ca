// One process a local cluster runs (an instance, HAProxy, Redis): started with `ChildSpawn`,
// its output appended to a log file, and a thread of its own waiting for its end, so its exit
// status is known the moment it ends (a SIGTERMed instance must exit 0) and it is never left a
// zombie. Every process is started with STOCKDROP_CLUSTER_DIR in its environment, which is how
// a later start recognises what a harness that died left running (`ClusterDirectory.reapStale`).
import Dispatch
import Engine
import Foundation
import Synchronization

final class SupervisedProcess: Sendable {
    let name: String
    let pid: pid_t
    let logPath: String
    private let end = Mutex<ChildSpawn.Exit?>(nil)

    /// What a stop found.
    enum Stop: Sendable, Equatable, CustomStringConvertible {
        case exited(ChildSpawn.Exit)
        /// Still running after the bound: killed, its threads' stacks (gdb) in the file.
        case killedAfter(seconds: Double, stacks: String?)

        var clean: Bool { self == .exited(.exited(0)) }

        var description: String {
            switch self {
            case .exited(let exit): return exit.description
            case .killedAfter(let seconds, let stacks):
                return "still running \(Int(seconds)) s after SIGTERM, killed"
                    + (stacks.map { "; thread stacks in \($0)" } ?? "")
            }
        }
    }

    init(
        name: String, executable: String, arguments: [String], environment: [String: String], logPath: String,
        workingDirectory: String? = nil
    )
        throws
    {
        let header =
            "--- \(ISO8601DateFormatter().string(from: Date())) \(([executable] + arguments).joined(separator: " "))\n"
        if let handle = FileHandle(forWritingAtPath: logPath) {
            handle.seekToEndOfFile()
            handle.write(Data(header.utf8))
            try? handle.close()
        } else {
            _ = FileManager.default.createFile(atPath: logPath, contents: Data(header.utf8))
        }
        self.name = name
        self.logPath = logPath
        self.pid = try ChildSpawn.start(
            executable, arguments, environment: environment, outputPath: logPath, append: true,
            workingDirectory: workingDirectory)
        Thread.detachNewThread { [self] in
            let exit = ChildSpawn.wait(for: pid)
            end.withLock { $0 = exit }
        }
    }

    /// How it ended; nil while it runs.
    var exit: ChildSpawn.Exit? { end.withLock { $0 } }
    var running: Bool { exit == nil }

    func signal(_ signal: Int32) {
        guard running else { return }
        kill(pid, signal)
    }

    /// Waits up to `seconds` for its end, cancelled or not (a stop after a cancelled start
    /// must still wait its bound, without spinning).
    func waitForExit(seconds: Double) async -> ChildSpawn.Exit? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let exit { return exit }
            await withCheckedContinuation { continuation in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { continuation.resume() }
            }
        }
        return exit
    }

    /// `signal` (nil: the caller sent it already), then waits up to `seconds`; past that, its
    /// stacks for whoever reads why it hung, and SIGKILL.
    func stop(signal: Int32? = SIGTERM, seconds: Double) async -> Stop {
        if let exit { return .exited(exit) }
        if let signal { kill(pid, signal) }
        kill(pid, SIGCONT)  // a stopped process (a test's SIGSTOP) would handle nothing
        if let exit = await waitForExit(seconds: seconds) { return .exited(exit) }
        let (pid, path) = (self.pid, logPath.replacingOccurrences(of: ".log", with: ".stacks"))
        let stacks = await OffPool.run { Self.stacks(of: pid, into: path) }
        kill(pid, SIGKILL)
        _ = await waitForExit(seconds: 5)
        return .killedAfter(seconds: seconds, stacks: stacks)
    }

    /// The last `count` lines of its log.
    func logTail(_ count: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }

    /// Every thread's backtrace (gdb, when installed, 30 s at most), written to `path`.
    private static func stacks(of pid: pid_t, into path: String) -> String? {
        guard let gdb = ChildSpawn.which("gdb"),
            let tracer = try? ChildSpawn.start(
                gdb, ["-p", String(pid), "-batch", "-ex", "thread apply all bt"], outputPath: path)
        else { return nil }
        _ = ChildSpawn.wait(for: tracer, seconds: 30)
        return path
    }
}
