// The system a nemesis run attacks, started by the harness itself: a `LocalCluster` (N
// `stockdrop serve` instances, Redis and HAProxy in front) whose instances reach PostgreSQL
// through a `FaultProxy`, so the database can hang as well as crash. The checker reads the
// database directly, never through the proxy.
import Engine
import Foundation

public final class NemesisCluster: Sendable {
    let cluster: LocalCluster
    /// The database as the checker reads it (not through the proxy).
    public let databaseURL: String
    let proxy: FaultProxy
    let embedded: EmbeddedPostgres

    public var balancerURL: URL { cluster.balancerURL }
    public var instances: Int { cluster.options.instances }

    /// `binary` is the `stockdrop` to serve with, `haproxyTemplate` `deploy/haproxy.cfg`.
    public static func start(
        binary: String, haproxyTemplate: String, instances: Int, secret: String
    ) async throws -> NemesisCluster {
        let embedded = try EmbeddedPostgres()
        try embedded.start()
        let databaseURL = try await Database.prepare(
            environment: ["DATABASE_URL": try await embedded.freshDatabase("stockdrop_nemesis")])
        let proxy = try await FaultProxy.start(upstream: .unixSocket(embedded.socketPath))
        do {
            let cluster = try await LocalCluster.start(
                LocalClusterOptions(
                    binary: binary, instances: instances,
                    databaseURL: "postgresql://postgres@127.0.0.1:\(proxy.port)/stockdrop_nemesis", secret: secret,
                    directory: embedded.home + "/nemesis-cluster", haproxyTemplate: haproxyTemplate))
            return NemesisCluster(cluster: cluster, databaseURL: databaseURL, proxy: proxy, embedded: embedded)
        } catch {
            await proxy.stop()
            throw error
        }
    }

    private init(cluster: LocalCluster, databaseURL: String, proxy: FaultProxy, embedded: EmbeddedPostgres) {
        self.cluster = cluster
        self.databaseURL = databaseURL
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
        guard let owner = try? row?.optionalString("lease_owner") else { return nil }
        return cluster.instance(owning: owner)
    }

    public func signal(instance: Int, _ signal: Int32) throws { try cluster.signal(instance: instance, signal) }
    public func restart(instance: Int) async throws { try await cluster.restart(instance: instance) }
    public func killRedis() throws { try cluster.killRedis() }
    public func restartRedis() async throws { try await cluster.restartRedis() }
    public func pauseDatabase() { proxy.pause() }
    public func resumeDatabase() { proxy.resume() }

    public func crashAndRestartDatabase() async throws {
        let embedded = self.embedded
        try await LocalCluster.offPool { try embedded.crashAndRestart() }
    }

    /// Stops the instances (each must exit 0 on SIGTERM), HAProxy and Redis, then the proxy.
    public func stop() async throws {
        defer { Task { await proxy.stop() } }
        try await cluster.stop()
    }

    static let probeDeadlines = DatabaseDeadlines(
        connectSeconds: 2, statementMilliseconds: 1_000, answerMilliseconds: 2_000, acquireMilliseconds: 2_000)
}
