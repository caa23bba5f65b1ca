// The throwaway PostgreSQL cluster used when DATABASE_URL is unset: initdb'd once under
// `.stockdrop/postgres`, listening only on a Unix socket inside its own data directory, and
// reused by every later command (the test suites have one of their own beside it,
// `.stockdrop/postgres-tests`). initdb and pg_ctl refuse to run as root, so as root they run
// as the `postgres` user, which must be able to reach the data directory.
import Foundation

public struct EmbeddedPostgres: Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case serverBinariesMissing
        case command(String, status: Int32, output: String)
        case unusableDirectory(String)

        public var description: String {
            switch self {
            case .serverBinariesMissing:
                // Said where DATABASE_URL was unset (the embedded cluster stands in for it):
                // in the container image, which has no PostgreSQL, the variable is the answer.
                if let override = ProcessInfo.processInfo.environment["STOCKDROP_PG_BIN"] {
                    return
                        "DATABASE_URL is not set, and STOCKDROP_PG_BIN=\(override) holds no initdb and pg_ctl for the embedded PostgreSQL used instead: set DATABASE_URL, or point STOCKDROP_PG_BIN at PostgreSQL's server binaries"
                }
                return
                    "DATABASE_URL is not set, and the embedded PostgreSQL used instead is not installed here (initdb, pg_ctl not found): set DATABASE_URL to your database, or install the server binaries with `apt-get install -y postgresql`"
            case .command(let command, let status, let output):
                return "`\(command)` failed with status \(status):\n\(output)"
            case .unusableDirectory(let reason):
                return reason
            }
        }
    }

    /// Where the cluster's files live (`…/postgres`); also its socket directory.
    public let dataDirectory: String
    /// Set when the data directory had to move to the temporary directory, saying why.
    public let relocationNote: String?
    let binDirectory: String
    /// The directory holding the cluster's data directory and whatever else runs beside it.
    public let home: String

    /// The unix socket file name for the default port must fit sockaddr_un (108 bytes).
    static let maxSocketPathBytes = 100
    static let port = 5432

    /// What the cluster is for.
    public enum Purpose: Sendable {
        /// The commands' cluster (`db start`, the demo, the load runs): durable, so the figures
        /// it gives are those of a database that syncs its writes.
        case commands
        /// The test suites' own cluster beside it, without fsync. Tests drop and create a
        /// database per suite, about a hundred a run, and each DROP DATABASE forces a
        /// checkpoint: with fsync one of them synced 26,095 files in 30.5 s here, and the
        /// statements waiting behind it ran out their 30 s timeout. What a crash of PostgreSQL
        /// (not of the host) must keep is in the operating system's cache either way, so the
        /// crash-and-restart tests still mean what they say.
        case tests
    }

    /// The settings the cluster starts with, besides where it listens.
    let purposeSettings: [String]

    /// Resolves the directories for the checkout at `checkout` (default: current directory).
    public init(checkout: String = FileManager.default.currentDirectoryPath, purpose: Purpose = .commands) throws {
        guard let binDirectory = Self.findServerBinaries() else { throw Failure.serverBinariesMissing }
        self.binDirectory = binDirectory
        let cluster: String
        switch purpose {
        case .commands:
            cluster = "postgres"
            purposeSettings = []
        case .tests:
            cluster = "postgres-tests"
            purposeSettings = ["-c fsync=off"]
        }
        let preferred = (checkout as NSString).appendingPathComponent(".stockdrop")
        let reason = Self.whyUnusable(home: preferred, cluster: cluster)
        if let reason {
            let hash = Self.fnv1a(checkout)
            home = (NSTemporaryDirectory() as NSString).appendingPathComponent("stockdrop-\(String(hash, radix: 16))")
            relocationNote = "data directory kept under \(home) because \(reason)"
        } else {
            home = preferred
            relocationNote = nil
        }
        dataDirectory = (home as NSString).appendingPathComponent(cluster)
    }

    /// A libpq URL for `database` on this cluster's socket.
    /// The Unix socket the cluster listens on (it listens on no TCP port).
    public var socketPath: String { dataDirectory + "/.s.PGSQL.\(Self.port)" }

    public func url(database: String = Defaults.databaseName) -> String {
        let host =
            dataDirectory.addingPercentEncoding(
                withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "/-._~"))) ?? dataDirectory
        return "postgresql://postgres@/\(database)?host=\(host)&port=\(Self.port)"
    }

    public var isRunning: Bool {
        (try? run(pgCommand("pg_ctl"), ["-D", dataDirectory, "status"])) != nil
    }

    /// Initializes the cluster if needed and starts it if it is not running. Safe to call from
    /// several processes at once: they serialize on a lock file. initdb, pg_ctl and the lock
    /// block, so all of it runs off the cooperative pool.
    public func start() async throws {
        try await OffPool.run { try startBlocking() }
    }

    public func stop() async throws {
        try await OffPool.run { try stopBlocking() }
    }

    /// A crash and a restart: `-m immediate` cuts every connection and skips the checkpoint,
    /// so the start replays the WAL. What was committed must survive it (the nemesis's
    /// `restart-postgres`).
    public func crashAndRestart() async throws {
        try await OffPool.run {
            if isRunning { try run(pgCommand("pg_ctl"), ["-D", dataDirectory, "-m", "immediate", "-w", "stop"]) }
            try startBlocking()
        }
    }

    private func startBlocking() throws {
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try withLockFile {
            if !FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") {
                try initialize()
            }
            guard !isRunning else { return }
            let options =
                ([
                    "-c listen_addresses=''",
                    "-c unix_socket_directories='\(dataDirectory)'",
                    "-c port=\(Self.port)",
                    "-c max_connections=\(Defaults.embeddedMaxConnections)",
                    "-c shared_buffers=256MB",
                ] + purposeSettings).joined(separator: " ")
            try run(
                pgCommand("pg_ctl"),
                [
                    "-D", dataDirectory, "-l", dataDirectory + "/server.log", "-w", "-t", "60", "-o", options, "start",
                ])
        }
    }

    private func stopBlocking() throws {
        guard isRunning else { return }
        try run(pgCommand("pg_ctl"), ["-D", dataDirectory, "-m", "fast", "-w", "stop"])
    }

    /// Creates `name` unless it exists.
    public func ensureDatabase(_ name: String) async throws {
        let admin = try await PostgresConnection.connect(url(database: "postgres"))
        defer { Task { await admin.close() } }
        let exists = try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [.text(name)])
        if exists.isEmpty {
            do {
                try await admin.execute("CREATE DATABASE \(Self.quoted(name))")
            } catch let error as PostgresError where error.sqlState == "42P04" {
                // Created by a concurrent process between our check and our CREATE: fine.
            }
        }
    }

    /// Drops and recreates `name`, returning its URL: each test suite's database of its own.
    public func freshDatabase(_ name: String) async throws -> String {
        try await Database.fresh(name, onServerOf: url(database: "postgres"))
    }

    // MARK: - Private

    private func initialize() throws {
        let manager = FileManager.default
        if manager.fileExists(atPath: dataDirectory) { try manager.removeItem(atPath: dataDirectory) }
        try manager.createDirectory(
            atPath: dataDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        if Self.isRoot, let user = getpwnam("postgres") {
            guard chown(dataDirectory, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                throw Failure.unusableDirectory("cannot hand \(dataDirectory) to the postgres user (errno \(errno))")
            }
        }
        try run(
            pgCommand("initdb"),
            [
                "-D", dataDirectory, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale",
                "--no-instructions",
            ])
    }

    private func withLockFile(_ body: () throws -> Void) throws {
        let path = home + "/start.lock"
        // O_CLOEXEC: the postmaster started under this lock must not inherit (and keep) it.
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failure.unusableDirectory("cannot open \(path) (errno \(errno))") }
        defer { close(descriptor) }
        flock(descriptor, LOCK_EX)
        defer { flock(descriptor, LOCK_UN) }
        try body()
    }

    private func pgCommand(_ name: String) -> String { binDirectory + "/" + name }

    /// Runs a server binary, as the postgres user when we are root.
    @discardableResult
    private func run(_ executable: String, _ arguments: [String]) throws -> String {
        if Self.isRoot {
            return try Self.execute(Self.runuser, ["-u", "postgres", "--", executable] + arguments)
        }
        return try Self.execute(executable, arguments)
    }

    static var isRoot: Bool { geteuid() == 0 }

    static var runuser: String {
        ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "runuser"
    }

    /// Runs a command to completion with its output in a file (`ChildSpawn`: `pg_ctl start`
    /// leaves a daemon that must not inherit this process's descriptors, or the wait would never
    /// end). `environment` is added to this process's own. Blocks: only for the paths above,
    /// which run off the cooperative pool.
    @discardableResult
    static func execute(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> String {
        let outcome: ChildSpawn.Outcome
        do {
            outcome = try ChildSpawn.runToEnd(executable, arguments, environment: environment)
        } catch {
            throw Failure.command(executable, status: 127, output: "\(error)")
        }
        let (exit, text) = (outcome.exit, outcome.output)
        guard exit == .exited(0) else {
            let status: Int32
            switch exit {
            case .exited(let code): status = code
            case .signalled(let signal): status = -signal
            }
            throw Failure.command(([executable] + arguments).joined(separator: " "), status: status, output: text)
        }
        return text
    }

    /// The newest installed PostgreSQL's server binaries (`STOCKDROP_PG_BIN` overrides), or nil
    /// when there are none (an override without them counts as none).
    public static func findServerBinaries() -> String? {
        func installed(_ directory: String) -> Bool {
            FileManager.default.isExecutableFile(atPath: directory + "/pg_ctl")
                && FileManager.default.isExecutableFile(atPath: directory + "/initdb")
        }
        if let override = ProcessInfo.processInfo.environment["STOCKDROP_PG_BIN"] {
            return installed(override) ? override : nil
        }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap(Int.init).sorted(by: >).lazy.map { "\(root)/\($0)/bin" }.first(where: installed)
    }

    /// Why `home` cannot hold the cluster, or nil when it can.
    static func whyUnusable(home: String, cluster: String) -> String? {
        let socketPath = home + "/\(cluster)/.s.PGSQL.\(port)"
        if socketPath.utf8.count > maxSocketPathBytes {
            return "the socket path under the checkout would exceed \(maxSocketPathBytes) bytes"
        }
        guard isRoot else { return nil }
        // The postgres user needs to traverse every directory up to the data directory.
        let parent = (home as NSString).deletingLastPathComponent
        if (try? execute(runuser, ["-u", "postgres", "--", "test", "-x", parent])) == nil {
            return "the postgres user cannot enter \(parent)"
        }
        return nil
    }

    static func quoted(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A stable short hash of a path (FNV-1a), for names derived from it.
    public static func fnv1a(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }
}
