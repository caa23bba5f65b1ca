// A server past its latency target, on a real socket: every new reserve is refused at the
// event loop (503 overloaded, with Retry-After) and writes nothing, while purchases and
// cancels of live holds are answered as ever; and a load run against such a server, whose
// every answer is shed, ends with a verdict that says it measured nothing. Every request the
// event loop passes on carries the instant it was read, which no client can forge.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import TestSupport
import Testing

@testable import LoadGen
@testable import Server

@Suite struct ShedTests {
    /// A server that sheds every reserve: a 1 ms target and no minimum in flight, so its bound
    /// (answers per second × 1 ms) stays 0 at a test's rate.
    static func shedding(_ name: String) async throws -> ServerFixture {
        var fixture = try await ServerFixture(name)
        fixture.configuration.latencyTargetMilliseconds = 1
        fixture.configuration.shedMinimumInFlight = 0
        return fixture
    }

    /// The receipt is the read moved back by the socket's wait, taken a kernel tick short so
    /// it is never before the bytes came; no wait known (not TCP), or one within a tick: the read.
    @Test func theReceiptIsTheReadLessTheSocketsWaitNeverEarlier() {
        let read = NIODeadline.uptimeNanoseconds(10_000_000_000)
        #expect(KernelReceipt.receivedAt(now: read, lastDataReceivedMillisecondsAgo: nil) == read)
        #expect(KernelReceipt.receivedAt(now: read, lastDataReceivedMillisecondsAgo: 0) == read)
        #expect(KernelReceipt.receivedAt(now: read, lastDataReceivedMillisecondsAgo: 20) == read)
        #expect(KernelReceipt.receivedAt(now: read, lastDataReceivedMillisecondsAgo: 250) == read - .milliseconds(230))
        // Just after boot a long wait cannot reach before the clock's zero.
        let early = NIODeadline.uptimeNanoseconds(5_000_000)
        #expect(KernelReceipt.receivedAt(now: early, lastDataReceivedMillisecondsAgo: 900) == early)
        // Asked for a purchase always, for a reserve only while the event loops run late.
        var purchase = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/v1/drops/1/purchase")
        #expect(KernelReceipt.worthAsking(purchase, loopLagMicroseconds: 0))
        purchase.path = "/v1/drops/1/reserve"
        #expect(!KernelReceipt.worthAsking(purchase, loopLagMicroseconds: 19_999))
        #expect(KernelReceipt.worthAsking(purchase, loopLagMicroseconds: 20_000))
    }

    @Test func shedReservesCarryRetryAfterAndWriteNothingWhilePurchasesAndCancelsGoOn() async throws {
        let fixture = try await Self.shedding("shed_reserves")
        let (application, parts) = try await buildApplication(fixture.configuration, clock: fixture.clock)
        let drop = try await parts.inventory.createDrop(
            DropSpec(name: "Shed", priceCents: 100, totalStock: 5, reserveTTLMilliseconds: 60_000)
        ).id
        // Two buyers hold a unit from before the overload.
        for user in [UserID(1), 2] {
            guard case .reserved = try await parts.inventory.reserve(drop: drop, user: user) else {
                Issue.record("a hold for user \(user)")
                return
            }
        }
        let before = try await fixture.rowCounts()
        try await application.test(.live) { client in
            for user in [UserID(1), 3, 4, 5] {
                var headers = try await fixture.headers(user)
                // Every answer carries a request id (the client's own when it sent one), shed ones too.
                if user == 3 { headers[.xRequestID] = "client-chosen-id-3" }
                try await client.execute(uri: "/v1/drops/\(drop)/reserve", method: .post, headers: headers) {
                    response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(HTTPTarget.errorCode(response.body) == "overloaded")
                    let retryAfter = try #require(response.headers[.retryAfter].flatMap { Int($0) })
                    #expect((1...ServerDefaults.maxRetryAfterSeconds).contains(retryAfter))
                    let id = try #require(response.headers[.xRequestID])
                    #expect(user != 3 || id == "client-chosen-id-3")
                    #expect(response.headers[.connection] == nil, "not draining yet")
                }
            }
            var purchase = try await fixture.headers(1)
            purchase[.idempotencyKey] = "shed-test"
            try await client.execute(uri: "/v1/drops/\(drop)/purchase", method: .post, headers: purchase) {
                #expect($0.status == .created, "a live hold's purchase is never shed")
            }
            try await client.execute(
                uri: "/v1/drops/\(drop)/reservation", method: .delete, headers: try await fixture.headers(2)
            ) {
                #expect($0.status == .ok, "a live hold's cancel is never shed")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(String(buffer: response.body).contains("stockdrop_http_requests_shed_total 4"))
            }
            // Written at the event loop, past the router's middleware: during a drain a shed
            // answer says Connection: close itself, and the connection closes after it.
            parts.draining.begin()
            try await client.execute(
                uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(6)
            ) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.connection] == "close")
            }
        }
        // The shed reserves applied nothing: no reservation beyond the two holds, one purchase.
        let after = try await fixture.rowCounts()
        #expect(after["reservations"] == before["reservations"])
        #expect(after["purchases"] == (before["purchases"] ?? 0) + 1)
    }

    @Test func aRunWhoseEveryAnswerIsShedEndsWithAClearVerdict() async throws {
        let fixture = try await Self.shedding("shed_run")
        let scenario = try ScenarioParser.parse(
            yaml: """
                name: all-shed
                seed: 3
                drops:
                  - {name: Never Sold, priceCents: 100, stock: 5, reserveTTL: 1s}
                users:
                  - count: 20
                    drop: Never Sold
                    arrival: burst
                    thinkTime: {fixed: 1ms}
                    afterReserve: {purchase: 1, cancel: 0, abandon: 0}
                    onRejected: {retries: 1, backoff: 10ms}
                limits: {maxDuration: 3s}
                thresholds:
                  - oversold == 0
                  - p99(reserve) < 1s
                """, file: "all-shed.yaml"
        ).get()
        try await fixture.application().test(.live) { client in
            let target = try await HTTPTarget.connect(
                [URL(string: "http://127.0.0.1:\(try #require(client.port))")!],
                databaseURL: fixture.configuration.databaseURL, options: HTTPTargetOptions(secret: ServerFixture.secret)
            )
            let run = try await StrategyLoad(
                scenario: scenario, target: target, live: LiveCounters(), progress: { _ in }
            )
            .run()
            await target.close()
            var reports = [StrategyReport(run, thresholds: scenario.thresholds)]
            let exitCode = LoadRunner.judge(&reports)
            let records = run.history.records
            // Every buyer was shed, came back after Retry-After, and gave up at the stop.
            #expect(!records.isEmpty && records.allSatisfy { $0.result == .rejected(.overloaded) })
            #expect(Set(records.map(\.user)).count == 20)
            #expect(reports[0].operations["reserve"]?.shed == records.count)
            #expect(run.check.ok && run.check.sold == 0)
            // The scenario's own thresholds hold (nothing oversold, fast answers): the built-in
            // rule fails the run, and says why.
            #expect(exitCode == ExitStatus.thresholdMissed)
            let failed = reports[0].thresholds.filter { !$0.ok }
            #expect(failed.count == 1 && failed[0].expression.hasPrefix("answers > 0"))
            let report = RunReport(
                scenario: scenario.name, seed: scenario.seed, startedAt: Date(), pass: false, exitCode: exitCode,
                target: "test", strategies: reports, comparison: nil)
            #expect(report.problemLines.contains { $0.contains("every request was shed or failed") })
        }
    }

    /// The wait between the event loop reading a request and a task taking it up is the
    /// server's: the handler stamps the read, and a stamp the client sent is replaced, never
    /// passed on beside it.
    @Test func theEventLoopStampsWhenItReadARequestAndAClientCannotForgeTheStamp() throws {
        let loop = EmbeddedEventLoop()
        let metrics = ServerMetrics()
        let monitor = OverloadMonitor(
            latencyTargetMilliseconds: 250, group: loop, metrics: metrics, logger: Logger(label: "shed-test"))
        let channel = EmbeddedChannel(
            handler: ShedHandler(monitor: monitor, metrics: metrics, draining: DrainingFlag()), loop: loop)
        for path in ["/v1/drops/1/purchase", "/v1/drops/1/reserve", "/health"] {
            var head = HTTPRequest(method: .post, scheme: nil, authority: nil, path: path)
            head.headerFields[.stockdropReadAt] = "1"
            head.headerFields.append(HTTPField(name: .stockdropReadAt, value: "2"))
            let before = NIODeadline.now().uptimeNanoseconds
            try channel.writeInbound(HTTPRequestPart.head(head))
            let after = NIODeadline.now().uptimeNanoseconds
            guard case .head(let passed) = try #require(try channel.readInbound(as: HTTPRequestPart.self)) else {
                Issue.record("\(path): the head was not passed on")
                continue
            }
            let stamps = passed.headerFields[values: .stockdropReadAt]
            #expect(stamps.count == 1, "\(path): one stamp, the handler's")
            let stamp = try #require(stamps.first.flatMap { UInt64($0) })
            #expect((before...after).contains(stamp), "\(path): stamped when read")
            try channel.writeInbound(HTTPRequestPart.end(nil))
            _ = try channel.readInbound(as: HTTPRequestPart.self)
        }
        _ = try channel.finish()
    }

    @Test func theRequestLogCountsFromTheStampWhenItIsAPastInstant() {
        let now = NIODeadline.uptimeNanoseconds(5_000_000_000)
        #expect(RequestLogMiddleware.readAt("4000000000", now: now) == .uptimeNanoseconds(4_000_000_000))
        #expect(RequestLogMiddleware.readAt(nil, now: now) == now)
        #expect(RequestLogMiddleware.readAt("soon", now: now) == now)
        #expect(RequestLogMiddleware.readAt("-1", now: now) == now)
        #expect(RequestLogMiddleware.readAt("6000000000", now: now) == now, "not a past instant: not ours")
    }

    /// A purchase is asked when the event loop read it: the stamp moved onto the wall clock by
    /// the time elapsed since, so the engine judges it by that instant, not by when a task took
    /// it up.
    @Test func aPurchaseIsAskedWhenTheEventLoopReadIt() {
        let now = NIODeadline.uptimeNanoseconds(5_000_000_000)
        let wall = Date(timeIntervalSince1970: 1_000)
        #expect(
            RequestLogMiddleware.readAtWallClock("3750000000", now: now, wallNow: wall)
                == Date(timeIntervalSince1970: 998.75))
        #expect(RequestLogMiddleware.readAtWallClock(nil, now: now, wallNow: wall) == wall)
        #expect(RequestLogMiddleware.readAtWallClock("6000000000", now: now, wallNow: wall) == wall)
    }
}
