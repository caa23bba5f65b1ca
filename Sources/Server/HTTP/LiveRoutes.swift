// The live feed (`GET /v1/live`, a WebSocket) and the live page that shows it (`/`). A socket
// is authenticated like every other route, by the bearer token: in the Authorization header,
// or (browsers cannot set headers on a WebSocket) as `?token=`. It gets a snapshot of every
// drop first, then public events and the private events of its own user only.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The request context of WebSocket upgrades (a router of their own).
public struct LiveSocketContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

struct LiveRoutes: Sendable {
    let events: EventHub
    let snapshot: LiveSnapshot
    let authority: TokenAuthority

    func add(to router: Router<LiveSocketContext>) {
        let events = self.events, snapshot = self.snapshot, authority = self.authority
        router.ws("/v1/live", shouldUpgrade: { request, _ in
            _ = try await Self.caller(of: request, authority: authority)
            return .upgrade([:])
        }) { inbound, outbound, context in
            guard let caller = try? await Self.caller(of: context.request, authority: authority) else { return }
            let outbox = events.subscribe(user: caller.userID)
            defer { events.unsubscribe(outbox) }
            // Subscribed first, then the snapshot: nothing committed in between is missed.
            if let first = await snapshot.make() { outbox.push(first) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while let (events, dropped) = await outbox.take() {
                        if dropped > 0 { try await outbound.write(.text(#"{"type":"events.dropped","count":\#(dropped)}"#)) }
                        for event in events { try await outbound.write(.text(event.json)) }
                    }
                }
                // Clients only listen; reading keeps the close handshake and pings flowing.
                var messages = inbound.makeAsyncIterator()
                do {
                    while try await messages.nextMessage(maxSize: 4_096) != nil {}
                } catch {
                    outbox.close()
                    throw error
                }
                outbox.close()
                try await group.waitForAll()
            }
        }
    }

    static func caller(of request: Request, authority: TokenAuthority) async throws -> Caller {
        let token = request.headers.bearer?.token ?? request.uri.queryParameters["token"].map(String.init)
        guard let token, !token.isEmpty else { throw APIError.unauthorized("a bearer token is required (header, or ?token= for browsers)") }
        do {
            return try await authority.verify(token)
        } catch let error as TokenError {
            throw APIError.unauthorized(error.message)
        }
    }
}
