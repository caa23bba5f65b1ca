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
        // By bytes, on every authenticated request: no lowercased copy, no split.
        let bytes = value.utf8
        let scheme = Array("bearer".utf8)
        guard bytes.count > scheme.count + 1,
            zip(bytes, scheme).allSatisfy({ $0 | 0x20 == $1 }),
            bytes[bytes.index(bytes.startIndex, offsetBy: scheme.count)] == UInt8(ascii: " ")
        else { return nil }
        let token = value.utf8.dropFirst(scheme.count + 1).drop { $0 == UInt8(ascii: " ") }
        let trimmed = token.reversed().drop { $0 == UInt8(ascii: " ") }.count
        guard trimmed > 0 else { return nil }
        return String(Substring(token.prefix(trimmed)))
    }
}
