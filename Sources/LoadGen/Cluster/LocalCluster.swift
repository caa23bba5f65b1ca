// The scale-out reference setup on this machine, as one value the harness and the tests hold:
// N `stockdrop serve` instances on one PostgreSQL (any URL the caller gives: the nemesis puts
// its fault proxy there), one Redis on a Unix socket, and HAProxy in front with the
// configuration rendered from `deploy/haproxy.cfg`, all on free loopback ports. It starts them,
// signals them (SIGKILL, SIGSTOP and SIGCONT: the faults), restarts one on its own port under
// its own name, and stops them, checking that every instance exits 0 on SIGTERM.
//
// The processes are this process's children; their logs and the balancer's configuration are
// in the state directory. A harness that died without stopping them leaves them running: the
// next start in the same directory kills them first (`ClusterDirectory`).
import Engine
import Foundation
import NIOHTTP1
import Synchronization

public struct LocalClusterOptions: Sendable {
    /// The `stockdrop` binary the instances run.
    public var binary: String
    public var instances: Int
    /// What the instances connect to (migrated already).
    public var databaseURL: String
    public var secret: String
    /// Logs, the rendered balancer configuration, Redis's socket.
    public var directory: String
    /// `deploy/haproxy.cfg` of a checkout.
    public var haproxyTemplate: String
    /// `--lease-ms` for every instance (nil: the server's default).
    public var leaseMilliseconds: Int?
    /// More `stockdrop serve` options, after the cluster's own.
    public var serveArguments: [String]

    public init(
        binary: String, instances: Int, databaseURL: String, secret: String, directory: String,
        haproxyTemplate: String, leaseMilliseconds: Int? = nil, serveArguments: [String] = []
    ) {
        self.binary = binary
        self.instances = instances
        self.databaseURL = databaseURL
        self.secret = secret
        self.directory = directory
        self.haproxyTemplate = haproxyTemplate
        self.leaseMilliseconds = leaseMilliseconds
        self.serveArguments = serveArguments
    }
}

public final class LocalCluster: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let options: LocalClusterOptions
    public let balancerURL: URL
    public let instancePorts: [Int]
    public let redisURL: String
    private let processes: Mutex<[String: SupervisedProcess]>
    /// Instances this harness signalled itself since their start (a fault): their end is
    /// expected. Any other instance found ended at the stop crashed on its own.
    private let signalled = Mutex<Set<String>>([])
    /// The directory's lock, held from start to stop.
    private let lock: Int32

    /// How long an instance's first /ready may take (it migrates and warms up), and how long
    /// SIGTERM may take (it drains accepted requests and batches in flight).
    static let readySeconds = 60.0
    static let stopSeconds = 30.0

    public var instanceURLs: [URL] { instancePorts.map { URL(string: "http://127.0.0.1:\($0)")! } }
    public var instanceNames: [String] { (1...options.instances).map(Self.name(ofInstance:)) }
    /// The instances' lease: the option, else a `--lease-ms` among the serve arguments, else
    /// the server's default.
    public var leaseMilliseconds: Int {
        if let lease = options.leaseMilliseconds { return lease }
        let arguments = options.serveArguments
        for (index, argument) in arguments.enumerated() {
            if argument == "--lease-ms", index + 1 < arguments.count, let lease = Int(arguments[index + 1]) {
                return lease
            }
            if argument.hasPrefix("--lease-ms="), let lease = Int(argument.dropFirst("--lease-ms=".count)) {
                return lease
            }
        }
        return Defaults.leaseMilliseconds
    }

    public static func name(ofInstance instance: Int) -> String { "s\(instance)" }

    /// The instance (1…N) a lease owner (`s2~k3j9…`) is an incarnation of.
    public func instance(owning owner: String) -> Int? {
        let name = LeaseOwner.name(ofIncarnation: owner)
        return instanceNames.firstIndex(of: name).map { $0 + 1 }
    }

    public static func start(_ options: LocalClusterOptions) async throws -> LocalCluster {
        precondition((1...99).contains(options.instances), "a local cluster has 1 to 99 instances")
        for tool in ["redis-server", "redis-cli", "haproxy"] where ChildSpawn.which(tool) == nil {
            throw Failure(description: "\(tool) is missing (scripts/setup.sh installs it)")
        }
        guard FileManager.default.isExecutableFile(atPath: options.binary) else {
            throw Failure(description: "no stockdrop binary at \(options.binary)")
        }
        let template: String
        do {
            template = try String(contentsOfFile: options.haproxyTemplate, encoding: .utf8)
        } catch {
            throw Failure(description: "cannot read the balancer's template \(options.haproxyTemplate): \(error)")
        }
        let directory = options.directory
        let lock = try await ClusterDirectory.claim(directory)
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where file.hasSuffix(".log") || file.hasSuffix(".stacks")
            || ["haproxy.cfg", "redis.sock", "env"].contains(file)
        {
            try? FileManager.default.removeItem(atPath: directory + "/" + file)
        }
        let socket = directory + "/redis.sock"
        guard socket.utf8.count < 100 else {
            throw Failure(description: "the Redis socket path \(socket) is too long for a Unix socket")
        }
        let ports: [Int]
        do {
            ports = try ClusterDirectory.freeLoopbackPorts(options.instances + 1)
        } catch {
            close(lock)
            throw error
        }
        let cluster = LocalCluster(
            options: options, balancerPort: ports[0], instancePorts: Array(ports.dropFirst()), redisSocket: socket,
            lock: lock)
        do {
            try await cluster.startRedis()
            for instance in 1...options.instances { try cluster.launch(instance: instance) }
            // Their first starts overlap: each waits for the others' migrations (an advisory lock).
            for instance in 1...options.instances { try await cluster.waitReady(instance: instance) }
            try await cluster.startBalancer(template: template)
            return cluster
        } catch {
            try? await cluster.stop()
            throw error
        }
    }

    private init(
        options: LocalClusterOptions, balancerPort: Int, instancePorts: [Int], redisSocket: String, lock: Int32
    ) {
        self.options = options
        self.lock = lock
        self.balancerURL = URL(string: "http://127.0.0.1:\(balancerPort)")!
        self.instancePorts = instancePorts
        self.redisURL = "unix://" + redisSocket
        self.processes = Mutex([:])
    }

    // MARK: faults and restarts

    public func pid(ofInstance instance: Int) -> pid_t? { process(Self.name(ofInstance: instance))?.pid }

    public func isRunning(instance: Int) -> Bool { process(Self.name(ofInstance: instance))?.running ?? false }

    /// SIGKILL, SIGSTOP, SIGCONT…
    public func signal(instance: Int, _ signal: Int32) throws {
        let name = Self.name(ofInstance: instance)
        guard let process = process(name), process.running else {
            throw Failure(description: "instance \(name) is not running")
        }
        signalled.withLock { _ = $0.insert(name) }
        process.signal(signal)
    }

    /// The instance gone at once (SIGKILL): its leases lapse, its sockets drop.
    public func kill(instance: Int) throws { try signal(instance: instance, SIGKILL) }

    /// The instance frozen (SIGSTOP): its connections stay open and answer nothing.
    public func pause(instance: Int) throws { try signal(instance: instance, SIGSTOP) }

    /// A paused instance running again (SIGCONT).
    public func resume(instance: Int) throws { try signal(instance: instance, SIGCONT) }

    /// Stops the instance if it runs (it must exit 0 on SIGTERM), then starts it again on its
    /// port under its name, and waits until it is ready.
    public func restart(instance: Int) async throws {
        let name = Self.name(ofInstance: instance)
        if let process = process(name), process.running {
            let stop = await process.stop(seconds: Self.stopSeconds)
            guard stop.clean else {
                throw Failure(description: "\(name) did not shut down cleanly: \(stop)\n\(process.logTail())")
            }
        }
        signalled.withLock { _ = $0.remove(name) }
        try launch(instance: instance)
        try await waitReady(instance: instance)
    }

    public func killRedis() throws {
        guard let redis = process("redis"), redis.running else { throw Failure(description: "Redis is not running") }
        redis.signal(SIGKILL)
    }

    /// Starts Redis again on its socket; the instances resubscribe on their own.
    public func restartRedis() async throws {
        if let redis = process("redis"), redis.running { _ = await redis.stop(seconds: 10) }
        try await startRedis()
    }

    /// SIGTERM to every running instance at once, then each must exit 0 within its bound; then
    /// HAProxy and Redis. Throws, naming each instance that did not shut down cleanly (with its
    /// last log lines), once everything is stopped.
    public func stop() async throws {
        defer { close(lock) }
        let instances = instanceNames.compactMap { process($0) }
        let running = instances.filter(\.running)
        for process in running { process.signal(SIGTERM) }
        var unclean: [String] = []
        let faulted = signalled.withLock { $0 }
        for process in instances where !process.running && !faulted.contains(process.name) {
            unclean.append("\(process.name) ended on its own before the stop (\(process.exit!))\n\(process.logTail())")
        }
        for process in running {
            let stop = await process.stop(signal: nil, seconds: Self.stopSeconds)
            if !stop.clean {
                unclean.append("\(process.name) did not shut down cleanly after SIGTERM: \(stop)\n\(process.logTail())")
            }
        }
        for name in ["haproxy", "redis"] {
            if let process = process(name), process.running { _ = await process.stop(seconds: 10) }
        }
        try? FileManager.default.removeItem(atPath: options.directory + "/redis.sock")
        guard unclean.isEmpty else { throw Failure(description: unclean.joined(separator: "\n")) }
    }

    /// Sourceable by a shell (`. DIR/env`): what scripts need to reach the cluster.
    public var environmentFile: String {
        let values: [(String, String)] = [
            ("BALANCER_URL", balancerURL.absoluteString),
            ("INSTANCE_URLS", instanceURLs.map(\.absoluteString).joined(separator: " ")),
            ("INSTANCE_IDS", instanceNames.joined(separator: " ")),
            (
                "INSTANCE_PIDS",
                (1...options.instances).map { pid(ofInstance: $0).map(String.init) ?? "" }.joined(separator: " ")
            ),
            ("DATABASE_URL", options.databaseURL), ("REDIS_URL", redisURL), ("STOCKDROP_JWT_SECRET", options.secret),
            ("LEASE_MS", String(leaseMilliseconds)),
        ]
        return values.map { "export \($0.0)='\($0.1.replacingOccurrences(of: "'", with: "'\\''"))'\n" }.joined()
    }

    // MARK: starting the pieces

    private func process(_ name: String) -> SupervisedProcess? { processes.withLock { $0[name] } }

    private func supervise(_ name: String, _ executable: String, _ arguments: [String]) throws {
        let process = try SupervisedProcess(
            name: name, executable: executable, arguments: arguments,
            environment: [
                "DATABASE_URL": options.databaseURL, "REDIS_URL": redisURL, "STOCKDROP_JWT_SECRET": options.secret,
                ClusterDirectory.variable: options.directory,
            ],
            logPath: options.directory + "/\(name).log")
        processes.withLock { $0[name] = process }
    }

    private func launch(instance: Int) throws {
        let port = instancePorts[instance - 1]
        var arguments = [
            "serve", "--strategy", "actor", "--no-rate-limit", "--log-level", "notice", "--port", String(port),
            // HAProxy on loopback adds X-Forwarded-For; trusted, so client addresses are the clients'.
            "--trusted-proxies", "127.0.0.1", "--instance-id", Self.name(ofInstance: instance),
            "--advertise-url", "http://127.0.0.1:\(port)",
        ]
        if let lease = options.leaseMilliseconds { arguments += ["--lease-ms", String(lease)] }
        try supervise(Self.name(ofInstance: instance), options.binary, arguments + options.serveArguments)
    }

    private func waitReady(instance: Int) async throws {
        let name = Self.name(ofInstance: instance)
        try await waitReady(name: name, url: instanceURLs[instance - 1])
        try await waitRegistered(name: name, address: instanceURLs[instance - 1].absoluteString)
    }

    /// Until the instance is in the instance directory under its name, with its address and a
    /// fresh heartbeat: what another instance forwarding to it reads. It registers before it
    /// listens, so this normally returns at once; it is the check that it did.
    private func waitRegistered(name: String, address: String) async throws {
        let deadline = Date().addingTimeInterval(10)
        var found = 0
        while Date() < deadline {
            if let connection = try? await PostgresConnection.connect(
                options.databaseURL, applicationName: "stockdrop-cluster", deadlines: Self.probeDeadlines)
            {
                found =
                    (try? await connection.query(
                        """
                        SELECT count(*) AS n FROM stockdrop_instances
                        WHERE split_part(id, '~', 1) = $1 AND address = $2
                          AND heartbeat_at > clock_timestamp() - interval '5 seconds'
                        """, [.text(name), .text(address)]
                    ).first?.int("n")) ?? 0
                await connection.close()
            }
            if found > 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "\(name) answered /ready but is not in stockdrop_instances at \(address) after 10 s")
    }

    static let probeDeadlines = DatabaseDeadlines(
        connectSeconds: 2, statementMilliseconds: 1_000, answerMilliseconds: 2_000, acquireMilliseconds: 2_000)

    /// Until GET URL/ready answers 200; fails when the process ends or the time runs out.
    private func waitReady(name: String, url: URL) async throws {
        let pool = HTTPConnectionPool(
            host: "127.0.0.1", port: url.port ?? 80, connections: 1, timeoutMilliseconds: 2_000, eventLoopThreads: 1)
        defer { Task { await pool.close() } }
        let deadline = Date().addingTimeInterval(Self.readySeconds)
        var last = "no answer"
        while Date() < deadline {
            if let reply = try? await pool.send(method: .GET, path: "/ready") {
                if reply.status == 200 { return }
                last = "\(reply.status)"
            }
            if let process = process(name), let exit = process.exit {
                throw Failure(
                    description: "\(name) ended (\(exit)) before \(url)/ready answered 200\n\(process.logTail())")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw Failure(
            description: "\(name): \(url)/ready answered \(last), not 200, for \(Int(Self.readySeconds)) s\n"
                + (process(name)?.logTail() ?? ""))
    }

    private func startRedis() async throws {
        let socket = String(redisURL.dropFirst("unix://".count))
        try? FileManager.default.removeItem(atPath: socket)
        try supervise(
            "redis", ChildSpawn.which("redis-server")!,
            [
                "--port", "0", "--unixsocket", socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                "--dir", options.directory, "--daemonize", "no",
            ])
        let cli = ChildSpawn.which("redis-cli")!
        for _ in 0..<100 {
            let answer = try? await ChildSpawn.run(cli, ["-s", socket, "ping"], timeoutSeconds: 5)
            if answer?.exit == .exited(0), answer?.output.hasPrefix("PONG") == true { return }
            if let redis = process("redis"), let exit = redis.exit {
                throw Failure(description: "redis-server ended (\(exit))\n\(redis.logTail())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure(description: "Redis did not answer on \(socket)\n\(process("redis")?.logTail() ?? "")")
    }

    private func startBalancer(template: String) async throws {
        let configuration = try HAProxyConfig.render(
            template: template, frontendPort: balancerURL.port!, instancePorts: instancePorts)
        let path = options.directory + "/haproxy.cfg"
        try configuration.write(toFile: path, atomically: true, encoding: .utf8)
        let haproxy = ChildSpawn.which("haproxy")!
        let check = try await ChildSpawn.run(haproxy, ["-c", "-q", "-f", path], timeoutSeconds: 30)
        guard check.exit == .exited(0) else {
            throw Failure(description: "haproxy rejected \(path) (\(check.exit)): \(check.output)")
        }
        // -db: the foreground, so its log (`log stdout`) goes to haproxy.log.
        try supervise("haproxy", haproxy, ["-db", "-f", path])
        try await waitReady(name: "haproxy", url: balancerURL)
    }
}
