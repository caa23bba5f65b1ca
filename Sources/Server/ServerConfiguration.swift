// Everything `stockdrop serve` can be told, by flags with environment fallbacks (docs/design.md:
// DATABASE_URL, STOCKDROP_JWT_SECRET, PORT). Tests build one directly.
import Engine
import Logging

public struct ServerConfigurationError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var strategy: Strategy
    public var databaseURL: String
    public var jwtSecret: String
    /// nil turns a limit off (load tests drive thousands of users from one address).
    public var userRateLimit: RateLimit?
    public var addressRateLimit: RateLimit?
    public var trustedProxies: TrustedProxies
    /// Connections to PostgreSQL: the rowlock pool (its baseline's knob) or the actor's.
    public var poolSize: Int
    public var logLevel: Logger.Level
    /// Where log lines are buffered (`stockdrop serve` sets it): its dropped-line count is on
    /// /metrics. Nil: whatever LoggingSystem was bootstrapped with.
    public var logSink: LogSink? = nil
    /// The share of successful requests that get a request log line (1: every one).
    public var logSuccessSample = 1.0
    /// NIO threads serving sockets; nil shares NIO's group (one per core).
    public var eventLoopThreads: Int?
    /// Redis for fanning live events out across instances; nil keeps them in this process.
    public var redisURL: String?
    public var stockEventsPerSecond: Double
    /// This instance in the drops' leases and in the instance directory, and how long its
    /// leases last (docs/design.md "Scale-out").
    public var owner: LeaseOwner
    /// Where other instances reach this one to forward claims; nil: http://host:port as bound.
    public var advertiseURL: String?
    /// How long anything waits on PostgreSQL (connect, statement, answer, a pooled connection).
    public var databaseDeadlines: DatabaseDeadlines = ServerDefaults.databaseDeadlines
    /// An HTTP connection idle this long is closed (ServerDefaults.httpIdleTimeoutSeconds).
    public var httpIdleTimeoutSeconds = ServerDefaults.httpIdleTimeoutSeconds
    /// Open connections accepted at most (ServerDefaults.maxConnections).
    public var maxConnections = ServerDefaults.maxConnections
    /// Past this a new reserve is shed (503 `overloaded`); 0 turns shedding off.
    public var latencyTargetMilliseconds = ServerDefaults.latencyTargetMilliseconds
    /// Requests in flight below which nothing is shed (ServerDefaults.shedMinimumInFlight).
    public var shedMinimumInFlight = ServerDefaults.shedMinimumInFlight

    public init(
        host: String = "127.0.0.1", port: Int = ServerDefaults.port, strategy: Strategy = .actor, databaseURL: String,
        jwtSecret: String,
        userRateLimit: RateLimit? = RateLimit(
            requestsPerSecond: ServerDefaults.userRequestsPerSecond, burst: ServerDefaults.userBurstRequests),
        addressRateLimit: RateLimit? = RateLimit(
            requestsPerSecond: ServerDefaults.addressRequestsPerSecond, burst: ServerDefaults.addressBurstRequests),
        trustedProxies: TrustedProxies = .none, poolSize: Int? = nil, logLevel: Logger.Level = .info,
        eventLoopThreads: Int? = nil, redisURL: String? = nil,
        stockEventsPerSecond: Double = ServerDefaults.stockEventsPerSecond,
        owner: LeaseOwner = .unique(), advertiseURL: String? = nil
    ) {
        self.owner = owner
        self.advertiseURL = advertiseURL
        self.host = host
        self.port = port
        self.strategy = strategy
        self.databaseURL = databaseURL
        self.jwtSecret = jwtSecret
        self.userRateLimit = userRateLimit
        self.addressRateLimit = addressRateLimit
        self.trustedProxies = trustedProxies
        self.poolSize = poolSize ?? (strategy == .actor ? ServerDefaults.actorPoolSize : Defaults.rowLockPoolSize)
        self.logLevel = logLevel
        self.eventLoopThreads = eventLoopThreads
        self.redisURL = redisURL
        self.stockEventsPerSecond = stockEventsPerSecond
    }
}
