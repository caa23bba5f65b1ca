// What every request carries through the middleware chain: the verified caller (if any), the
// peer's address (for rate limits and logs) and the request id that ties logs to responses.
import Hummingbird
import HummingbirdAuth
import Logging
import NIOCore

public struct StockdropContext: AuthRequestContext, RemoteAddressRequestContext, HeadAnsweringContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Caller?
    public let remoteAddress: SocketAddress?
    /// The client address after trusted proxies' `X-Forwarded-For` (set by RequestLogMiddleware).
    public var clientAddress: String
    /// The connection, so a body too large to read can be cut off (`BodyLimitMiddleware`).
    let channel: any Channel
    /// The client sent HEAD, answered as the GET (`HeadAsGetResponder`).
    var answersHead = false

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        identity = nil
        remoteAddress = source.channel.remoteAddress
        clientAddress = remoteAddress.map(Self.host) ?? "unknown"
    }

    /// Request bodies are small JSON objects; Hummingbird's decoder honours this too.
    public var maxUploadSize: Int { ServerDefaults.maxBodyBytes }

    public var requestDecoder: StrictJSONDecoder { StrictJSONDecoder() }

    static func host(_ address: SocketAddress) -> String {
        address.ipAddress ?? address.pathname ?? "unknown"
    }

    /// The caller, or 401: no route that needs one ever runs with a default user.
    func caller() throws -> Caller {
        guard let identity else { throw APIError.unauthorized("a bearer token is required") }
        return identity
    }
}
