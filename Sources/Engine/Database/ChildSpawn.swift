// Starting another program the way this project needs it: posix_spawn, not Foundation's
// `Process`. A child that leaves a daemon behind (`pg_ctl start` and its postmaster) or runs
// for the life of a cluster (`stockdrop serve`, HAProxy, Redis) must not inherit this
// process's descriptors (Process's termination-watch pipe, NIO's sockets, a caller's pipe)
// nor a signal mask a dispatch thread blocked. So: standard input from /dev/null, output to a
// file, every other descriptor closed, the signal mask cleared and default dispositions, and
// a process group of its own.
import Foundation

public enum ChildSpawn {
    /// How a child ended.
    public enum Exit: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        /// From a `waitpid` status (WIFEXITED and friends are macros Swift does not import).
        public init(waitStatus status: Int32) {
            self = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
        }

        public var description: String {
            switch self {
            case .exited(let code): return "exit \(code)"
            case .signalled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts `executable` with `arguments` and this process's environment plus `environment`,
    /// its output (stdout and stderr) written to `outputPath` (appended when `append`), in
    /// `workingDirectory` (default: this process's). A child that runs as another user needs
    /// one it can enter: Patroni, run as `postgres` from a checkout under a root-only
    /// directory, never bootstrapped (Python's multiprocessing changes into the parent's
    /// directory and was refused).
    public static func start(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        outputPath: String, append: Bool = false, workingDirectory: String? = nil
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(
            &actions, 1, outputPath, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // After the opens: a relative output path is the caller's, not the child's directory's.
        if let workingDirectory {
            guard let changeDirectory, changeDirectory(&actions, workingDirectory) == 0 else {
                throw Failure(description: "cannot start \(executable) in \(workingDirectory)")
            }
        }
        _ = closeFrom?(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaultSignals = sigset_t()
        sigfillset(&defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        // A process group of its own: a terminal's Ctrl-C reaches this process alone, which
        // then stops its children in order (instances drain before the balancer goes).
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, added in added }
        let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard spawned == 0 else {
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// How a program that ran to its end ended, and what it printed (stdout and stderr).
    public struct Outcome: Sendable {
        public let exit: Exit
        public let output: String
    }

    /// Runs `executable` to its end without holding a thread of the cooperative pool: its
    /// output goes through a file (a pipe nobody drains would stop a talkative child), and a
    /// child still running after `timeoutSeconds` is SIGKILLed.
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        timeoutSeconds: Double = 120
    ) async throws -> Outcome {
        try await OffPool.run {
            try runToEnd(executable, arguments, environment: environment, timeoutSeconds: timeoutSeconds)
        }
    }

    /// The same, blocking the calling thread (one off the cooperative pool); with no
    /// `timeoutSeconds`, for as long as the child runs.
    public static func runToEnd(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        timeoutSeconds: Double? = nil
    ) throws -> Outcome {
        let outputPath = NSTemporaryDirectory() + "stockdrop-child-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let pid = try start(executable, arguments, environment: environment, outputPath: outputPath)
        let exit = timeoutSeconds.map { wait(for: pid, seconds: $0) } ?? wait(for: pid)
        return Outcome(exit: exit, output: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34), which Swift's Glibc module
    /// does not import: looked up once.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let closeFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: CloseFrom.self) }

    /// glibc's posix_spawn_file_actions_addchdir_np (2.29), likewise.
    private typealias ChangeDirectory =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let changeDirectory: ChangeDirectory? = dlsym(nil, "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: ChangeDirectory.self) }

    /// Waits up to `seconds` for the child `pid` to end (polling, so it can give up), then
    /// SIGKILLs and reaps it. Blocks: call it off the cooperative pool.
    public static func wait(for pid: pid_t, seconds: Double) -> Exit {
        let deadline = Date().addingTimeInterval(seconds)
        var status: Int32 = 0
        while Date() < deadline {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { return Exit(waitStatus: status) }
            if reaped < 0 && errno != EINTR { return .exited(-1) }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        return wait(for: pid)
    }

    /// Blocks until the child `pid` ends.
    public static func wait(for pid: pid_t) -> Exit {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            // ECHILD: reaped elsewhere; nothing more can be learned.
            if errno != EINTR { return .exited(-1) }
        }
        return Exit(waitStatus: status)
    }

    /// `executable` (searched in PATH when it has no slash), or nil when it is not installed.
    public static func which(_ executable: String) -> String? {
        if executable.contains("/") {
            return FileManager.default.isExecutableFile(atPath: executable) ? executable : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        return path.split(separator: ":").map { "\($0)/\(executable)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }
}
