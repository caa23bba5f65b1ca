// Builds the server: each part of the engine's side in its own small type, the router with
// its middleware chain, and the Hummingbird application whose ServiceGroup shuts down in order
// on SIGTERM/SIGINT: the HTTP server stops accepting and answers its requests first, then the
// engine commits its batches in flight and gives up its leases, then the instance leaves the
// directory and the relay stops. Tests call this, exactly as `stockdrop serve` does.
import Engine
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// What the routes and the tests are handed: each part does one job.
public struct ServerParts: Sendable {
    public let inventory: any Inventory
    public let events: EventHub
    public let metrics: ServerMetrics
    public let authority: TokenAuthority
    /// The Redis relay when REDIS_URL is set (its status shows in /ready).
    public let relay: RedisRelay?
    let readiness: ReadinessProbe
    let gauges: GaugeRefresher
    let snapshot: SnapshotEvents
    let buyers: BuyerNames
    let directory: InstanceDirectory
    let forwarder: ClaimForwarder
    /// One budget per client address and per user, shared by requests and socket upgrades.
    let addressLimiter: RateLimiter?
    let userLimiter: RateLimiter?
    let logSink: LogSink?
    /// Requests in flight and the event loops' lateness; decides when reserves are shed.
    public let overload: OverloadMonitor
    /// Drop reads from committed state in memory (`GET /v1/drops…`, the live page's snapshot).
    public let reads: DropReads
    /// Set when the graceful shutdown begins (`ShutdownNotice`): answers then close their
    /// connections.
    public let draining = DrainingFlag()

    public var strategy: Strategy { inventory.strategy }
    public var instance: String { directory.instance }
}

/// `eventLoopGroup`: the caller's event loops (a test that stalls them stalls no other test's
/// server); by default `configuration.eventLoopThreads` of a group of its own, else NIO's shared one.
public func buildApplication(
    _ configuration: ServerConfiguration, clock: any WallClock = SystemClock(),
    eventLoopGroup: (any EventLoopGroup)? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
)
    async throws -> (application: some ApplicationProtocol, parts: ServerParts)
{
    var logger = Logger(label: "stockdrop")
    logger.logLevel = configuration.logLevel
    logger[metadataKey: "instance"] = "\(configuration.owner.instance)"
    let metrics = ServerMetrics()
    let group: any EventLoopGroup =
        eventLoopGroup
        ?? configuration.eventLoopThreads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
        ?? MultiThreadedEventLoopGroup.singleton
    let overload = OverloadMonitor(
        latencyTargetMilliseconds: configuration.latencyTargetMilliseconds,
        minimumInFlight: configuration.shedMinimumInFlight, group: group, metrics: metrics, logger: logger)
    let authority = try await TokenAuthority(secret: configuration.jwtSecret, clock: clock)
    let pool = PostgresPool(
        url: configuration.databaseURL, size: configuration.poolSize, deadlines: configuration.databaseDeadlines)
    let postgres = PostgresStore(pool: pool)
    let store = InstrumentedStore(base: postgres, metrics: metrics)
    let reads = DropReads(store: store)
    let events = EventHub(stockEventsPerSecond: configuration.stockEventsPerSecond, reads: reads)
    let publisher = CommitPublisher(events: events, reads: reads)
    let inventory: any Inventory =
        switch configuration.strategy {
        case .actor:
            ActorEngine(
                store: store, owner: configuration.owner, clock: clock,
                queueLatencyTarget: configuration.latencyTargetMilliseconds > 0
                    ? Double(configuration.latencyTargetMilliseconds) / 1_000 : nil,
                onCommit: publisher.committed)
        case .rowlock: RowLockEngine(store: store, clock: clock, onCommit: publisher.committed)
        }
    let snapshot = SnapshotEvents(reads: reads)
    let directory = InstanceDirectory(instance: configuration.owner.instance, registry: postgres, logger: logger)
    let relay = configuration.redisURL.map { url in
        RedisRelay(url: url, hub: events, logger: logger) { await snapshot.make() }
    }
    let parts = ServerParts(
        inventory: inventory, events: events, metrics: metrics, authority: authority, relay: relay,
        readiness: ReadinessProbe(status: postgres),
        gauges: GaugeRefresher(inventory: inventory, status: postgres, metrics: metrics, events: events, relay: relay),
        snapshot: snapshot, buyers: BuyerNames(store: store), directory: directory,
        forwarder: ClaimForwarder(directory: directory, metrics: metrics, leases: inventory.leases),
        addressLimiter: configuration.addressRateLimit.map { RateLimiter(limit: $0, clock: clock) },
        userLimiter: configuration.userRateLimit.map { RateLimiter(limit: $0, clock: clock) },
        logSink: configuration.logSink, overload: overload, reads: reads)
    // Services stop in reverse order: the HTTP server; the directory entry (no instance
    // forwards here once this one stopped accepting); the engine, whose last batches' events
    // still reach the relay, and which closes the pool last; then the relay.
    let services: [any Service] =
        [relay].compactMap { $0 } + [
            EngineService(inventory: inventory, pool: pool, forwarder: parts.forwarder, logger: logger), directory,
            overload,
        ]
    let idleTimeout = TimeAmount.seconds(Int64(configuration.httpIdleTimeoutSeconds))
    let liveResponder = buildLiveRouter(parts: parts, proxies: configuration.trustedProxies, clock: clock)
        .buildResponder()
    let application = Application(
        responder: HeadAsGetResponder(base: buildRouter(configuration, parts: parts, clock: clock).buildResponder()),
        server: HTTPServerBuilder { responder in
            GuardedChildChannel(
                base: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: liveResponder,
                    configuration: .init(
                        http1: .init(
                            additionalChannelHandlers: [
                                LaterRequestRefusal(),
                                ShedHandler(monitor: overload, metrics: metrics, draining: parts.draining),
                            ],
                            idleTimeout: idleTimeout))), idleTimeout: idleTimeout)
        },
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "stockdrop",
            backlog: ServerDefaults.listenBacklog,
            availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections, logger: logger)),
        services: services,
        onServerRunning: { channel in
            // Listed before anything says this instance is running, so no other instance
            // forwards to the address of its previous run.
            let port = channel.localAddress?.port ?? configuration.port
            await directory.advertise(
                configuration.advertiseURL ?? HTTPAddress.url(host: configuration.host, port: port))
            await onServerRunning(channel)
        },
        eventLoopGroupProvider: .shared(group),
        logger: logger)
    return (application, parts)
}

func buildRouter(
    _ configuration: ServerConfiguration, parts: ServerParts, clock: any WallClock
) -> Router<StockdropContext> {
    let router = Router(context: StockdropContext.self)
    let table = RouteTableBox()
    router.add(middleware: CloseWhileDraining(flag: parts.draining))
    router.add(
        middleware: RequestLogMiddleware(
            metrics: parts.metrics, proxies: configuration.trustedProxies,
            successSample: configuration.logSuccessSample,
            sink: configuration.logSink, instance: configuration.owner.instance))
    router.add(middleware: ErrorMiddleware(routes: table))
    router.add(middleware: BodyLimitMiddleware())
    OperationsRoutes(parts: parts).add(to: router)
    LivePage.add(to: router)
    if let limiter = parts.addressLimiter {
        router.add(
            middleware: RateLimitMiddleware(limiter: limiter, scope: "client address") {
                _, context in context.clientAddress
            })
    }
    router.add(middleware: TokenAuthenticator(authority: parts.authority))
    if let limiter = parts.userLimiter {
        router.add(
            middleware: RateLimitMiddleware(limiter: limiter, scope: "user") {
                _, context in
                context.identity.map { "user:\($0.userID)" }
            })
    }
    router.add(middleware: InstanceHeader(instance: parts.instance))
    LiveRoutes.addPlainRequest(to: router, authority: parts.authority)
    DropRoutes(
        inventory: parts.inventory, claims: ClaimPath(inventory: parts.inventory, forwarder: parts.forwarder),
        reads: parts.reads, events: parts.events, buyers: parts.buyers, clock: clock
    )
    .add(to: router)
    table.set(RouteTable(router.routes.map { (path: $0.path.description, method: $0.method.rawValue) }))
    return router
}

/// WebSocket upgrades have a router (and a request context) of their own.
func buildLiveRouter(parts: ServerParts, proxies: TrustedProxies, clock: any WallClock) -> Router<LiveSocketContext> {
    let router = Router(context: LiveSocketContext.self)
    LiveRoutes(parts: parts, proxies: proxies, clock: clock).add(to: router)
    return router
}

/// The route table, filled once every route is registered (the error middleware is added first).
final class RouteTableBox: Sendable {
    private let table = Mutex(RouteTable([]))
    func set(_ value: RouteTable) { table.withLock { $0 = value } }
    func methods(matching path: String) -> [String] { table.withLock { $0.methods(matching: path) } }
}
