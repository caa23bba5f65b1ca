// A database that hangs rather than refuses: the server reaches PostgreSQL through a proxy the
// test pauses. Every request must still be answered, with a 503 and no internals, within the
// bound the deadlines add up to, and the server must serve again once the database answers.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LoadGen
import NIOCore
import TestSupport
import Testing

@testable import Server

@Suite struct HungDatabaseTests {
    /// Short deadlines so the test takes seconds: a request waits at most for a pooled
    /// connection (1 s), then a connect (2 s) or a statement's answer (1.5 s).
    static let deadlines = DatabaseDeadlines(
        connectSeconds: 2, statementMilliseconds: 1_000, answerMilliseconds: 1_500, acquireMilliseconds: 1_000)
    /// What a request may take while the database hangs: the deadlines above in a row, twice
    /// (a claim queued behind a batch that is cut off waits for that batch, then its own), and
    /// scheduling slack on a shared 2-core machine.
    static let boundSeconds = 2.0 * (1.0 + 2.0 + 1.5) + 3.0

    @Test func aHungDatabaseGives503WithinTheBoundAndTheServerRecovers() async throws {
        var proxied = try await ServerFixture("hung_database")
        let url = proxied.configuration.databaseURL
        let proxy = try await FaultProxy.start(upstream: .unixSocket(try TestDatabase.socketPath(of: url)))
        proxied.configuration.databaseURL = try TestDatabase.url(url, throughPort: proxy.port)
        proxied.configuration.databaseDeadlines = Self.deadlines
        proxied.configuration.logLevel = .critical
        let fixture = proxied
        try await fixture.application().test(.live) { client in
            let drop = try await fixture.createDrop(client, stock: 50)
            let first = try await client.execute(
                uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(2))
            #expect(first.status == .created)

            proxy.pause()
            let port = try #require(client.port)
            let started = ContinuousClock.now
            let answers = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String).self) { group in
                // One connection each: a test client's requests share one connection in turn.
                func send(_ uri: String, _ method: HTTPRequest.Method, _ fields: HTTPFields) {
                    group.addTask {
                        try await TestClient.withClient(host: "127.0.0.1", port: port) { own in
                            let response = try await own.execute(
                                TestClient.Request(uri, method: method, headers: fields))
                            return (response.status, String(buffer: response.body ?? ByteBuffer()))
                        }
                    }
                }
                for user in Int64(3)...12 {
                    send("/v1/drops/\(drop)/reserve", .post, try await fixture.headers(user))
                }
                send("/v1/drops/\(drop)", .get, try await fixture.headers(2))
                send("/v1/drops", .get, [:])
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let waited = started.duration(to: .now)
            #expect(answers.count == 12)
            #expect(waited < .seconds(Self.boundSeconds), "answers took \(waited) while the database hung")
            for (status, body) in answers {
                #expect(status == .serviceUnavailable, "\(status) \(body)")
                for secret in ["08006", "SQLSTATE", "PostgreSQL", ".s.PGSQL", "timeout", "connection was dropped"] {
                    #expect(!body.contains(secret), "\(body)")
                }
            }
            let ready = try await client.execute(uri: "/ready", method: .get)
            #expect(ready.status == .serviceUnavailable)

            proxy.resume()
            let resumed = ContinuousClock.now
            var served = false
            var user: Int64 = 100
            while !served && resumed.duration(to: .now) < .seconds(20) {
                user += 1
                let response = try await client.execute(
                    uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(user))
                served = response.status == .created
                if !served { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(served, "no claim was served within 20 s of the database answering again")
        }
        await proxy.stop()
    }
}
