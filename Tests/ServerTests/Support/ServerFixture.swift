// A server on a database of its own, tokens for its users, and helpers to read answers.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LoadGen
import NIOCore
import TestSupport

@testable import Server

struct ServerFixture {
    static let secret = "test-secret-0123456789abcdef-0123456789"

    var configuration: ServerConfiguration
    let clock: any WallClock
    let minter: TokenMinter

    /// Rate limits are off unless asked for: tests send many requests as one user.
    init(
        _ name: String, strategy: Strategy = .actor, userRateLimit: RateLimit? = nil,
        addressRateLimit: RateLimit? = nil,
        trustedProxies: TrustedProxies = .none, clock: any WallClock = SystemClock()
    ) async throws {
        let url = try await TestDatabase.fresh("server_\(name)")
        configuration = ServerConfiguration(
            host: "127.0.0.1", port: 0, strategy: strategy, databaseURL: url, jwtSecret: Self.secret,
            userRateLimit: userRateLimit, addressRateLimit: addressRateLimit, trustedProxies: trustedProxies,
            logLevel: .warning)
        self.clock = clock
        minter = await TokenMinter.forTests()
    }

    func application() async throws -> some ApplicationProtocol {
        try await buildApplication(configuration, clock: clock).application
    }

    func token(_ user: UserID, role: Caller.Role = .user) async throws -> String {
        try await minter.mint(Caller(userID: user, name: "buyer \(user)", role: role), issuedAt: clock.now())
    }

    func headers(_ user: UserID, role: Caller.Role = .user, json: Bool = false) async throws -> HTTPFields {
        var fields: HTTPFields = [.authorization: "Bearer \(try await token(user, role: role))"]
        if json { fields[.contentType] = "application/json" }
        return fields
    }

    /// Creates a drop as an admin; returns its id.
    func createDrop(_ client: some TestClientProtocol, stock: Int = 10, extra: String = "") async throws -> Int64 {
        let body = #"{"name":"Test drop","priceCents":1500,"totalStock":\#(stock)\#(extra)}"#
        return try await client.execute(
            uri: "/v1/drops", method: .post, headers: try await headers(1, role: .admin, json: true),
            body: ByteBuffer(string: body)
        ) { response in
            guard response.status == .created else {
                throw FixtureError("create drop: \(response.status) \(String(buffer: response.body))")
            }
            return try response.json(Identified.self).id
        }
    }

    /// Rows in the server's tables, to prove a refused request wrote nothing.
    func rowCounts() async throws -> [String: Int] {
        let pool = PostgresPool(url: configuration.databaseURL, size: 1)
        defer { Task { await pool.close() } }
        let row = try await pool.query(
            """
            SELECT (SELECT count(*) FROM drops) AS drops, (SELECT count(*) FROM reservations) AS reservations,
                   (SELECT count(*) FROM purchases) AS purchases, (SELECT count(*) FROM users) AS users
            """
        ).first!
        return [
            "drops": try row.int("drops"), "reservations": try row.int("reservations"),
            "purchases": try row.int("purchases"), "users": try row.int("users"),
        ]
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Identified: Decodable { let id: Int64 }

struct ErrorBody: Decodable {
    struct Detail: Decodable {
        let code: String
        let message: String
    }
    let error: Detail
}

extension TestResponse {
    func json<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(body.readableBytesView))
    }

    /// The stable error code of an error answer (nil when the body is not the error shape).
    var errorCode: String? { try? json(ErrorBody.self).error.code }
}
