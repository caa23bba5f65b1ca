// The bearer token's payload: HS256 over `sub` (the user id, a positive integer), a display
// name for the purchase feed, a role, and an expiry that is always checked.
import Foundation
import JWTKit

struct TokenClaims: JWTPayload {
    var sub: SubjectClaim
    var name: String
    var role: Caller.Role
    var exp: ExpirationClaim
    var iat: IssuedAtClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }

    /// The caller the claims name, or nil when the subject is not a user id.
    var caller: Caller? {
        guard let userID = Int64(sub.value), userID > 0, name.count <= 200 else { return nil }
        return Caller(userID: userID, name: name, role: role)
    }
}
