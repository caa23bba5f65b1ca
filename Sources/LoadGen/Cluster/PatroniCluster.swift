// PostgreSQL that fails over, on this machine: etcd, three PostgreSQL nodes managed by Patroni
// (synchronous replication in strict mode: a commit is acknowledged once a standby has it, and
// none is acknowledged while no standby does), and HAProxy in front on one port, sending
// connections to whichever node Patroni's REST API says is the primary (`OPTIONS /primary`) and
// cutting the sessions of a node it marks down. All from Debian packages; the nodes run as the
// `postgres` user (initdb refuses root). A fresh cluster at every start, state in a directory
// of its own (`ClusterDirectory`: one harness at a time, leftovers of a dead one reaped).
//
// What it asks of the running cluster and the faults it makes (which node leads, a switchover,
// the leader killed) go through `control` (`PatroniControl`), which another process can also
// build from the addresses written to DIR/ha.json; `restart(node:)` starts a killed node
// again (it rejoins as a replica, rewound if it must be).
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
    /// Its addresses, and what can be asked of it and done to it while it runs.
    public let control: PatroniControl
    let etcdPorts: (client: Int, peer: Int)
    private let processes = Mutex<[String: SupervisedProcess]>([:])
    private let lock: Int32

    static let readySeconds = 120.0

    public static func nodeName(_ node: Int) -> String { PatroniControl.nodeName(node) }

    /// A database through HAProxy (the primary, wherever it is).
    public func url(database: String = "postgres") -> String { control.url(database: database) }

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
            try await Self.checkPostgresCanEnter(directory)
            ports = try ClusterDirectory.freeLoopbackPorts(3 + 2 * options.nodes)
        } catch {
            close(lock)
            throw error
        }
        let addresses = PatroniAddresses(
            directory: directory, balancerPort: ports[0], postgresPorts: Array(ports[3..<(3 + options.nodes)]),
            restPorts: Array(ports[(3 + options.nodes)...]), synchronous: options.synchronous, supervisor: getpid())
        let cluster = PatroniCluster(
            options: options, control: PatroniControl(addresses), etcdPorts: (ports[1], ports[2]), lock: lock)
        do {
            try addresses.write()
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
        options: PatroniClusterOptions, control: PatroniControl, etcdPorts: (client: Int, peer: Int), lock: Int32
    ) {
        self.options = options
        self.control = control
        self.etcdPorts = etcdPorts
        self.lock = lock
    }

    public func isRunning(node: Int) -> Bool { process(Self.nodeName(node))?.running ?? false }

    /// Starts a node's Patroni again: it rejoins as a replica of the current primary.
    public func restart(node: Int) async throws {
        if let patroni = process(Self.nodeName(node)), patroni.running {
            _ = await patroni.stop(seconds: 30)
        }
        // The killed postmaster's pid file names a dead process: PostgreSQL starts over it.
        try launch(node: node)
        let deadline = Date().addingTimeInterval(Self.readySeconds)
        while Date() < deadline {
            if await control.rest(node, "/health") == 200 { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw LocalCluster.Failure(
            description: "\(Self.nodeName(node)) did not run again within \(Int(Self.readySeconds)) s\n"
                + (process(Self.nodeName(node))?.logTail() ?? ""))
    }

    /// What a cluster whose supervisor died left running in `directory` (every process started
    /// there), and its addresses, under the directory's lock: never while a harness runs there.
    /// False when one does.
    public static func reapLeftovers(directory: String) async -> Bool {
        guard let lock = try? await ClusterDirectory.claim(directory) else { return false }
        try? FileManager.default.removeItem(atPath: PatroniAddresses.path(in: directory))
        close(lock)
        return true
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
        await control.close()
        try? FileManager.default.removeItem(atPath: etcdDirectory)
        try? FileManager.default.removeItem(atPath: PatroniAddresses.path(in: options.directory))
        // A postmaster whose Patroni was killed (a fault never healed) goes too.
        await OffPool.run { ClusterDirectory.reapStale(directory: self.options.directory) }
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

    private func dataDirectory(_ node: Int) -> String { control.dataDirectory(node) }

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
              listen: 127.0.0.1:\(control.addresses.restPorts[node - 1])
              connect_address: 127.0.0.1:\(control.addresses.restPorts[node - 1])
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
              listen: 127.0.0.1:\(control.addresses.postgresPorts[node - 1])
              connect_address: 127.0.0.1:\(control.addresses.postgresPorts[node - 1])
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
            "frontend postgres", "    bind 127.0.0.1:\(control.addresses.balancerPort)", "    default_backend primary",
            "backend primary",
            "    option httpchk OPTIONS /primary", "    http-check expect status 200",
            "    default-server inter 500ms fastinter 250ms downinter 500ms rise 1 fall 2 on-marked-down shutdown-sessions",
        ]
        for node in 1...options.nodes {
            lines.append(
                "    server \(Self.nodeName(node)) 127.0.0.1:\(control.addresses.postgresPorts[node - 1]) check port \(control.addresses.restPorts[node - 1])"
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
            let standby = options.synchronous ? await control.synchronousStandby() : nil
            if await control.leader() != nil, !options.synchronous || standby != nil {
                try await control.waitWritable(seconds: max(1, deadline.timeIntervalSinceNow))
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

    /// Patroni and PostgreSQL run as `postgres`: every directory above `directory` must let
    /// that user through (a checkout under a root-only directory, such as mktemp's, does not),
    /// or Patroni reads an empty configuration and PostgreSQL cannot start.
    static func checkPostgresCanEnter(_ directory: String) async throws {
        guard getuid() == 0, getpwnam("postgres") != nil, let runuser = ChildSpawn.which("runuser") else { return }
        let test = try await ChildSpawn.run(runuser, ["-u", "postgres", "--", "test", "-r", directory + "/lock"])
        guard test.exit == .exited(0) else {
            throw LocalCluster.Failure(
                description:
                    "the postgres user cannot reach \(directory) (a directory above it is closed to other users): "
                    + "choose another --dir, or leave it out (the default follows the embedded database's home)")
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
