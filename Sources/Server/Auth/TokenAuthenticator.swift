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
        guard let bearer = request.headers.bearer, !bearer.token.isEmpty else {
            throw APIError.unauthorized("the Authorization header must be \"Bearer <token>\"")
        }
        do {
            return try await authority.verify(bearer.token)
        } catch let error as TokenError {
            throw APIError.unauthorized(error.message)
        }
    }
}
