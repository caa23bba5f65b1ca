// Once a graceful shutdown began, every answer says `Connection: close` (RFC 9112 §9.6): the
// server closes each connection after its answer, and a client that was not told sent its next
// request on it and lost it unanswered (200 keep-alive buyers of a SIGTERM'd server: every one
// of their next POSTs, 29–97 ms later, was met by a closed connection, not knowing whether it
// was applied). Told, a client opens a new connection, to another instance.
import Hummingbird
import Synchronization

public final class DrainingFlag: Sendable {
    private let draining = Atomic<Bool>(false)

    public init() {}

    /// The graceful shutdown began.
    public func begin() { draining.store(true, ordering: .relaxed) }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }
}

struct CloseWhileDraining: RouterMiddleware {
    typealias Context = StockdropContext
    let flag: DrainingFlag

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response = try await next(request, context)
        if flag.isDraining { response.headers[.connection] = "close" }
        return response
    }
}
