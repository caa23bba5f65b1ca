// The bearer token's payload: HS256 over `sub` (the user id, a positive integer), a display
// name for the purchase feed, a role, and an expiry that is always checked. `name` and `iat`
// may be left out (server.md lists sub, name, role and exp; a token without `iat` was refused
// as malformed): a caller without a name shows as "user <id>".
import Foundation
import JWTKit

struct TokenClaims: JWTPayload {
    var sub: SubjectClaim
    var name: String?
    var role: Caller.Role
    var exp: ExpirationClaim
    var iat: IssuedAtClaim?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }

    /// The caller the claims name, or why they name none.
    var caller: Result<Caller, TokenError> {
        guard let userID = Int64(sub.value), userID > 0 else {
            return .failure(TokenError(message: "the token's subject is not a user id"))
        }
        let name = self.name ?? "user \(userID)"
        // 200 characters, and bytes bounded too: one character may carry any number of marks.
        guard name.count <= 200, name.utf8.count <= 800 else {
            return .failure(TokenError(message: "the token's name is longer than 200 characters or 800 bytes"))
        }
        // Shown to every buyer in the feed: no control characters, no text-direction overrides.
        guard !name.unicodeScalars.contains(where: Self.unprintable) else {
            return .failure(TokenError(message: "the token's name holds control or text-direction characters"))
        }
        return .success(Caller(userID: userID, name: name, role: role))
    }

    /// Control characters, line and paragraph separators (they break a feed line), and the
    /// marks, embeddings, overrides and isolates that turn text's direction.
    private static func unprintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: return true
        default:
            return [0x061C, 0x200E, 0x200F].contains(scalar.value) || (0x202A...0x202E).contains(scalar.value)
                || (0x2066...0x2069).contains(scalar.value)
        }
    }
}
