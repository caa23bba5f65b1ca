// A `LocalCluster` for one test, with the harness's own client in front of it: claims through
// `HTTPTarget` (its tokens, its reading of answers) to the balancer or to one instance, each
// recorded as the load runs record theirs, so the checker judges the drop with the client's
// history (acknowledged writes kept, refusals that promise nothing applied nothing) as it
// judges a run. The cluster tests run only when STOCKDROP_CLUSTER_TESTS=1 (the end-to-end
// command sets it); STOCKDROP_BIN picks the binary the instances run.
import Engine
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

@testable import LoadGen

enum ClusterEnvironment {
    static var enabled: Bool { ProcessInfo.processInfo.environment["STOCKDROP_CLUSTER_TESTS"] == "1" }
    static var binary: String {
        let given = ProcessInfo.processInfo.environment["STOCKDROP_BIN"] ?? ".build/debug/stockdrop"
        return URL(fileURLWithPath: given).standardized.path
    }
}

final class ClusterProbe: Sendable {
    let cluster: LocalCluster
    /// The database as the checker reads it.
    let databaseURL: String
    let clock = RunClock()
    private let targets: [URL: HTTPTarget]
    private let controls: [URL: HTTPConnectionPool]
    private let records = Mutex<[OperationRecord]>([])
    private let nextUser = Atomic<Int64>(1)

    var balancer: URL { cluster.balancerURL }
    var instances: [URL] { cluster.instanceURLs }
    var leaseMilliseconds: Int { cluster.leaseMilliseconds }

    /// Runs `body` against a cluster of `instances` on a fresh database, then stops it: every
    /// instance must exit 0 on SIGTERM.
    static func with(
        instances: Int, database suite: String, _ body: (ClusterProbe) async throws -> Void
    ) async throws {
        let databaseURL = try await TestDatabase.fresh(suite)
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let cluster = try await LocalCluster.start(
            LocalClusterOptions(
                binary: ClusterEnvironment.binary, instances: instances, databaseURL: databaseURL, secret: secret,
                directory: FileManager.default.currentDirectoryPath + "/.stockdrop/cluster-tests/\(suite)",
                haproxyTemplate: FileManager.default.currentDirectoryPath + "/deploy/haproxy.cfg"))
        let probe: ClusterProbe
        do {
            probe = try await ClusterProbe(cluster: cluster, databaseURL: databaseURL, secret: secret)
        } catch {
            try? await cluster.stop()
            throw error
        }
        var failure: (any Error)?
        do { try await body(probe) } catch { failure = error }
        await probe.close()
        do { try await cluster.stop() } catch {
            Issue.record("the cluster did not stop cleanly: \(error)")
        }
        if let failure { throw failure }
    }

    private init(cluster: LocalCluster, databaseURL: String, secret: String) async throws {
        self.cluster = cluster
        self.databaseURL = databaseURL
        var targets: [URL: HTTPTarget] = [:]
        var controls: [URL: HTTPConnectionPool] = [:]
        let options = HTTPTargetOptions(secret: secret, connections: 16, timeoutMilliseconds: 5_000)
        for url in [cluster.balancerURL] + cluster.instanceURLs {
            targets[url] = try await HTTPTarget.connect([url], databaseURL: databaseURL, options: options)
            controls[url] = HTTPConnectionPool(
                host: "127.0.0.1", port: url.port!, connections: 1, timeoutMilliseconds: 5_000, eventLoopThreads: 1)
        }
        self.targets = targets
        self.controls = controls
        // Users of one test never meet another test's: each test has its own database.
        nextUser.store(1, ordering: .relaxed)
    }

    func close() async {
        for target in targets.values { await target.close() }
        for pool in controls.values { await pool.close() }
    }

    func newUser() -> UserID { nextUser.wrappingAdd(1, ordering: .relaxed).oldValue }

    func createDrop(
        on url: URL, stock: Int, ttlMilliseconds: Int = 60_000, perUserLimit: Int = 1
    ) async throws
        -> DropID
    {
        try await targets[url]!.createDrop(
            DropSpec(
                name: "cluster test", priceCents: 1500, totalStock: stock, perUserLimit: perUserLimit,
                reserveTTLMilliseconds: ttlMilliseconds))
    }

    // MARK: claims, recorded

    func reserve(_ url: URL, _ drop: DropID, user: UserID) async -> OperationRecord {
        await record(.reserve, drop: drop, user: user) { await self.targets[url]!.reserve(drop: drop, user: user) }
    }

    func purchase(_ url: URL, _ drop: DropID, user: UserID, key: String) async -> OperationRecord {
        await record(.purchase, drop: drop, user: user) {
            await self.targets[url]!.purchase(drop: drop, user: user, idempotencyKey: key)
        }
    }

    func cancel(_ url: URL, _ drop: DropID, user: UserID) async -> OperationRecord {
        await record(.cancel, drop: drop, user: user) { await self.targets[url]!.cancel(drop: drop, user: user) }
    }

    private func record(
        _ operation: OperationKind, drop: DropID, user: UserID, _ send: @Sendable () async -> Answer
    ) async -> OperationRecord {
        let sent = clock.nowMicroseconds
        let answer = await send()
        let record = OperationRecord(
            operation: operation, result: answer.result, user: user, drop: drop, reservationID: answer.reservationID,
            purchaseID: answer.purchaseID, intendedMicroseconds: sent, sentMicroseconds: sent,
            answeredMicroseconds: clock.nowMicroseconds)
        records.withLock { $0.append(record) }
        return record
    }

    func records(of drop: DropID) -> [OperationRecord] { records.withLock { $0.filter { $0.drop == drop } } }

    /// The checker over the drop's rows and everything this probe was told about it.
    func check(_ drop: DropID) async throws -> CheckReport {
        let history = ClientHistory(
            records: records(of: drop),
            startedAtEpochMicroseconds: clock.startedAt.epochMicroseconds, cutOff: [:])
        return try await Checker().check(databaseURL: databaseURL, drops: [drop], history: history)
    }

    // MARK: reads

    /// GET /v1/drops/{id}: (availableStock, reservedStock).
    func view(_ url: URL, _ drop: DropID) async -> (available: Int, reserved: Int)? {
        struct View: Decodable {
            let availableStock: Int
            let reservedStock: Int
        }
        guard let reply = try? await controls[url]!.send(method: .GET, path: "/v1/drops/\(drop)"), reply.status == 200,
            let view = try? JSONDecoder().decode(View.self, from: Data(reply.body.readableBytesView))
        else { return nil }
        return (view.availableStock, view.reservedStock)
    }

    func status(_ url: URL, _ path: String) async -> Int {
        (try? await controls[url]!.send(method: .GET, path: path))?.status ?? 0
    }

    /// A metric's value summed over its series on URL/metrics.
    func metric(_ url: URL, _ name: String) async -> Double? {
        guard let reply = try? await controls[url]!.send(method: .GET, path: "/metrics"), reply.status == 200 else {
            return nil
        }
        return HTTPTarget.metric(name, in: String(buffer: reply.body))
    }

    /// The drop's lease owner once one is recorded (polled: the lease may be written just
    /// after the first claim is answered).
    func leaseOwner(_ drop: DropID, waitingSeconds: Double = 3) async throws -> String? {
        let deadline = Date().addingTimeInterval(waitingSeconds)
        while true {
            let owner = try await sqlString("SELECT coalesce(lease_owner, '') AS v FROM drops WHERE id = \(drop)")
            if !owner.isEmpty { return owner }
            if Date() > deadline { return nil }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The instance (1…N) holding the drop's lease.
    func ownerInstance(_ drop: DropID) async throws -> Int? {
        try await leaseOwner(drop).flatMap { cluster.instance(owning: $0) }
    }

    /// Column `v` of the first row, as text ("" when there is no row).
    func sqlString(_ sql: String) async throws -> String {
        let connection = try await PostgresConnection.connect(databaseURL)
        defer { Task { await connection.close() } }
        let rows = try await connection.query(sql)
        return try rows.first.map { try $0.optionalString("v") ?? "" } ?? ""
    }
}

extension OperationRecord.Result {
    /// A failure that says to try again: nothing applied, shed, or an outcome unknown.
    var isRetryable: Bool { isFailure || self == .rejected(.overloaded) }
}
