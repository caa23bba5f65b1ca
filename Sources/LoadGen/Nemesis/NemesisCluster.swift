// The system a nemesis run attacks, started by the harness itself: a `LocalCluster` (N
// `stockdrop serve` instances, Redis and HAProxy in front) whose instances reach PostgreSQL
// through a `FaultProxy`, so the database can hang as well as crash. The database is the
// embedded PostgreSQL, or, for the failover faults, a `PatroniCluster` (three nodes with
// synchronous replication behind their own HAProxy) that the proxy fronts. The checker reads
// the database directly, never through the proxy.
import Engine
import Foundation

public final class NemesisCluster: Sendable {
    let cluster: LocalCluster
    /// The database as the checker reads it (not through the proxy).
    public let databaseURL: String
    let proxy: FaultProxy
    let embedded: EmbeddedPostgres
    /// The database when the plan has failover faults.
    let failover: PatroniCluster?

    public var balancerURL: URL { cluster.balancerURL }
    public var instances: Int { cluster.options.instances }

    /// `binary` is the `stockdrop` to serve with, `haproxyTemplate` `deploy/haproxy.cfg`;
    /// `failover`: the database is a Patroni cluster (its state beside the embedded one's).
    public static func start(
        binary: String, haproxyTemplate: String, instances: Int, secret: String, failover: Bool = false
    ) async throws -> NemesisCluster {
        let embedded = try EmbeddedPostgres()
        let patroni: PatroniCluster?
        let databaseURL: String
        let upstream: FaultProxy.Upstream
        if failover {
            let cluster = try await PatroniCluster.start(
                PatroniClusterOptions(directory: embedded.home + "/nemesis-ha"))
            do {
                let admin = try await PostgresConnection.connect(cluster.url())
                try await admin.execute("CREATE DATABASE stockdrop_nemesis")
                await admin.close()
                databaseURL = try await Database.prepare(
                    environment: ["DATABASE_URL": cluster.url(database: "stockdrop_nemesis")])
            } catch {
                try? await cluster.stop()
                throw error
            }
            patroni = cluster
            upstream = .tcp(host: "127.0.0.1", port: cluster.control.addresses.balancerPort)
        } else {
            try await embedded.start()
            databaseURL = try await Database.prepare(
                environment: ["DATABASE_URL": try await embedded.freshDatabase("stockdrop_nemesis")])
            patroni = nil
            upstream = .unixSocket(embedded.socketPath)
        }
        let proxy: FaultProxy
        do {
            proxy = try await FaultProxy.start(upstream: upstream)
        } catch {
            try? await patroni?.stop()
            throw error
        }
        do {
            let cluster = try await LocalCluster.start(
                LocalClusterOptions(
                    binary: binary, instances: instances,
                    databaseURL: "postgresql://postgres@127.0.0.1:\(proxy.port)/stockdrop_nemesis", secret: secret,
                    directory: embedded.home + "/nemesis-cluster", haproxyTemplate: haproxyTemplate))
            return NemesisCluster(
                cluster: cluster, databaseURL: databaseURL, proxy: proxy, embedded: embedded, failover: patroni)
        } catch {
            await proxy.stop()
            try? await patroni?.stop()
            throw error
        }
    }

    private init(
        cluster: LocalCluster, databaseURL: String, proxy: FaultProxy, embedded: EmbeddedPostgres,
        failover: PatroniCluster?
    ) {
        self.cluster = cluster
        self.databaseURL = databaseURL
        self.proxy = proxy
        self.embedded = embedded
        self.failover = failover
    }

    /// The Patroni cluster of a run with failover faults.
    func failoverDatabase() throws -> PatroniCluster {
        guard let failover else {
            throw LocalCluster.Failure(description: "kill-primary and switchover need the Patroni cluster")
        }
        return failover
    }

    /// The instance (1…N) holding the drop's lease, if any.
    public func owner(of drop: DropID) async -> Int? {
        guard
            let connection = try? await PostgresConnection.connect(
                databaseURL, applicationName: "stockdrop-nemesis", deadlines: LocalCluster.probeDeadlines)
        else { return nil }
        defer { Task { await connection.close() } }
        let row = try? await connection.query("SELECT lease_owner FROM drops WHERE id = $1", [.int64(drop)]).first
        guard let owner = try? row?.optionalString("lease_owner") else { return nil }
        return cluster.instance(owning: owner)
    }

    public func kill(instance: Int) throws { try cluster.kill(instance: instance) }
    public func pause(instance: Int) throws { try cluster.pause(instance: instance) }
    public func resume(instance: Int) throws { try cluster.resume(instance: instance) }
    public func restart(instance: Int) async throws { try await cluster.restart(instance: instance) }
    public func killRedis() throws { try cluster.killRedis() }
    public func restartRedis() async throws { try await cluster.restartRedis() }
    public func pauseDatabase() { proxy.pause() }
    public func resumeDatabase() { proxy.resume() }

    public func crashAndRestartDatabase() async throws {
        guard failover == nil else {
            throw LocalCluster.Failure(
                description: "restart-postgres crashes the embedded PostgreSQL; use kill-primary")
        }
        let embedded = self.embedded
        try await embedded.crashAndRestart()
    }

    /// Stops the instances (each must exit 0 on SIGTERM), HAProxy and Redis, then the proxy.
    public func stop() async throws {
        defer { Task { await proxy.stop() } }
        do {
            try await cluster.stop()
        } catch {
            try? await failover?.stop()
            throw error
        }
        // The database's own shutdown says nothing about stockdrop: not a finding.
        try? await failover?.stop()
    }

}
