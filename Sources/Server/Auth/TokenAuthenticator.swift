// Bearer authentication: a valid token sets the caller; a token that is present but forged,
// malformed or expired is 401 at once, even on routes that need no caller, so a client never
// mistakes a broken token for an anonymous success.
import Hummingbird
import HummingbirdAuth

struct TokenAuthenticator: AuthenticatorMiddleware {
    typealias Context = StockdropContext
    let authority: TokenAuthority

    func authenticate(request: Request, context: Context) async throws -> Caller? {
        guard request.headers[.authorization] != nil else { return nil }
        guard let token = Self.bearerToken(request.headers) else {
            throw APIError.unauthorized("the Authorization header must be \"Bearer <token>\"")
        }
        do {
            return try await authority.verify(token)
        } catch let error as TokenError {
            throw APIError.unauthorized(error.message)
        }
    }

    /// The token of an `Authorization: Bearer <token>` header, the scheme in any case (RFC 9110
    /// §11.1: `bearer` was refused).
    static func bearerToken(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}
