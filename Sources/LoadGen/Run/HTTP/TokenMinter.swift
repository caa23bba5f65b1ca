// Bearer tokens signed with the server's shared secret (HS256) in the claims shape `stockdrop
// serve` verifies (`TokenClaims`): sub (user id), name, role, exp, iat. The one minter: the
// harness's virtual users, `stockdrop token` and the server's tests all mint here, and the
// server only verifies. It lives with the harness because the harness talks to the server over
// the network only, as any client holding the secret would.
import Engine
import Foundation
import JWTKit
import Synchronization

public final class TokenMinter: Sendable {
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var name: String
        var role: String
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        func verify(using algorithm: some JWTAlgorithm) async throws { try exp.verifyNotExpired() }
    }

    private let keys = JWTKeyCollection()
    private let tokens = Mutex<[UserID: String]>([:])
    private let lifetimeSeconds: TimeInterval

    public init(secret: String, lifetimeSeconds: TimeInterval) async {
        self.lifetimeSeconds = lifetimeSeconds
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
    }

    /// The user's token, minted once per run.
    func token(for user: UserID) async throws -> String {
        if let token = tokens.withLock({ $0[user] }) { return token }
        let token = try await mint(user, role: "user")
        tokens.withLock { $0[user] = token }
        return token
    }

    /// Tokens of users minted before (`prepare`), in the same order; a user never minted gets
    /// one now.
    func tokens(for users: [UserID]) async throws -> [String] {
        var tokens: [String] = []
        tokens.reserveCapacity(users.count)
        for user in users { tokens.append(try await token(for: user)) }
        return tokens
    }

    /// An admin's token (to create the run's drops), not cached.
    func adminToken(for user: UserID) async throws -> String {
        try await mint(user, role: "admin")
    }

    private func mint(_ user: UserID, role: String) async throws -> String {
        try await mint(user: user, name: "\(role) \(user)", role: role)
    }

    /// A token for one caller: `name` is shown in the purchase feed, `role` is user or admin;
    /// valid from `issuedAt` for `lifetimeSeconds` (the minter's own when nil).
    public func mint(
        user: UserID, name: String, role: String, lifetimeSeconds: TimeInterval? = nil, issuedAt: Date = Date()
    ) async throws -> String {
        try await keys.sign(
            Claims(
                sub: SubjectClaim(value: String(user)), name: name, role: role,
                exp: ExpirationClaim(value: issuedAt.addingTimeInterval(lifetimeSeconds ?? self.lifetimeSeconds)),
                iat: IssuedAtClaim(value: issuedAt)))
    }
}
