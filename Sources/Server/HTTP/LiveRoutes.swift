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
    let peer: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        peer = source.channel.remoteAddress.map(StockdropContext.host) ?? "unknown"
    }
}

/// Sockets are bounded like requests: an upgrade spends the same rate budgets (per client
/// address, per user) as any request; a user may keep `maxLiveSocketsPerUser` open and the
/// instance `maxLiveSockets` (past them the socket is closed at once with 1008 or 1013); a
/// socket is closed when its token expires. The snapshot a socket starts with comes from a
/// cache at most a second old, followed by the newest stock value of every drop.
struct LiveRoutes: Sendable {
    let parts: ServerParts
    let proxies: TrustedProxies
    let clock: any WallClock

    func add(to router: Router<LiveSocketContext>) {
        let events = parts.events
        let snapshot = parts.snapshot
        let authority = parts.authority
        let metrics = parts.metrics
        let addressLimiter = parts.addressLimiter
        let userLimiter = parts.userLimiter
        let proxies = self.proxies
        let clock = self.clock
        router.ws(
            RouterPath(RoutePaths.live),
            shouldUpgrade: { request, context in
                let address = proxies.client(
                    peer: context.peer, forwardedFor: request.headers[values: .xForwardedFor].joined(separator: ","))
                func enforce(_ limiter: RateLimiter?, _ key: String, scope: String) throws {
                    do {
                        try limiter?.enforce(key, scope: scope)
                    } catch {
                        metrics.recordSocket(event: "rate_limited")
                        throw error
                    }
                }
                // A refused upgrade is a bare 400 (the WebSocket handshake has no body): its
                // reason is only here, in the log, and a socket opened is logged once too.
                do {
                    try enforce(addressLimiter, address, scope: "client address")
                    let caller = try await Self.caller(of: request, authority: authority).caller
                    try enforce(userLimiter, "user:\(caller.userID)", scope: "user")
                    context.logger.info(
                        "live socket upgrade", metadata: ["client": "\(address)", "user": "\(caller.userID)"])
                    return .upgrade([:])
                } catch let error as APIError {
                    context.logger.notice(
                        "live socket upgrade refused",
                        metadata: [
                            "client": "\(address)", "code": "\(error.code.rawValue)", "reason": "\(error.message)",
                        ])
                    throw error
                }
            }
        ) { inbound, outbound, context in
            guard let (caller, expiresAt) = try? await Self.caller(of: context.request, authority: authority) else {
                return
            }
            let outbox: SocketOutbox
            switch events.sockets.subscribe(user: caller.userID) {
            case .success(let subscribed): outbox = subscribed
            case .failure(.userLimit):
                metrics.recordSocket(event: "refused_user_limit")
                try await outbound.close(
                    .policyViolation,
                    reason: "more than \(ServerDefaults.maxLiveSocketsPerUser) live sockets for this user")
                return
            case .failure(.instanceFull):
                metrics.recordSocket(event: "refused_instance_full")
                try await outbound.close(
                    .unknown(1013), reason: "this instance has all the live sockets it takes; try again later")
                return
            case .failure(.shuttingDown):
                try await outbound.close(.goingAway, reason: "the server is shutting down")
                return
            }
            metrics.recordSocket(event: "opened")
            defer {
                events.sockets.unsubscribe(outbox)
                metrics.recordSocket(event: "closed")
            }
            // Subscribed first, then the snapshot: nothing committed in between is missed.
            guard let first = await snapshot.cached() else {
                // The database did not answer: a socket without its starting state is useless.
                try await outbound.close(.unknown(1013), reason: "the drops could not be read; try again later")
                return
            }
            events.sockets.greet(outbox, with: first)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Whatever was pending goes in one frame (one write, one syscall): a single
                    // event as itself, several as a JSON array of them, in order. At most one
                    // frame per interval: a hot drop's feed reaches a thousand sockets as ten
                    // frames a second each, not one per purchase.
                    let interval = Duration.milliseconds(ServerDefaults.liveFrameIntervalMilliseconds)
                    while let (frames, dropped) = await outbox.take() {
                        let written = ContinuousClock.now
                        var texts = frames.map(\.text)
                        if dropped > 0 { texts.insert(#"{"type":"events.dropped","count":\#(dropped)}"#, at: 0) }
                        guard !texts.isEmpty else { continue }
                        try await outbound.write(
                            .text(texts.count == 1 ? texts[0] : "[" + texts.joined(separator: ",") + "]"))
                        try await Task.sleep(until: written.advanced(by: interval), clock: .continuous)
                    }
                    if outbox.isGoingAway {
                        defer { outbox.farewellSent() }
                        try? await outbound.close(.goingAway, reason: "the server is shutting down")
                    }
                }
                group.addTask {
                    let remaining = expiresAt.timeIntervalSince(clock.now())
                    try? await Task.sleep(for: .milliseconds(Int64(max(0, remaining) * 1_000)))
                    guard !Task.isCancelled else { return }
                    outbox.close()
                    metrics.recordSocket(event: "token_expired")
                    try? await outbound.close(.policyViolation, reason: "the token has expired")
                }
                // Clients only listen; reading keeps the close handshake and pings flowing.
                var messages = inbound.makeAsyncIterator()
                do {
                    while try await messages.nextMessage(maxSize: 4_096) != nil {}
                } catch {
                    outbox.close()
                    group.cancelAll()
                    throw error
                }
                outbox.close()
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }

    /// `GET /v1/live` without the upgrade headers, on the HTTP router: 401 without a valid
    /// token, else 426 saying how to ask (a browser or a fuzzer that forgot the upgrade learns
    /// why, instead of a 404).
    static func addPlainRequest(to router: Router<StockdropContext>, authority: TokenAuthority) {
        router.get(RouterPath(RoutePaths.live)) { request, _ -> Response in
            _ = try await caller(of: request, authority: authority)
            throw APIError(.upgradeRequired, APIError.Code.upgradeRequired.meaning)
        }
    }

    static func caller(of request: Request, authority: TokenAuthority) async throws -> (caller: Caller, expiresAt: Date)
    {
        let token =
            TokenAuthenticator.bearerToken(request.headers) ?? request.uri.queryParameters["token"].map(String.init)
        guard let token, !token.isEmpty else {
            throw APIError.unauthorized("a bearer token is required (header, or ?token= for browsers)")
        }
        do {
            return try await authority.verifyWithExpiry(token)
        } catch let error as TokenError {
            throw APIError.unauthorized(error.message)
        }
    }
}
