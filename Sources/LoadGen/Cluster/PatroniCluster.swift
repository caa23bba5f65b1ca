// PostgreSQL that fails over, on this machine: etcd, three PostgreSQL nodes managed by Patroni
// (synchronous replication in strict mode: a commit is acknowledged once a standby has it, and
// none is acknowledged while no standby does), and HAProxy in front on one port, sending
// connections to whichever node Patroni's REST API says is the primary (`OPTIONS /primary`) and
// cutting the sessions of a node it marks down. All from Debian packages; the nodes run as the
// `postgres` user (initdb refuses root). A fresh cluster at every start, state in a directory
// of its own (`ClusterDirectory`: one harness at a time, leftovers of a dead one reaped).
//
// Faults: `killLeader` SIGKILLs the primary's Patroni, its postmaster and every backend (a
// machine that vanished: the others wait out the leader key's TTL, then promote the
// synchronous standby); `restart(node:)` starts a killed node again (it rejoins as a replica,
// rewound if it must be); `switchover` asks Patroni for a planned change of primary.
import Engine
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

public struct PatroniClusterOptions: Sendable {
    public var directory: String
    public var nodes: Int
    /// synchronous_mode and synchronous_mode_strict: no acknowledged commit is lost at a
    /// failover; false gives asynchronous replication (faster, may lose the last commits).
    public var synchronous: Bool
    /// Patroni's leader key TTL, its loop and its DCS retry, in seconds: the TTL mostly decides
    /// how long a dead primary goes unnoticed.
    public var ttlSeconds: Int
    public var loopWaitSeconds: Int
    public var retryTimeoutSeconds: Int

    public init(
        directory: String, nodes: Int = 3, synchronous: Bool = true, ttlSeconds: Int = 10, loopWaitSeconds: Int = 2,
        retryTimeoutSeconds: Int = 3
    ) {
        self.directory = directory
        self.nodes = nodes
        self.synchronous = synchronous
        self.ttlSeconds = ttlSeconds
        self.loopWaitSeconds = loopWaitSeconds
        self.retryTimeoutSeconds = retryTimeoutSeconds
    }
}

public final class PatroniCluster: Sendable {
    public let options: PatroniClusterOptions
    /// HAProxy's port: always the primary.
    public let port: Int
    let etcdPorts: (client: Int, peer: Int)
    let postgresPorts: [Int]
    let restPorts: [Int]
    private let processes = Mutex<[String: SupervisedProcess]>([:])
    private let lock: Int32
    /// One client per node's REST API for the life of the cluster (the promotion watcher asks
    /// several times a second).
    private let restClients: [HTTPConnectionPool]

    static let readySeconds = 120.0

    public static func nodeName(_ node: Int) -> String { "pg\(node)" }

    /// A database through HAProxy (the primary, wherever it is).
    public func url(database: String = "postgres") -> String {
        "postgresql://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    public static func start(_ options: PatroniClusterOptions) async throws -> PatroniCluster {
        precondition((2...9).contains(options.nodes), "a failover cluster has 2 to 9 nodes")
        for tool in ["etcd", "patroni", "haproxy"] where ChildSpawn.which(tool) == nil {
            throw LocalCluster.Failure(
                description: "\(tool) is missing (scripts/setup.sh installs it: etcd-server, patroni, haproxy)")
        }
        guard let binaries = EmbeddedPostgres.findServerBinaries() else {
            throw LocalCluster.Failure(
                description: "PostgreSQL server binaries are missing (Debian package postgresql)")
        }
        let directory = options.directory
        let lock = try await ClusterDirectory.claim(directory)
        let ports: [Int]
        do {
            // A fresh cluster: last start's data, DCS and logs go.
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where entry != "lock" {
                try? FileManager.default.removeItem(atPath: directory + "/" + entry)
            }
            try Self.handToPostgres(directory)
            ports = try ClusterDirectory.freeLoopbackPorts(3 + 2 * options.nodes)
        } catch {
            close(lock)
            throw error
        }
        let cluster = PatroniCluster(
            options: options, port: ports[0], etcdPorts: (ports[1], ports[2]),
            postgresPorts: Array(ports[3..<(3 + options.nodes)]), restPorts: Array(ports[(3 + options.nodes)...]),
            lock: lock)
        do {
            try cluster.startEtcd()
            try await cluster.waitForEtcd()
            for node in 1...options.nodes {
                try cluster.writeConfiguration(node: node, binaries: binaries)
                try cluster.launch(node: node)
            }
            try cluster.startBalancer()
            try await cluster.waitUntilServing()
            return cluster
        } catch {
            try? await cluster.stop()
            throw error
        }
    }

    private init(
        options: PatroniClusterOptions, port: Int, etcdPorts: (client: Int, peer: Int), postgresPorts: [Int],
        restPorts: [Int], lock: Int32
    ) {
        self.options = options
        self.port = port
        self.etcdPorts = etcdPorts
        self.postgresPorts = postgresPorts
        self.restPorts = restPorts
        self.lock = lock
        self.restClients = restPorts.map {
            HTTPConnectionPool(
                host: "127.0.0.1", port: $0, connections: 1, timeoutMilliseconds: 1_000, eventLoopThreads: 1)
        }
    }

    // MARK: what runs where

    /// The node whose Patroni says it is the leader (GET /leader answers 200), if any.
    public func leader() async -> Int? {
        for node in 1...options.nodes where await rest(node, "/leader") == 200 { return node }
        return nil
    }

    /// The leader, asked again for up to `seconds` (a Patroni slow to answer on a loaded
    /// machine is not a cluster without one).
    func leader(waitingSeconds seconds: Double) async -> Int? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if let node = await leader() { return node }
            try? await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        return nil
    }

    /// A node serving as synchronous standby (GET /sync answers 200), if any.
    public func synchronousStandby() async -> Int? {
        for node in 1...options.nodes where await rest(node, "/sync") == 200 { return node }
        return nil
    }

    public func isRunning(node: Int) -> Bool { process(Self.nodeName(node))?.running ?? false }

    // MARK: faults

    /// SIGKILL of the primary's Patroni, postmaster and backends at once, as if its machine
    /// vanished. Returns the node; it stays down until `restart(node:)`.
    public func killLeader() async throws -> Int {
        guard let node = await leader(waitingSeconds: 10), let patroni = process(Self.nodeName(node)) else {
            throw LocalCluster.Failure(description: "no leader to kill")
        }
        let data = dataDirectory(node)
        let postmaster = (try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.flatMap { pid_t($0) }
        patroni.signal(SIGKILL)
        if let postmaster {
            // Stopped first, so it forks no backend between the listing and the kill.
            kill(postmaster, SIGSTOP)
            let backends = Self.children(of: postmaster)
            kill(postmaster, SIGKILL)
            for backend in backends { kill(backend, SIGKILL) }
        }
        return node
    }

    /// Starts a node's Patroni again: it rejoins as a replica of the current primary.
    public func restart(node: Int) async throws {
        if let patroni = process(Self.nodeName(node)), patroni.running {
            _ = await patroni.stop(seconds: 30)
        }
        // The killed postmaster's pid file names a dead process: PostgreSQL starts over it.
        try launch(node: node)
        let deadline = Date().addingTimeInterval(Self.readySeconds)
        while Date() < deadline {
            if await rest(node, "/health") == 200 { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw LocalCluster.Failure(
            description: "\(Self.nodeName(node)) did not run again within \(Int(Self.readySeconds)) s\n"
                + (process(Self.nodeName(node))?.logTail() ?? ""))
    }

    /// A planned change of primary (Patroni picks the synchronous standby). Returns the old
    /// and the new leader once the new one serves.
    public func switchover() async throws -> (from: Int, to: Int) {
        guard let from = await leader(waitingSeconds: 10) else {
            throw LocalCluster.Failure(description: "no leader to switch over from")
        }
        let reply = await post(from, "/switchover", body: #"{"leader":"\#(Self.nodeName(from))"}"#)
        guard let reply, reply.status == 200 else {
            throw LocalCluster.Failure(
                description:
                    "Patroni refused the switchover: \(reply.map { "\($0.status) \(String(buffer: $0.body))" } ?? "no answer")"
            )
        }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let to = await leader(), to != from {
                // Served: clients through HAProxy can write on it.
                try await waitWritable(seconds: max(1, deadline.timeIntervalSinceNow))
                return (from, to)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LocalCluster.Failure(description: "no new leader 60 s after the switchover")
    }

    /// Until a connection through HAProxy reaches a primary that takes writes.
    public func waitWritable(seconds: Double) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no answer"
        while Date() < deadline {
            do {
                let connection = try await PostgresConnection.connect(
                    url(), applicationName: "stockdrop-ha", deadlines: LocalCluster.probeDeadlines)
                let readOnly = try? await connection.query(
                    "SELECT current_setting('transaction_read_only') AS read_only"
                ).first?.string("read_only")
                await connection.close()
                if readOnly == "off" { return }
                last = "read-only"
            } catch {
                last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw LocalCluster.Failure(description: "no writable primary through HAProxy within \(Int(seconds)) s: \(last)")
    }

    /// Every node's Patroni (which stops its PostgreSQL), then HAProxy and etcd.
    public func stop() async throws {
        defer { close(lock) }
        let nodes = (1...options.nodes).compactMap { process(Self.nodeName($0)) }.filter(\.running)
        for node in nodes { node.signal(SIGTERM) }
        var problems: [String] = []
        for node in nodes {
            let stop = await node.stop(signal: nil, seconds: 30)
            if !stop.clean && stop != .exited(.signalled(SIGTERM)) {
                problems.append("\(node.name): \(stop)\n\(node.logTail())")
            }
        }
        for name in ["haproxy", "etcd"] {
            if let process = process(name), process.running { _ = await process.stop(seconds: 10) }
        }
        for client in restClients { await client.close() }
        try? FileManager.default.removeItem(atPath: etcdDirectory)
        // A postmaster whose Patroni was killed (a fault never healed) goes too.
        try? await OffPool.run { ClusterDirectory.reapStale(directory: self.options.directory) }
        guard problems.isEmpty else { throw LocalCluster.Failure(description: problems.joined(separator: "\n")) }
    }

    // MARK: starting the pieces

    private func process(_ name: String) -> SupervisedProcess? { processes.withLock { $0[name] } }

    private func supervise(_ name: String, _ executable: String, _ arguments: [String]) throws {
        let process = try SupervisedProcess(
            name: name, executable: executable, arguments: arguments,
            environment: [ClusterDirectory.variable: options.directory], logPath: options.directory + "/\(name).log",
            // Its own directory: Patroni runs as postgres, who may not enter the caller's.
            workingDirectory: options.directory)
        processes.withLock { $0[name] = process }
    }

    private func dataDirectory(_ node: Int) -> String { options.directory + "/\(Self.nodeName(node))" }

    /// etcd's data in memory when /dev/shm exists: its fsyncs on a loaded 2-core machine would
    /// delay Patroni's leader-key renewals past its retry timeout and demote a healthy primary.
    /// The cluster is throwaway; nothing there needs to survive the machine.
    private var etcdDirectory: String {
        FileManager.default.fileExists(atPath: "/dev/shm")
            ? "/dev/shm/stockdrop-etcd-\(String(EmbeddedPostgres.fnv1a(options.directory), radix: 16))"
            : options.directory + "/etcd"
    }

    private func startEtcd() throws {
        try? FileManager.default.removeItem(atPath: etcdDirectory)
        let client = "http://127.0.0.1:\(etcdPorts.client)"
        let peer = "http://127.0.0.1:\(etcdPorts.peer)"
        try supervise(
            "etcd", ChildSpawn.which("etcd")!,
            [
                "--name", "stockdrop", "--data-dir", etcdDirectory, "--listen-client-urls", client,
                "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "stockdrop=\(peer)", "--initial-cluster-state", "new",
            ])
    }

    private func waitForEtcd() async throws {
        let pool = HTTPConnectionPool(
            host: "127.0.0.1", port: etcdPorts.client, connections: 1, timeoutMilliseconds: 1_000, eventLoopThreads: 1)
        defer { Task { await pool.close() } }
        for _ in 0..<200 {
            if (try? await pool.send(method: .GET, path: "/health"))?.status == 200 { return }
            if let etcd = process("etcd"), let exit = etcd.exit {
                throw LocalCluster.Failure(description: "etcd ended (\(exit))\n\(etcd.logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LocalCluster.Failure(description: "etcd did not answer\n\(process("etcd")?.logTail() ?? "")")
    }

    /// Patroni's configuration for one node: the DCS settings (synchronous strict mode, the
    /// TTL) bootstrap the cluster; `wal_retrieve_retry_interval` short so a standby follows a
    /// new primary sooner.
    private func writeConfiguration(node: Int, binaries: String) throws {
        let name = Self.nodeName(node)
        let synchronous = options.synchronous ? "true" : "false"
        let text = """
            scope: stockdrop
            name: \(name)
            restapi:
              listen: 127.0.0.1:\(restPorts[node - 1])
              connect_address: 127.0.0.1:\(restPorts[node - 1])
            etcd3:
              host: 127.0.0.1:\(etcdPorts.client)
            bootstrap:
              dcs:
                ttl: \(options.ttlSeconds)
                loop_wait: \(options.loopWaitSeconds)
                retry_timeout: \(options.retryTimeoutSeconds)
                maximum_lag_on_failover: 1048576
                synchronous_mode: \(synchronous)
                synchronous_mode_strict: \(synchronous)
                postgresql:
                  use_pg_rewind: true
                  parameters:
                    wal_log_hints: "on"
                    max_wal_senders: 10
                    max_replication_slots: 10
                    wal_retrieve_retry_interval: 500ms
                    max_connections: 200
              initdb:
                - encoding: UTF8
                - locale: C
              pg_hba:
                - local all all trust
                - host replication replicator 127.0.0.1/32 trust
                - host all all 127.0.0.1/32 trust
            postgresql:
              listen: 127.0.0.1:\(postgresPorts[node - 1])
              connect_address: 127.0.0.1:\(postgresPorts[node - 1])
              data_dir: \(dataDirectory(node))
              bin_dir: \(binaries)
              pgpass: \(options.directory)/\(name).pgpass
              authentication:
                replication: {username: replicator, password: replicator}
                superuser: {username: postgres, password: postgres}
                rewind: {username: postgres, password: postgres}
              parameters:
                unix_socket_directories: \(options.directory)

            """
        let path = options.directory + "/\(name).yml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try Self.handToPostgres(path)
    }

    /// Patroni as the `postgres` user when this process is root (PostgreSQL refuses root).
    private func launch(node: Int) throws {
        let patroni = ChildSpawn.which("patroni")!
        let configuration = options.directory + "/\(Self.nodeName(node)).yml"
        if getuid() == 0, let setpriv = ChildSpawn.which("setpriv") {
            try supervise(
                Self.nodeName(node), setpriv,
                ["--reuid", "postgres", "--regid", "postgres", "--init-groups", patroni, configuration])
        } else {
            try supervise(Self.nodeName(node), patroni, [configuration])
        }
    }

    /// TCP through to the node whose Patroni answers 200 to `OPTIONS /primary`; a node marked
    /// down has its sessions cut, so clients reconnect to the new primary.
    private func startBalancer() throws {
        var lines = [
            "global", "    log stdout format raw local0", "    maxconn 2048", "defaults", "    mode tcp",
            "    log global",
            "    timeout connect 1s", "    timeout client 30m", "    timeout server 30m", "    timeout check 1s",
            "frontend postgres", "    bind 127.0.0.1:\(port)", "    default_backend primary", "backend primary",
            "    option httpchk OPTIONS /primary", "    http-check expect status 200",
            "    default-server inter 500ms fastinter 250ms downinter 500ms rise 1 fall 2 on-marked-down shutdown-sessions",
        ]
        for node in 1...options.nodes {
            lines.append(
                "    server \(Self.nodeName(node)) 127.0.0.1:\(postgresPorts[node - 1]) check port \(restPorts[node - 1])"
            )
        }
        let path = options.directory + "/haproxy.cfg"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try supervise("haproxy", ChildSpawn.which("haproxy")!, ["-db", "-f", path])
    }

    /// A leader, a synchronous standby when asked for, and a writable primary through HAProxy.
    private func waitUntilServing() async throws {
        let deadline = Date().addingTimeInterval(Self.readySeconds)
        while Date() < deadline {
            for node in 1...options.nodes {
                if let process = process(Self.nodeName(node)), let exit = process.exit {
                    throw LocalCluster.Failure(
                        description: "\(process.name)'s Patroni ended (\(exit))\n\(process.logTail())")
                }
            }
            let standby = options.synchronous ? await synchronousStandby() : nil
            if await leader() != nil, !options.synchronous || standby != nil {
                try await waitWritable(seconds: max(1, deadline.timeIntervalSinceNow))
                return
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw LocalCluster.Failure(
            description:
                "no leader\(options.synchronous ? " and synchronous standby" : "") within \(Int(Self.readySeconds)) s\n"
                + (process("pg1")?.logTail() ?? ""))
    }

    // MARK: helpers

    /// The status of GET `path` on a node's REST API (0: no answer).
    private func rest(_ node: Int, _ path: String) async -> Int {
        (try? await restClients[node - 1].send(method: .GET, path: path))?.status ?? 0
    }

    private func post(_ node: Int, _ path: String, body: String) async -> HTTPReply? {
        let pool = HTTPConnectionPool(
            host: "127.0.0.1", port: restPorts[node - 1], connections: 1, timeoutMilliseconds: 60_000,
            eventLoopThreads: 1)
        defer { Task { await pool.close() } }
        return try? await pool.send(
            method: .POST, path: path, headers: [("Content-Type", "application/json")], body: ByteBuffer(string: body))
    }

    /// The processes whose parent is `pid` (a postmaster's backends).
    static func children(of pid: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let child = pid_t(entry), let fields = ClusterDirectory.statFields(of: child), fields.count > 1
            else { return nil }
            return pid_t(fields[1]) == pid ? child : nil
        }
    }

    /// The path, owned by `postgres` when this process is root (Patroni and PostgreSQL run as
    /// that user and write there).
    static func handToPostgres(_ path: String) throws {
        guard getuid() == 0, let user = getpwnam("postgres") else { return }
        guard chown(path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
            throw LocalCluster.Failure(description: "cannot hand \(path) to the postgres user: errno \(errno)")
        }
    }
}
