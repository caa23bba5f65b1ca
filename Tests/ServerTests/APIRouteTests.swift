// The API through the router (`app.test(.router)`) on a real database: each route's happy
// path, every rejection's status and code, and the auth rules.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LoadGen
import NIOCore
import Testing

@testable import Server

@Suite struct APIRouteTests {
    @Test func healthReadinessAndTheDocumentAnswer() async throws {
        let fixture = try await ServerFixture("health")
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""strategy":"actor""#))
                #expect(response.headers[.xRequestID] != nil)
            }
            // A balancer asks again: with every suite creating databases at once on two cores,
            // the probe's 2 s bound was once too short for a fresh cluster's first answer.
            var ready = ""
            for _ in 0..<10 {
                ready = try await client.execute(uri: "/ready", method: .get) { String(buffer: $0.body) }
                if ready.contains(#""ready":true"#) { break }
            }
            #expect(ready.contains(#""ready":true"#))
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""openapi" : "3.1.0""#))
            }
            // A client's request id is echoed, so its logs and ours can be joined.
            try await client.execute(uri: "/health", method: .get, headers: [.xRequestID: "trace-123"]) { response in
                #expect(response.headers[.xRequestID] == "trace-123")
            }
        }
    }

    @Test func onlyAdminsCreateDrops() async throws {
        let fixture = try await ServerFixture("admin")
        let body = ByteBuffer(
            string:
                #"{"name":"Air Max","priceCents":15000,"totalStock":3,"perUserLimit":1,"reserveTTLMilliseconds":2000}"#)
        try await fixture.application().test(.router) { client in
            try await client.execute(
                uri: "/v1/drops", method: .post, headers: [.contentType: "application/json"], body: body
            ) { response in
                #expect(response.status == .unauthorized)
                #expect(response.errorCode == "unauthorized")
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
            }
            try await client.execute(
                uri: "/v1/drops", method: .post, headers: try await fixture.headers(5, json: true), body: body
            ) { response in
                #expect(response.status == .forbidden)
                #expect(response.errorCode == "forbidden")
            }
            let id = try await client.execute(
                uri: "/v1/drops", method: .post, headers: try await fixture.headers(1, role: .admin, json: true),
                body: body
            ) { response in
                #expect(response.status == .created)
                let id = try response.json(Identified.self).id
                #expect(response.headers[.location] == "/v1/drops/\(id)")
                return id
            }
            try await client.execute(uri: "/v1/drops/\(id)", method: .get) { response in
                let drop = try response.json(DropResponse.self)
                #expect(
                    drop.name == "Air Max" && drop.priceCents == 15000 && drop.totalStock == 3
                        && drop.availableStock == 3)
                #expect(
                    drop.reservedStock == 0 && drop.soldCount == 0 && drop.reserveTTLMilliseconds == 2000
                        && drop.recentPurchases.isEmpty)
            }
        }
    }

    @Test(arguments: Strategy.allCases)
    func aClaimLivesThroughReservePurchaseReplayAndCancel(strategy: Strategy) async throws {
        let fixture = try await ServerFixture("lifecycle_\(strategy)", strategy: strategy)
        try await fixture.application().test(.router) { client in
            let drop = try await fixture.createDrop(client, stock: 2)
            let buyer = try await fixture.headers(42)
            let reservation = try await client.execute(uri: "/v1/drops/\(drop)/reserve", method: .post, headers: buyer)
            { response in
                #expect(response.status == .created)
                let body = try response.json(ReservationResponse.self)
                #expect(body.status == "ACTIVE" && body.userId == 42 && body.dropId == drop)
                let created = try #require(RFC3339.date(body.createdAt))
                let expires = try #require(RFC3339.date(body.expiresAt))
                #expect(abs(expires.timeIntervalSince(created) - 60) < 0.01)
                return body.id
            }
            try await client.execute(uri: "/v1/drops/\(drop)/reserve", method: .post, headers: buyer) { response in
                #expect(response.status == .conflict)
                #expect(response.errorCode == "already_holding")
                // The answer names the hold (the rowlock engine does not know it: read from
                // the store), so a client that lost its reserve's answer can buy or cancel it.
                struct Holding: Decodable { let reservation: ReservationResponse }
                let held = try response.json(Holding.self).reservation
                #expect(held.id == reservation && held.status == "ACTIVE" && held.userId == 42)
            }
            var keyed = buyer
            keyed[.idempotencyKey] = "order-42"
            let first = try await client.execute(uri: "/v1/drops/\(drop)/purchase", method: .post, headers: keyed) {
                response in
                #expect(response.status == .created)
                #expect(response.headers[.idempotentReplayed] == nil)
                return try response.json(PurchaseResponse.self)
            }
            try await client.execute(uri: "/v1/drops/\(drop)/purchase", method: .post, headers: keyed) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.idempotentReplayed] == "true")
                let replay = try response.json(PurchaseResponse.self)
                #expect(replay.reservationId == reservation)
                #expect(replay == first)
            }
            try await client.execute(uri: "/v1/drops/\(drop)/reservation", method: .delete, headers: buyer) {
                response in
                #expect(response.status == .conflict)
                #expect(response.errorCode == "no_active_reservation")
            }
            // The limit of one per user holds after the purchase.
            try await client.execute(uri: "/v1/drops/\(drop)/reserve", method: .post, headers: buyer) { response in
                #expect(response.errorCode == "limit_reached")
            }
            let other = try await fixture.headers(43)
            try await client.execute(uri: "/v1/drops/\(drop)/reserve", method: .post, headers: other) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/v1/drops/\(drop)/reservation", method: .delete, headers: other) {
                response in
                #expect(response.status == .ok)
                let cancelled = try response.json(ReservationResponse.self)
                #expect(cancelled.status == "CANCELLED")
            }
            try await client.execute(uri: "/v1/reservations/me", method: .get, headers: buyer) { response in
                let list = try response.json(ReservationList.self)
                #expect(list.reservations.map(\.status) == ["PURCHASED"])
            }
            try await client.execute(uri: "/v1/drops/\(drop)", method: .get) { response in
                let body = try response.json(DropResponse.self)
                #expect(body.soldCount == 1 && body.availableStock == 1 && body.reservedStock == 0)
                #expect(body.recentPurchases.map(\.buyerName) == ["buyer 42"])
                // A public read names buyers, never their user ids.
                #expect(!String(buffer: response.body).contains("userId"))
            }
            try await client.execute(uri: "/v1/drops", method: .get) { response in
                #expect(!String(buffer: response.body).contains("userId"))
            }
        }
        #expect(try await fixture.rowCounts()["purchases"] == 1)
    }

    @Test func everyRejectionHasItsStatusAndCode() async throws {
        let fixture = try await ServerFixture("rejections")
        try await fixture.application().test(.router) { client in
            let drop = try await fixture.createDrop(client, stock: 1)
            let tomorrow = APITime.string(Date().addingTimeInterval(86_400))
            let later = try await fixture.createDrop(client, stock: 1, extra: #","startsAt":"\#(tomorrow)""#)
            try await client.execute(
                uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(1)
            ) { #expect($0.status == .created) }
            let cases: [(uri: String, user: UserID, status: HTTPResponse.Status, code: String)] = [
                ("/v1/drops/\(drop)/reserve", 2, .conflict, "sold_out"),
                ("/v1/drops/\(later)/reserve", 2, .conflict, "not_started"),
                ("/v1/drops/999999/reserve", 2, .notFound, "unknown_drop"),
                ("/v1/drops/\(drop)/purchase", 2, .conflict, "no_active_reservation"),
                ("/v1/drops/999999/purchase", 2, .notFound, "unknown_drop"),
            ]
            for item in cases {
                try await client.execute(uri: item.uri, method: .post, headers: try await fixture.headers(item.user)) {
                    response in
                    #expect(response.status == item.status, "\(item.uri)")
                    #expect(response.errorCode == item.code, "\(item.uri)")
                    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                }
            }
            try await client.execute(uri: "/v1/drops/999999", method: .get) { response in
                #expect(response.status == .notFound && response.errorCode == "unknown_drop")
            }
        }
    }

    @Test func pagesFollowTheCursor() async throws {
        let fixture = try await ServerFixture("pages")
        try await fixture.application().test(.router) { client in
            var created: [Int64] = []
            for _ in 0..<5 { created.append(try await fixture.createDrop(client)) }
            var seen: [Int64] = []
            var uri = "/v1/drops?limit=2"
            while true {
                let page = try await client.execute(uri: uri, method: .get) { try $0.json(DropPage.self) }
                seen += page.drops.map(\.id)
                guard let next = page.nextCursor else { break }
                uri = "/v1/drops?limit=2&after=\(next)"
            }
            #expect(seen == created)
        }
    }

    /// The page that holds a buying token runs only its own nonce'd script and style, cannot be
    /// framed, keeps the token for the tab only; HEAD works wherever GET does.
    @Test func theLivePageIsLockedDownAndHeadAnswersLikeGet() async throws {
        let fixture = try await ServerFixture("live_page")
        try await fixture.application().test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                let policy = try #require(response.headers[.contentSecurityPolicy])
                #expect(policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"))
                let nonce = try #require(policy.split(separator: "'").first { $0.hasPrefix("nonce-") }?.dropFirst(6))
                let page = String(buffer: response.body)
                #expect(page.contains(#"<script nonce="\#(nonce)">"#) && page.contains(#"<style nonce="\#(nonce)">"#))
                #expect(!page.contains("<script>") && !page.contains("localStorage"))
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                #expect(response.headers[.referrerPolicy] == "no-referrer")
            }
            try await client.execute(uri: "/", method: .get) { again in
                #expect(again.headers[.contentSecurityPolicy] != nil)
            }
            for path in ["/", "/health", "/v1/drops"] {
                try await client.execute(uri: path, method: .head) { response in
                    #expect(response.status == .ok, "HEAD \(path)")
                    #expect(response.body.readableBytes == 0)
                }
            }
        }
    }

    /// A HEAD answer carries the GET's Content-Length and no content (RFC 9110 §8.6); it sent
    /// `Content-Length: 0`, which a cache or a probe reads as the resource's size.
    @Test func headSaysTheLengthGetWouldSend() async throws {
        let fixture = try await ServerFixture("head_length")
        try await fixture.application().test(.live) { client in
            // Not "/": its script nonce, and so its length, differs per answer.
            for path in ["/health", "/openapi.json", "/v1/drops"] {
                let length = try await client.execute(uri: path, method: .get) { $0.body.readableBytes }
                try await client.execute(uri: path, method: .head) { response in
                    #expect(response.status == .ok, "HEAD \(path)")
                    #expect(response.headers[.contentLength] == String(length), "HEAD \(path)")
                    #expect(response.body.readableBytes == 0)
                }
            }
            // Counted as what the client sent, not as the GET that answered it.
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains(#"stockdrop_http_requests_total{route="/health",method="HEAD",status="200"} 1"#))
            #expect(metrics.contains(#"stockdrop_http_requests_total{route="/health",method="GET",status="200"} 1"#))
        }
    }

    /// A failover can leave an instance's address on a standby: it says it is not ready (the
    /// balancer stops sending) and refuses claims as "nothing applied", retryable.
    @Test func aDatabaseThatTurnedReadOnlyIsNotReadyAndRefusesClaims() async throws {
        let fixture = try await ServerFixture("read_only")
        let application = try await fixture.application()
        try await application.test(.router) { client in
            let drop = try await fixture.createDrop(client, stock: 5)
            let database = try #require(URLComponents(string: fixture.configuration.databaseURL)?.path.dropFirst())
            let admin = try await PostgresConnection.connect(fixture.configuration.databaseURL)
            try await admin.execute("ALTER DATABASE \(database) SET default_transaction_read_only = on")
            // Every open session of the server reconnects and finds the database read-only.
            try await admin.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await admin.close()
            var body = ""
            for _ in 0..<20 {
                body = try await client.execute(uri: "/ready", method: .get) { String(buffer: $0.body) }
                if body.contains(#""database":"read_only""#) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(body.contains(#""ready":false"#) && body.contains(#""database":"read_only""#), "\(body)")
            var status: HTTPResponse.Status = .ok
            var code: String?
            for _ in 0..<10 {
                (status, code) = try await client.execute(
                    uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(7)
                ) { ($0.status, $0.errorCode) }
                if code == "unavailable" { break }
            }
            #expect(status == .serviceUnavailable && code == "unavailable", "\(status) \(String(describing: code))")
        }
    }

    /// Down, and saying nothing of itself: no SQLSTATE, no server text, no socket path in any
    /// answer (those are for the log).
    @Test func aDatabaseThatIsDownIs503NotA500() async throws {
        let configuration = ServerConfiguration(
            port: 0, databaseURL: "postgresql://postgres@/nowhere?host=/nonexistent&connect_timeout=2",
            jwtSecret: ServerFixture.secret, userRateLimit: nil, addressRateLimit: nil, logLevel: .critical)
        let (application, parts) = try await buildApplication(configuration)
        let token = try await TokenMinter.forTests().mint(Caller(userID: 3, name: "x", role: .user))
        let internals = ["nonexistent", "nowhere", "socket", "SQLSTATE", "libpq", "connection to server", ".s.PGSQL"]
        try await application.test(.router) { client in
            try await client.execute(uri: "/v1/drops", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.errorCode == "unavailable")
                #expect(response.headers[.retryAfter] != nil)
                for word in internals { #expect(!String(buffer: response.body).contains(word), "\(word) leaked") }
            }
            try await client.execute(
                uri: "/v1/drops/1/reserve", method: .post, headers: [.authorization: "Bearer \(token)"]
            ) { response in
                #expect(response.status == .serviceUnavailable)
                for word in internals { #expect(!String(buffer: response.body).contains(word), "\(word) leaked") }
            }
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains(#""ready":false"#))
                for word in internals { #expect(!String(buffer: response.body).contains(word), "\(word) leaked") }
            }
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
        }
    }
}
