// What can be asked of, and done to, a running Patroni cluster knowing only its addresses:
// which node leads, the members' roles and lag, a planned switchover, the leader killed as a
// vanished machine would be, and whether HAProxy leads to a writable primary. `PatroniCluster`,
// which started the processes, acts through it; so do `stockdrop ha status|kill-leader|
// switchover|stop` from another process, reading the addresses from the state directory
// (`ha.json`, written at start). Processes are found by the directory their environment names
// (`ClusterDirectory`), so nothing another harness or the operator started is ever signalled.
import Engine
import Foundation
import NIOCore

/// Where a Patroni cluster's pieces listen, and who supervises them.
public struct PatroniAddresses: Codable, Sendable, Equatable {
    public var directory: String
    /// HAProxy's port: always the primary.
    public var balancerPort: Int
    public var postgresPorts: [Int]
    public var restPorts: [Int]
    public var synchronous: Bool
    /// The process that started the cluster and stops it (`stockdrop ha`, a nemesis run).
    public var supervisor: Int32

    public var nodes: Int { restPorts.count }

    static func path(in directory: String) -> String { directory + "/ha.json" }

    /// The addresses a running cluster wrote in `directory`.
    public static func read(directory: String) throws -> PatroniAddresses {
        guard let data = FileManager.default.contents(atPath: path(in: directory)) else {
            throw LocalCluster.Failure(
                description: "no cluster in \(directory) (no ha.json): start one with `stockdrop ha`")
        }
        return try JSONDecoder().decode(PatroniAddresses.self, from: data)
    }

    func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(in: directory)), options: .atomic)
    }

    /// Whether the supervisor still runs: it holds the directory's lock until it exits.
    public var supervisorRuns: Bool { ClusterDirectory.isHeld(directory) }
}

public final class PatroniControl: Sendable {
    public let addresses: PatroniAddresses
    /// One client per node's REST API (the promotion watcher asks several times a second).
    private let restClients: [HTTPConnectionPool]

    public init(_ addresses: PatroniAddresses) {
        self.addresses = addresses
        self.restClients = addresses.restPorts.map {
            HTTPConnectionPool(
                host: "127.0.0.1", port: $0, connections: 1, timeoutMilliseconds: 1_000, eventLoopThreads: 1)
        }
    }

    public func close() async {
        for client in restClients { await client.close() }
    }

    public static func nodeName(_ node: Int) -> String { "pg\(node)" }

    /// A database through HAProxy (the primary, wherever it is).
    public func url(database: String = "postgres") -> String {
        "postgresql://postgres@127.0.0.1:\(addresses.balancerPort)/\(database)?sslmode=disable"
    }

    func configurationPath(_ node: Int) -> String { addresses.directory + "/\(Self.nodeName(node)).yml" }
    func dataDirectory(_ node: Int) -> String { addresses.directory + "/\(Self.nodeName(node))" }

    // MARK: what runs where

    /// The node whose Patroni says it is the leader (GET /leader answers 200), if any.
    public func leader() async -> Int? {
        for node in 1...addresses.nodes where await rest(node, "/leader") == 200 { return node }
        return nil
    }

    /// The leader, asked again for up to `seconds` (a Patroni slow to answer on a loaded
    /// machine is not a cluster without one).
    public func leader(waitingSeconds seconds: Double) async -> Int? {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if let node = await leader() { return node }
            try? await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        return nil
    }

    /// A node serving as synchronous standby (GET /sync answers 200), if any.
    public func synchronousStandby() async -> Int? {
        for node in 1...addresses.nodes where await rest(node, "/sync") == 200 { return node }
        return nil
    }

    /// One node as its Patroni describes it (GET /patroni); nil fields where it did not answer.
    public struct Member: Sendable, Equatable {
        public var node: Int
        public var role: String?
        public var state: String?
        public var timeline: Int?
        /// Bytes of WAL received but not yet replayed, for a replica that says.
        public var replayLagBytes: Int?

        /// From Patroni's answer to GET /patroni (nil or unreadable: a node that did not
        /// answer). A replica's `xlog` has received and replayed positions; a primary's only
        /// its own; a Patroni whose PostgreSQL does not answer sends `state` and `role` alone.
        init(node: Int, patroniJSON: Data?) {
            self.node = node
            guard let patroniJSON,
                let object = try? JSONSerialization.jsonObject(with: patroniJSON) as? [String: Any]
            else { return }
            role = object["role"] as? String
            state = object["state"] as? String
            timeline = object["timeline"] as? Int
            if let replication = object["xlog"] as? [String: Any],
                let received = replication["received_location"] as? Int,
                let replayed = replication["replayed_location"] as? Int
            {
                replayLagBytes = max(0, received - replayed)
            }
        }
    }

    /// Every node as its own Patroni describes it.
    public func members() async -> [Member] {
        var members: [Member] = []
        for node in 1...addresses.nodes {
            let reply = try? await restClients[node - 1].send(method: .GET, path: "/patroni")
            members.append(Member(node: node, patroniJSON: reply.map { Data(buffer: $0.body) }))
        }
        return members
    }

    // MARK: faults and moves

    /// What `killLeader` killed, and when.
    public struct Killed: Sendable {
        public var node: Int
        public var patroni: pid_t
        public var postmaster: pid_t?
        public var backends: Int
        public var at: ContinuousClock.Instant
    }

    /// SIGKILL of the primary's Patroni, postmaster and backends at once, as if its machine
    /// vanished: the others wait out the leader key's TTL, then promote the synchronous standby.
    public func killLeader() async throws -> Killed {
        guard let node = await leader(waitingSeconds: 10) else {
            throw LocalCluster.Failure(description: "no leader to kill")
        }
        let configuration = configurationPath(node)
        let data = dataDirectory(node)
        let (patronis, postmaster) = await OffPool.run {
            // The postmaster its pid file names, if that process is still this node's server
            // (a pid file can outlive its process, and the pid be reused).
            let named = (try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8))?
                .split(separator: "\n").first.flatMap { pid_t($0) }
            let commandLine = named.flatMap { FileManager.default.contents(atPath: "/proc/\($0)/cmdline") }
            return (
                ClusterDirectory.processes(in: self.addresses.directory, commandLineContaining: configuration),
                commandLine?.range(of: Data(data.utf8)) != nil ? named : nil
            )
        }
        // Without its Patroni the kill would be a crash its Patroni repairs, not a lost machine.
        guard patronis.count == 1, let patroni = patronis.first else {
            throw LocalCluster.Failure(
                description:
                    "\(Self.nodeName(node))'s Patroni not found among the processes started in \(addresses.directory)"
                    + " (found \(patronis.count)); nothing killed")
        }
        kill(patroni, SIGKILL)
        var backends: [pid_t] = []
        if let postmaster {
            // Stopped first, so it forks no backend between the listing and the kill.
            kill(postmaster, SIGSTOP)
            backends = await OffPool.run { ClusterDirectory.children(of: postmaster) }
            kill(postmaster, SIGKILL)
            for backend in backends { kill(backend, SIGKILL) }
        }
        return Killed(node: node, patroni: patroni, postmaster: postmaster, backends: backends.count, at: .now)
    }

    /// A planned change of primary (Patroni picks the synchronous standby). Returns the old
    /// and the new leader once the new one takes writes through HAProxy.
    public func switchover(seconds: Double = 60) async throws -> (from: Int, to: Int) {
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
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let to = await leader(), to != from {
                try await waitWritable(seconds: max(1, deadline.timeIntervalSinceNow))
                return (from, to)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw LocalCluster.Failure(description: "no new leader \(Int(seconds)) s after the switchover")
    }

    /// A node other than `away` (any node when nil) leads and takes writes through HAProxy;
    /// nil after `seconds`.
    public func waitForNewPrimary(away node: Int?, seconds: Double) async -> Int? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let leader = await leader(), leader != node, (try? await waitWritable(seconds: 0.5)) != nil {
                return leader
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
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

    // MARK: helpers

    /// The status of GET `path` on a node's REST API (0: no answer).
    func rest(_ node: Int, _ path: String) async -> Int {
        (try? await restClients[node - 1].send(method: .GET, path: path))?.status ?? 0
    }

    private func post(_ node: Int, _ path: String, body: String) async -> HTTPReply? {
        let pool = HTTPConnectionPool(
            host: "127.0.0.1", port: addresses.restPorts[node - 1], connections: 1, timeoutMilliseconds: 60_000,
            eventLoopThreads: 1)
        let reply = try? await pool.send(
            method: .POST, path: path, headers: [("Content-Type", "application/json")], body: ByteBuffer(string: body))
        await pool.close()
        return reply
    }
}
