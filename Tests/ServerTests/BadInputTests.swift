// Bad input never becomes a 500 and never writes anything: each request below is refused with
// its status and code, and afterwards the tables hold exactly what they held before.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import LoadGen
import NIOCore
import Testing

@testable import Server

@Suite struct BadInputTests {
    struct Case: CustomStringConvertible {
        let name: String
        let method: HTTPRequest.Method
        let uri: String
        var auth: Auth = .user
        var contentType: String? = "application/json"
        var body: String? = nil
        var extraHeaders: HTTPFields = [:]
        let status: HTTPResponse.Status
        let code: String
        var description: String { name }

        enum Auth {
            case none, user, admin
            case header(String)
        }
    }

    static func create(
        _ body: String, _ status: HTTPResponse.Status = .unprocessableContent, _ code: String = "validation_failed",
        name: String
    ) -> Case {
        Case(name: name, method: .post, uri: "/v1/drops", auth: .admin, body: body, status: status, code: code)
    }

    static let cases: [Case] = [
        create(#"{"name":"#, .badRequest, "invalid_json", name: "malformed JSON"),
        create("[1,2]", .badRequest, "invalid_json", name: "an array, not an object"),
        create("", .badRequest, "invalid_json", name: "an empty body"),
        create(
            #"{"name":"x","priceCents":1,"totalStock":1,"pad":""# + String(repeating: "x", count: 20_000) + #""}"#,
            .contentTooLarge, "payload_too_large", name: "a 20 kB body"),
        create(#"{"name":"x","priceCents":"100","totalStock":1}"#, name: "a string where a number belongs"),
        create(#"{"name":7,"priceCents":100,"totalStock":1}"#, name: "a number where a string belongs"),
        create(#"{"name":null,"priceCents":100,"totalStock":1}"#, name: "null name"),
        create(#"{"priceCents":100,"totalStock":1}"#, name: "a missing name"),
        create(
            #"{"name":"x","priceCents":100,"totalStock":1,"totalStok":5}"#, .unprocessableContent, "unknown_field",
            name: "an unknown field"),
        create(#"{"name":"x","priceCents":100,"totalStock":-5}"#, name: "negative stock"),
        create(#"{"name":"x","priceCents":100,"totalStock":0}"#, name: "zero stock"),
        create(#"{"name":"x","priceCents":100,"totalStock":1000000000000}"#, name: "huge stock"),
        create(#"{"name":"x","priceCents":100,"totalStock":1e40}"#, name: "stock that overflows"),
        create(#"{"name":"x","priceCents":1.5,"totalStock":1}"#, name: "a fractional price"),
        create(#"{"name":"x","priceCents":-1,"totalStock":1}"#, name: "negative price"),
        create(#"{"name":"x","priceCents":99999999999999999999999,"totalStock":1}"#, name: "price that overflows"),
        create(#"{"name":"x","priceCents":100,"totalStock":1,"reserveTTLMilliseconds":1}"#, name: "a 1 ms TTL"),
        create(
            #"{"name":"x","priceCents":100,"totalStock":1,"reserveTTLMilliseconds":9000000000}"#,
            name: "a TTL of months"),
        create(#"{"name":"x","priceCents":100,"totalStock":1,"perUserLimit":0}"#, name: "a zero per-user limit"),
        create(#"{"name":"x","priceCents":100,"totalStock":1,"startsAt":"tomorrow"}"#, name: "an unparsable start"),
        create(
            #"{"name":"x","priceCents":100,"totalStock":1,"startsAt":"9999-01-01T00:00:00Z"}"#,
            name: "a start centuries away"),
        create(#"{"name":"","priceCents":100,"totalStock":1}"#, name: "an empty name"),
        create(#"{"name":"cut\u0000short","priceCents":100,"totalStock":1}"#, name: "a NUL in the name"),
        create(
            #"{"name":""# + String(repeating: "🇫🇷", count: 150) + #"","priceCents":100,"totalStock":1}"#,
            name: "150 flags: 300 code points"),
        Case(
            name: "a form body", method: .post, uri: "/v1/drops", auth: .admin,
            contentType: "application/x-www-form-urlencoded", body: "name=x",
            status: .unsupportedMediaType, code: "unsupported_media_type"),
        Case(
            name: "a non-numeric drop id", method: .post, uri: "/v1/drops/abc/reserve", status: .badRequest,
            code: "invalid_parameter"),
        Case(
            name: "a 1 MB body on a route that reads none", method: .post, uri: "/v1/drops/1/reserve",
            body: String(repeating: "x", count: 1_000_000), status: .contentTooLarge, code: "payload_too_large"),
        Case(
            name: "a negative drop id", method: .post, uri: "/v1/drops/-1/reserve", status: .badRequest,
            code: "invalid_parameter"),
        Case(name: "drop id zero", method: .get, uri: "/v1/drops/0", status: .badRequest, code: "invalid_parameter"),
        Case(
            name: "an id past Int64", method: .post, uri: "/v1/drops/99999999999999999999/reserve", status: .badRequest,
            code: "invalid_parameter"),
        Case(
            name: "a cursor that is not an id", method: .get, uri: "/v1/drops?after=abc", status: .badRequest,
            code: "invalid_parameter"),
        Case(
            name: "a zero limit", method: .get, uri: "/v1/drops?limit=0", status: .badRequest, code: "invalid_parameter"
        ),
        Case(
            name: "a limit past the maximum", method: .get, uri: "/v1/drops?limit=101", status: .badRequest,
            code: "invalid_parameter"),
        Case(
            name: "a limit that overflows", method: .get, uri: "/v1/drops?limit=99999999999999999999",
            status: .badRequest, code: "invalid_parameter"),
        Case(
            name: "PUT on a drop", method: .put, uri: "/v1/drops/1", status: .methodNotAllowed,
            code: "method_not_allowed"),
        Case(
            name: "GET on reserve", method: .get, uri: "/v1/drops/1/reserve", status: .methodNotAllowed,
            code: "method_not_allowed"),
        Case(name: "an unknown route", method: .get, uri: "/v2/drops", status: .notFound, code: "not_found"),
        Case(
            name: "no token", method: .post, uri: "/v1/drops/1/reserve", auth: .none, status: .unauthorized,
            code: "unauthorized"),
        Case(
            name: "a garbage token", method: .post, uri: "/v1/drops/1/reserve", auth: .header("Bearer not.a.jwt"),
            status: .unauthorized, code: "unauthorized"),
        Case(
            name: "basic auth", method: .post, uri: "/v1/drops/1/reserve", auth: .header("Basic dXNlcjpwYXNz"),
            status: .unauthorized, code: "unauthorized"),
        Case(
            name: "a purchase on an unknown drop", method: .post, uri: "/v1/drops/999999/purchase", status: .notFound,
            code: "unknown_drop"),
        Case(
            name: "a long Idempotency-Key", method: .post, uri: "/v1/drops/1/purchase",
            extraHeaders: [.idempotencyKey: String(repeating: "k", count: 300)],
            status: .badRequest, code: "invalid_parameter"),
    ]

    /// Through the router, and through a real socket (where bodies arrive streamed).
    static func setup(_ name: String) -> TestingSetup { name == "live" ? .live : .router }

    @Test(arguments: ["router", "live"])
    func everyBadRequestIsRefusedAndWritesNothing(over transport: String) async throws {
        let fixture = try await ServerFixture("bad_input_\(transport)")
        try await fixture.application().test(Self.setup(transport)) { client in
            _ = try await fixture.createDrop(client, stock: 5)
            let before = try await fixture.rowCounts()
            for item in Self.cases {
                var headers = item.extraHeaders
                switch item.auth {
                case .none: break
                case .user: headers[.authorization] = "Bearer \(try await fixture.token(7))"
                case .admin: headers[.authorization] = "Bearer \(try await fixture.token(1, role: .admin))"
                case .header(let value): headers[.authorization] = value
                }
                if let contentType = item.contentType, item.body != nil { headers[.contentType] = contentType }
                if item.status == .contentTooLarge, let port = client.port {
                    // The refusal ends its connection (the rest of the body is never read).
                    let request = TestClient.Request(
                        item.uri, method: item.method, headers: headers, body: item.body.map { ByteBuffer(string: $0) })
                    let response = try await TestClient.withClient(host: "127.0.0.1", port: port) { own in
                        try await own.execute(request)
                    }
                    #expect(response.status == item.status, "\(item.name)")
                    #expect(String(buffer: response.body ?? ByteBuffer()).contains(item.code), "\(item.name)")
                    continue
                }
                try await client.execute(
                    uri: item.uri, method: item.method, headers: headers, body: item.body.map { ByteBuffer(string: $0) }
                ) { response in
                    #expect(response.status == item.status, "\(item.name): \(String(buffer: response.body))")
                    #expect(response.errorCode == item.code, "\(item.name): \(String(buffer: response.body))")
                }
            }
            let after = try await fixture.rowCounts()
            #expect(after == before)
        }
    }

    /// What a refusal says is what was wrong: a valid body whose number does not fit its field
    /// read "The given data was not valid JSON."; the API's stock range read as the engine's
    /// (0 and up); a body after a UTF-8 byte-order mark read "must be a JSON object".
    @Test func refusalsSayWhatWasWrongAndABOMIsNotContent() async throws {
        let fixture = try await ServerFixture("bad_input_messages")
        try await fixture.application().test(.router) { client in
            let admin = try await fixture.headers(1, role: .admin, json: true)
            for (body, says) in [
                (
                    #"{"name":"x","priceCents":100,"totalStock":1.5}"#,
                    "a number is fractional or out of range"
                ),
                (
                    #"{"name":"x","priceCents":99999999999999999999999,"totalStock":1}"#,
                    "a number is fractional or out of range"
                ),
                (
                    #"{"name":"x","priceCents":100,"totalStock":100000001}"#,
                    "totalStock must be at least 1 and at most 100000000"
                ),
            ] {
                try await client.execute(
                    uri: "/v1/drops", method: .post, headers: admin, body: ByteBuffer(string: body)
                ) {
                    #expect($0.status == .unprocessableContent)
                    #expect(String(buffer: $0.body).contains(says), "\(String(buffer: $0.body))")
                    #expect(!String(buffer: $0.body).contains("not valid JSON"))
                }
            }
            var bom = ByteBuffer(bytes: [0xEF, 0xBB, 0xBF])
            bom.writeString(#"{"name":"with a BOM","priceCents":100,"totalStock":1}"#)
            try await client.execute(uri: "/v1/drops", method: .post, headers: admin, body: bom) {
                #expect($0.status == .created, "\(String(buffer: $0.body))")
            }
        }
    }

    /// Tokens a client may well mint that must authenticate: without `iat` or `name` (the
    /// documents list sub, name, role and exp; a token without `iat` was "malformed"), and the
    /// scheme in lower case (RFC 9110 §11.1). A name too long, or one holding control or
    /// text-direction characters (shown to every buyer in the feed), is refused for what it is.
    @Test func tokensWithoutOptionalClaimsAuthenticateAndBadNamesAreNamed() async throws {
        let fixture = try await ServerFixture("tokens_optional_claims")
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: ServerFixture.secret), digestAlgorithm: .sha256)
        struct Minimal: JWTPayload {
            var sub: SubjectClaim
            var name: String?
            var role: String
            var exp: ExpirationClaim
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let later = ExpirationClaim(value: Date().addingTimeInterval(600))
        let bare = try await keys.sign(Minimal(sub: "50", role: "user", exp: later))
        let named = try await keys.sign(Minimal(sub: "51", name: "Ada", role: "user", exp: later))
        let long = try await keys.sign(
            Minimal(sub: "52", name: String(repeating: "n", count: 201), role: "user", exp: later))
        let control = try await keys.sign(Minimal(sub: "53", name: "evil\nname \u{202E}gnp", role: "user", exp: later))
        let marks = try await keys.sign(Minimal(sub: "55", name: "a\u{200F}b", role: "user", exp: later))
        let separator = try await keys.sign(Minimal(sub: "56", name: "line\u{2028}two", role: "user", exp: later))
        let heavy = try await keys.sign(
            Minimal(sub: "57", name: "e" + String(repeating: "\u{301}", count: 1_000), role: "user", exp: later))
        let minted = try await TokenMinter.forTests().mint(Caller(userID: 54, name: "Lower", role: .user))
        try await fixture.application().test(.router) { client in
            for (name, header) in [
                ("no iat, no name", "Bearer \(bare)"), ("no iat", "Bearer \(named)"),
                ("lower-case scheme", "bearer \(minted)"),
            ] {
                try await client.execute(uri: "/v1/reservations/me", method: .get, headers: [.authorization: header]) {
                    #expect($0.status == .ok, "\(name): \(String(buffer: $0.body))")
                }
            }
            for (token, reason) in [
                (long, "the token's name is longer than 200 characters or 800 bytes"),
                (control, "the token's name holds control or text-direction characters"),
                (marks, "the token's name holds control or text-direction characters"),
                (separator, "the token's name holds control or text-direction characters"),
                (heavy, "the token's name is longer than 200 characters or 800 bytes"),
            ] {
                try await client.execute(
                    uri: "/v1/reservations/me", method: .get, headers: [.authorization: "Bearer \(token)"]
                ) { response in
                    #expect(response.status == .unauthorized)
                    #expect(String(buffer: response.body).contains(reason), "\(String(buffer: response.body))")
                }
            }
        }
    }

    /// Tokens that must never authenticate: expired, signed with another secret, `alg: none`,
    /// a non-numeric subject, a role that does not exist.
    @Test(arguments: ["router", "live"])
    func forgedAndExpiredTokensAre401(over transport: String) async throws {
        let fixture = try await ServerFixture("tokens_\(transport)")
        let past = ManualClock(start: Date().addingTimeInterval(-7_200))
        let expired = try await TokenMinter.forTests().mint(
            Caller(userID: 5, name: "old", role: .user), lifetimeSeconds: 60, issuedAt: past.now())
        let forged = try await TokenMinter.forTests(secret: "another-secret-0123456789abcdef-0123456789").mint(
            Caller(userID: 5, name: "eve", role: .admin))
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: ServerFixture.secret), digestAlgorithm: .sha256)
        struct Loose: JWTPayload {
            var sub: SubjectClaim
            var name: String
            var role: String
            var exp: ExpirationClaim
            var iat: IssuedAtClaim
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let later = ExpirationClaim(value: Date().addingTimeInterval(600))
        let now = IssuedAtClaim(value: Date())
        let badSubject = try await keys.sign(Loose(sub: "alice", name: "a", role: "user", exp: later, iat: now))
        let badRole = try await keys.sign(Loose(sub: "5", name: "a", role: "root", exp: later, iat: now))
        let payload = Data(#"{"sub":"5","name":"x","role":"admin","exp":4102444800,"iat":0}"#.utf8)
            .base64EncodedString()
            .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                of: "/", with: "_")
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\(payload)."
        try await fixture.application().test(Self.setup(transport)) { client in
            for (name, token) in [
                ("expired", expired), ("forged", forged), ("alg none", unsigned), ("subject", badSubject),
                ("role", badRole),
                ("tampered", String(forged.dropLast(2)) + "xx"),
            ] {
                try await client.execute(
                    uri: "/v1/reservations/me", method: .get, headers: [.authorization: "Bearer \(token)"]
                ) { response in
                    #expect(response.status == .unauthorized, "\(name)")
                    #expect(response.errorCode == "unauthorized", "\(name)")
                }
            }
            // An invalid token is refused even where no token is needed.
            try await client.execute(uri: "/v1/drops", method: .get, headers: [.authorization: "Bearer \(forged)"]) {
                #expect($0.status == .unauthorized)
            }
        }
        #expect(try await fixture.rowCounts()["reservations"] == 0)
    }
}
