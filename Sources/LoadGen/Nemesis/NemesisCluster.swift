// The system a nemesis run attacks, started by the harness itself: the scale-out reference
// setup of `scripts/cluster.sh` (N `stockdrop serve` instances, Redis and HAProxy in front),
// with the instances reaching PostgreSQL through a `FaultProxy` so the database can hang.
//
// Start: a fresh database on the embedded cluster, the proxy on a loopback port in front of
// its socket, then `cluster.sh start N` with DATABASE_URL pointing at the proxy. Restarts go
// through the same script (`cluster.sh restart K`: same port, same instance id; `restart
// redis`), so a restarted process is configured exactly as it first was. The checker reads
// the database directly, never through the proxy.
import Engine
import Foundation

public final class NemesisCluster: Sendable {
    public let balancerURL: URL
    public let secret: String
    /// The database as the checker reads it (not through the proxy).
    public let databaseURL: String
    public let instances: Int
    let script: ClusterScript
    let proxy: FaultProxy
    let embedded: EmbeddedPostgres

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `script` is `scripts/cluster.sh` of a checkout, `binary` the `stockdrop` to serve with.
    public static func start(
        binary: String, script path: String, instances: Int, secret: String
    ) async throws -> NemesisCluster {
        let embedded = try EmbeddedPostgres()
        try embedded.start()
        let databaseURL = try await Database.prepare(
            environment: ["DATABASE_URL": try await embedded.freshDatabase("stockdrop_nemesis")])
        let proxy = try await FaultProxy.start(upstream: .unixSocket(embedded.socketPath))
        let proxied = "postgresql://postgres@127.0.0.1:\(proxy.port)/stockdrop_nemesis"
        let script = ClusterScript(
            path: path, directory: embedded.home + "/nemesis-cluster", binary: binary, secret: secret)
        do {
            // A run that died before stopping its cluster left it running: stop it first.
            _ = try? await script.run(["stop"])
            try await script.run(["start", String(instances)], databaseURL: proxied)
            guard let url = URL(string: try script.value("BALANCER_URL")) else {
                throw Failure(description: "cluster.sh wrote no balancer URL")
            }
            return NemesisCluster(
                balancerURL: url, secret: secret, databaseURL: databaseURL, instances: instances, script: script,
                proxy: proxy, embedded: embedded)
        } catch {
            _ = try? await script.run(["stop"], databaseURL: proxied)
            await proxy.stop()
            throw error
        }
    }

    private init(
        balancerURL: URL, secret: String, databaseURL: String, instances: Int, script: ClusterScript,
        proxy: FaultProxy, embedded: EmbeddedPostgres
    ) {
        self.balancerURL = balancerURL
        self.secret = secret
        self.databaseURL = databaseURL
        self.instances = instances
        self.script = script
        self.proxy = proxy
        self.embedded = embedded
    }

    /// The instance (1…N) holding the drop's lease, if any.
    public func owner(of drop: DropID) async -> Int? {
        guard
            let connection = try? await PostgresConnection.connect(
                databaseURL, applicationName: "stockdrop-nemesis", deadlines: Self.probeDeadlines)
        else { return nil }
        defer { Task { await connection.close() } }
        let row = try? await connection.query("SELECT lease_owner FROM drops WHERE id = $1", [.int64(drop)]).first
        guard let owner = try? row?.optionalString("lease_owner"), let name = owner.split(separator: "~").first,
            name.hasPrefix("s")
        else { return nil }
        return Int(name.dropFirst()).flatMap { (1...instances).contains($0) ? $0 : nil }
    }

    public func signal(instance: Int, _ signal: Int32) throws {
        let text = try String(contentsOfFile: "\(script.directory)/s\(instance).pid", encoding: .utf8)
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Failure(description: "no pid for instance s\(instance)")
        }
        guard kill(pid, signal) == 0 else {
            throw Failure(description: "kill(s\(instance), \(signal)): errno \(errno)")
        }
    }

    public func restart(instance: Int) async throws { try await script.run(["restart", String(instance)]) }

    public func killRedis() throws {
        guard let pid = pid_t(try script.value("REDIS_PID")), kill(pid, SIGKILL) == 0 else {
            throw Failure(description: "cannot kill Redis")
        }
    }

    public func restartRedis() async throws { try await script.run(["restart", "redis"]) }

    public func pauseDatabase() { proxy.pause() }
    public func resumeDatabase() { proxy.resume() }

    public func crashAndRestartDatabase() async throws {
        let embedded = self.embedded
        try await Self.offPool { try embedded.crashAndRestart() }
    }

    /// Stops the instances (each must exit 0 on SIGTERM), HAProxy and Redis, then the proxy.
    public func stop() async throws {
        defer { Task { await proxy.stop() } }
        try await script.run(["stop"])
    }

    /// Blocking work (a child process, pg_ctl) on a thread of its own: the cooperative pool
    /// has two threads here and the load run needs them.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    static let probeDeadlines = DatabaseDeadlines(
        connectSeconds: 2, statementMilliseconds: 1_000, answerMilliseconds: 2_000, acquireMilliseconds: 2_000)
}

/// `scripts/cluster.sh` with the cluster's state directory, binary and secret: every start,
/// restart and stop goes through it, so a restarted process is configured as it first was.
struct ClusterScript: Sendable {
    let path: String
    let directory: String
    let binary: String
    let secret: String

    func run(_ arguments: [String], databaseURL: String? = nil) async throws {
        var environment = ["CLUSTER_DIR": directory, "STOCKDROP_BIN": binary, "STOCKDROP_JWT_SECRET": secret]
        if let databaseURL { environment["DATABASE_URL"] = databaseURL }
        let path = self.path
        let variables = environment
        do {
            try await NemesisCluster.offPool {
                _ = try EmbeddedPostgres.execute("/bin/bash", [path] + arguments, environment: variables)
            }
        } catch {
            throw NemesisCluster.Failure(description: "cluster.sh \(arguments.joined(separator: " ")) failed: \(error)")
        }
    }

    /// A value the script wrote to its `env` file (`export NAME='value'`).
    func value(_ name: String) throws -> String {
        let text = try String(contentsOfFile: directory + "/env", encoding: .utf8)
        for line in text.split(separator: "\n") where line.hasPrefix("export \(name)=") {
            return String(line.dropFirst("export \(name)=".count)).trimmingCharacters(
                in: CharacterSet(charactersIn: "'"))
        }
        throw NemesisCluster.Failure(description: "no \(name) in \(directory)/env")
    }
}
