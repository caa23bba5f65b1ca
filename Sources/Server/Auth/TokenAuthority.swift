// Verifies bearer tokens with the shared secret (HS256; they are minted by LoadGen's
// `TokenMinter`, as by any client holding the secret). Verified tokens are cached until they
// expire, so a buyer's next requests skip the parse and HMAC; a forged or altered token never
// matches a cached string, and expiry is re-checked on every hit.
import Engine
import Foundation
import JWTKit
import Synchronization

public struct TokenError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public final class TokenAuthority: Sendable {
    /// Shortest secret accepted: RFC 7518 §3.2 requires an HS256 key at least as long as the
    /// hash output (32 bytes), and jwt-kit asserts it.
    public static let minimumSecretBytes = 32

    private let keys: JWTKeyCollection
    private let clock: any WallClock
    private let cacheCapacity: Int
    private let cache = Mutex<[String: (caller: Caller, expiresAt: Date)]>([:])

    public init(
        secret: String, clock: any WallClock = SystemClock(),
        cacheCapacity: Int = ServerDefaults.verifiedTokenCacheEntries
    ) async throws {
        guard secret.utf8.count >= Self.minimumSecretBytes else {
            throw TokenError(message: "the JWT secret must be at least \(Self.minimumSecretBytes) bytes")
        }
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.clock = clock
        self.cacheCapacity = cacheCapacity
    }

    /// A random secret for `serve --dev`: 32 bytes, hex.
    public static func generateSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The token's caller; throws `TokenError` for a forged, malformed or expired token.
    public func verify(_ token: String) async throws -> Caller {
        try await verifyWithExpiry(token).caller
    }

    /// The caller and the instant the token stops being valid (a live socket closes then).
    public func verifyWithExpiry(_ token: String) async throws -> (caller: Caller, expiresAt: Date) {
        let now = clock.now()
        if let hit = cache.withLock({ $0[token] }), hit.expiresAt > now { return hit }
        let claims: TokenClaims
        do {
            claims = try await keys.verify(token, as: TokenClaims.self)
        } catch {
            throw TokenError(message: Self.reason(error))
        }
        let caller = try claims.caller.get()
        // jwt-kit checked expiry against the system clock; ours is the one tests drive.
        guard claims.exp.value > now else { throw TokenError(message: "the token has expired") }
        cache.withLock { cache in
            if cache.count >= cacheCapacity { cache.removeAll(keepingCapacity: true) }
            cache[token] = (caller, claims.exp.value)
        }
        return (caller, claims.exp.value)
    }

    private static func reason(_ error: any Error) -> String {
        guard let jwtError = error as? JWTError else { return "the token is malformed" }
        switch jwtError.errorType {
        case .claimVerificationFailure: return "the token has expired"
        case .signatureVerificationFailed: return "the token's signature is invalid"
        default: return "the token is malformed"
        }
    }
}
