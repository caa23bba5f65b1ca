// Two `stockdrop serve` processes on one PostgreSQL and one Redis look like one: a purchase
// through instance A reaches a socket on instance B. Redis killed mid-run loses no claim,
// `/ready` says events are degraded, and when Redis is back B's socket gets a fresh snapshot
// and events flow again.
import Engine
import Foundation
import LoadGen
import NIOCore
import TestSupport
import Testing

@testable import LoadGen
@testable import Server

@Suite struct RedisFanOutTests {
    @Test func twoInstancesShareEventsAndSurviveARedisRestart() async throws {
        let databaseURL = try await TestDatabase.fresh("server_fanout")
        var redis = try await RedisTestServer()
        let environment = ["REDIS_URL": redis.url]
        let a = try ServeProcess(databaseURL: databaseURL, secret: ServerFixture.secret, environment: environment)
        let b = try ServeProcess(databaseURL: databaseURL, secret: ServerFixture.secret, environment: environment)
        defer {
            a.kill()
            b.kill()
            redis.stop()
        }
        let portA = try await a.port()
        let portB = try await b.port()
        let clientA = HTTPConnectionPool(host: "127.0.0.1", port: portA, connections: 1, timeoutMilliseconds: 10_000)
        let clientB = HTTPConnectionPool(host: "127.0.0.1", port: portB, connections: 1, timeoutMilliseconds: 10_000)
        defer {
            Task {
                await clientA.close()
                await clientB.close()
            }
        }
        try await Self.awaitEvents("ok", on: clientA)
        try await Self.awaitEvents("ok", on: clientB)

        let authority = await TokenMinter.forTests()
        let admin = try await authority.mint(Caller(userID: 1, name: "admin", role: .admin))
        let created = try await clientA.send(
            method: .POST, path: "/v1/drops",
            headers: [("Authorization", "Bearer \(admin)"), ("Content-Type", "application/json")],
            body: ByteBuffer(string: #"{"name":"Fan-out","priceCents":100,"totalStock":5}"#))
        #expect(created.status == 201)
        let drop = try JSONDecoder().decode(Identified.self, from: Data(created.body.readableBytesView)).id

        let watcher = LiveWatcher(
            port: portB, token: try await authority.mint(Caller(userID: 77, name: "watcher", role: .user)),
            deadlineSeconds: 40)
        #expect(await watcher.next { $0.type == .snapshot } != nil)
        let buyer = try await authority.mint(Caller(userID: 10, name: "Ada", role: .user))
        #expect(try await Self.claim(clientA, "reserve", drop: drop, token: buyer) == 201)
        #expect(try await Self.claim(clientA, "purchase", drop: drop, token: buyer) == 201)
        let feed = await watcher.next { $0.type == .purchaseCompleted }
        #expect(feed?.dropId == drop && feed?.purchase?.buyerName == "Ada")

        // Redis dies: claims go on through A, and both instances say events are degraded.
        redis.stop(keepDirectory: true)
        let second = try await authority.mint(Caller(userID: 11, name: "Grace", role: .user))
        #expect(try await Self.claim(clientA, "reserve", drop: drop, token: second) == 201)
        try await Self.awaitEvents("degraded", on: clientA)

        // Redis returns on the same socket: B's socket is resynchronized with a snapshot that
        // shows the hold made during the outage, and A's events reach B again.
        redis = try await RedisTestServer(directory: redis.directory)
        let resync = await watcher.next { $0.type == .snapshot }
        #expect(resync?.drops?.first { $0.id == drop }?.reservedStock == 1)
        try await Self.awaitEvents("ok", on: clientA)
        #expect(try await Self.claim(clientA, "purchase", drop: drop, token: second) == 201)
        let after = await watcher.next { $0.type == .purchaseCompleted }
        #expect(after?.purchase?.buyerName == "Grace")
        watcher.close()

        let pool = PostgresPool(url: databaseURL, size: 1)
        let sold = try await pool.query("SELECT count(*) AS sold FROM purchases WHERE drop_id = $1", [.int64(drop)])
            .first?.int("sold")
        await pool.close()
        #expect(sold == 2)
    }

    static func claim(_ client: HTTPConnectionPool, _ operation: String, drop: Int64, token: String) async throws -> Int
    {
        try await client.send(
            method: .POST, path: "/v1/drops/\(drop)/\(operation)", headers: [("Authorization", "Bearer \(token)")]
        ).status
    }

    /// Polls /ready until its events field says `status` (at most 15 s): the relay reconnects
    /// with backoff on its own schedule, which no event of ours can signal.
    static func awaitEvents(_ status: String, on client: HTTPConnectionPool) async throws {
        for _ in 0..<300 {
            let ready = try await client.send(method: .GET, path: "/ready")
            if String(buffer: ready.body).contains(#""events":"\#(status)""#) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("events never became \(status)")
    }
}
