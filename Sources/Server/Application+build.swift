// Builds the server: the engine host, the router with its middleware chain, and the
// Hummingbird application whose ServiceGroup shuts down in order on SIGTERM/SIGINT: the HTTP
// server stops accepting and answers its requests first, then the engine commits its
// batches in flight and closes the pool. Tests call this, exactly as `stockdrop serve` does.
import Engine
import Hummingbird
import HummingbirdWebSocket
import ServiceLifecycle
import Logging
import NIOCore
import NIOPosix
import Synchronization

public struct ServerParts: Sendable {
    public let engine: EngineHost
    public let metrics: ServerMetrics
    public let authority: TokenAuthority
}

public func buildApplication(_ configuration: ServerConfiguration, clock: any WallClock = SystemClock(),
                             onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in })
    async throws -> (application: some ApplicationProtocol, parts: ServerParts) {
    var logger = Logger(label: "stockdrop")
    logger.logLevel = configuration.logLevel
    let metrics = ServerMetrics()
    let authority = try await TokenAuthority(secret: configuration.jwtSecret, clock: clock)
    let engine = EngineHost(configuration: configuration, metrics: metrics, logger: logger)
    let router = buildRouter(configuration, engine: engine, metrics: metrics, authority: authority, clock: clock)
    let liveRouter = buildLiveRouter(engine: engine, authority: authority)
    // Services stop in reverse order: the HTTP server, then the engine (its last batches'
    // events still reach the relay), then the relay.
    var services: [any Service] = []
    if let redisURL = configuration.redisURL {
        let relay = RedisRelay(url: redisURL, hub: engine.events, logger: logger) { await engine.liveSnapshot() }
        engine.relay = relay
        services.append(relay)
    }
    services.append(engine)
    let application = Application(
        router: router,
        server: .http1WebSocketUpgrade(webSocketRouter: liveRouter),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "stockdrop"),
        services: services,
        onServerRunning: onServerRunning,
        eventLoopGroupProvider: configuration.eventLoopThreads.map { .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0)) } ?? .singleton,
        logger: logger)
    return (application, ServerParts(engine: engine, metrics: metrics, authority: authority))
}

func buildRouter(_ configuration: ServerConfiguration, engine: EngineHost, metrics: ServerMetrics, authority: TokenAuthority,
                 clock: any WallClock) -> Router<StockdropContext> {
    let router = Router(context: StockdropContext.self)
    let table = RouteTableBox()
    router.add(middleware: RequestLogMiddleware(metrics: metrics, proxies: configuration.trustedProxies))
    router.add(middleware: ErrorMiddleware(routes: table))
    OperationsRoutes(engine: engine, metrics: metrics).add(to: router)
    LivePage.add(to: router)
    if let limit = configuration.addressRateLimit {
        router.add(middleware: RateLimitMiddleware(limiter: RateLimiter(limit: limit, clock: clock), scope: "client address") { _, context in context.clientAddress })
    }
    router.add(middleware: TokenAuthenticator(authority: authority))
    if let limit = configuration.userRateLimit {
        router.add(middleware: RateLimitMiddleware(limiter: RateLimiter(limit: limit, clock: clock), scope: "user") { _, context in
            context.identity.map { "user:\($0.userID)" }
        })
    }
    DropRoutes(engine: engine, clock: clock).add(to: router)
    table.set(RouteTable(router.routes.map { (path: $0.path.description, method: $0.method.rawValue) }))
    return router
}

/// WebSocket upgrades have a router (and a request context) of their own.
func buildLiveRouter(engine: EngineHost, authority: TokenAuthority) -> Router<LiveSocketContext> {
    let router = Router(context: LiveSocketContext.self)
    LiveRoutes(engine: engine, authority: authority).add(to: router)
    return router
}

/// The route table, filled once every route is registered (the error middleware is added first).
final class RouteTableBox: Sendable {
    private let table = Mutex(RouteTable([]))
    func set(_ value: RouteTable) { table.withLock { $0 = value } }
    func methods(matching path: String) -> [String] { table.withLock { $0.methods(matching: path) } }
}
