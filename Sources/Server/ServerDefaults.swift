// Every tunable number of the server, in one place, each with its unit and its reason.
import Engine

public enum ServerDefaults {
    /// The seed's port, and what load balancers' health checks are usually pointed at.
    public static let port = 8080
    /// Request bodies are tiny JSON objects (a drop spec is ~200 bytes); 16 KiB leaves room
    /// for long names and stops a huge body before it is buffered.
    public static let maxBodyBytes = 16 * 1024
    /// Drops per page when `limit` is absent, and the most a page may ask for.
    public static let pageLimit = 20
    public static let maxPageLimit = 100
    /// A buyer clicking fast is a few requests a second; 20/s with a burst of 40 lets a
    /// person retry freely and stops a script hammering one drop from one account.
    public static let userRequestsPerSecond = 20.0
    public static let userBurstRequests = 40.0
    /// Per client address: generous, since many buyers share a NAT or office address.
    public static let addressRequestsPerSecond = 500.0
    public static let addressBurstRequests = 1_000.0
    /// Buyers whose display name this process has written; past it the set starts over
    /// (a rewrite of a name is harmless, memory growing without end is not).
    public static let knownBuyersLimit = 100_000
    /// A drop read is answered from memory while a commit or a database read confirmed it
    /// within this (docs/server.md: the staleness bound of `GET /v1/drops/{id}`): on the drop's owner
    /// every commit confirms it, elsewhere relayed events do, and past it the database is read
    /// (once, however many requests wait).
    public static let dropReadMaxAgeMilliseconds = 1_000
    /// Drop views and listing pages kept; past them the map starts over (a read refills it).
    public static let dropReadViews = 100_000
    public static let dropReadPages = 64
    /// Log lines waiting for the writer thread: 4 MiB is ~20,000 request lines (~200 bytes
    /// each), a second of requests at the rate this machine serves. The last MiB takes only
    /// error lines, so a burst of successes cannot crowd them out.
    public static let logBufferBytes = 4 << 20
    public static let logBufferReservedBytes = 1 << 20
    /// Lines wait at most this long for the writer (it also wakes when a quarter of the
    /// buffer is used).
    public static let logFlushMilliseconds = 10
    /// /metrics reads its gauges from the database at most this often, so scrapes (which
    /// need no token) cannot queue queries ahead of the group commits.
    public static let gaugeRefreshMilliseconds = 1_000
    /// The limiter keeps at most this many buckets (~100 bytes each); past it the idle ones
    /// are pruned at once.
    public static let maxRateLimitBuckets = 200_000
    /// What a 503 `overloaded` or `unavailable` asks clients to wait before retrying.
    public static let overloadedRetryAfterSeconds = 1
    /// The latency a buyer should not wait past (`serve --latency-target-ms`): past it the
    /// server sheds new reserves at once (503 `overloaded`, Retry-After) rather than queue
    /// them. A quarter of a second is what a person clicking "buy" calls instant; a batch
    /// commits in tens of ms, so only a real backlog reaches it.
    public static let latencyTargetMilliseconds = 250
    /// Requests in flight below which nothing is shed, whatever the measured rate: an idle
    /// server's rate says nothing of what it can do, and 1,024 is ~50 ms of answers at this
    /// machine's rate (with 256, the `ci` scenario's burst of 1,000 buyers over HTTP had 474
    /// reserves shed before the first rate was measured).
    public static let shedMinimumInFlight = 1_024
    /// How often each event loop's lateness is probed, and how often the shedding decision is
    /// re-made from what was measured.
    public static let loopProbeMilliseconds = 10
    public static let shedSampleMilliseconds = 100
    /// A shed answer's Retry-After never asks for more than this.
    public static let maxRetryAfterSeconds = 10
    /// The listen backlog: a burst of buyers opening connections at once must not overflow
    /// it (a dropped SYN is retried only after a second). The kernel caps it at somaxconn
    /// (4,096 on Debian 12).
    public static let listenBacklog = 4_096
    /// Verified tokens kept so a user's next request skips the JWT parse and HMAC
    /// (measured ~25 µs through jwt-kit's actor). Bounded: the cache is dropped when full.
    public static let verifiedTokenCacheEntries = 100_000
    /// Tokens minted by `stockdrop token` live a day unless asked otherwise.
    public static let tokenLifetimeSeconds = 24 * 3_600
    /// `stock.changed` events per drop per second at most; the last value is always sent.
    /// Ten a second moves a stock bar smoothly and caps a hot drop's fan-out traffic.
    public static let stockEventsPerSecond = 10.0
    /// Feed events a slow socket may have pending before its oldest are dropped (stock values
    /// are kept apart, one per drop, so they are never lost).
    public static let socketOutboxEvents = 1_000
    /// Live sockets one instance keeps open: each costs a connection, a task and an outbox of
    /// up to `socketOutboxEvents` frames (~1 MB at worst), so 10,000 stay within a few GB even
    /// if every one stalls. Past it an upgrade is closed with 1013 (try again later).
    public static let maxLiveSockets = 10_000
    /// A person has a few tabs open; more sockets under one token are a script (closed with
    /// 1008, policy violation).
    public static let maxLiveSocketsPerUser = 5
    /// Events waiting for the delivery task; past it the oldest feed events are dropped and
    /// counted (stock values are superseded by later ones anyway).
    public static let liveQueueEvents = 100_000
    /// A new socket's snapshot is served from a cache at most this old (followed at once by the
    /// newest stock value of every drop): a thousand watchers connecting in the same second
    /// cost one listing of the drops, not a thousand.
    public static let liveSnapshotMaxAgeMilliseconds = 1_000
    /// A socket gets at most one frame per this interval, carrying every event pending (the
    /// page renders once per animation frame anyway): with 1,000 watchers of a hot drop, one
    /// frame per purchase per socket was tens of thousands of writes a second.
    public static let liveFrameIntervalMilliseconds = 100
    /// The Redis relay waits this long after a failure before reconnecting, doubling up to
    /// the maximum.
    public static let relayRetryMilliseconds = 100
    public static let relayMaxRetryMilliseconds = 5_000
    /// Connects, reads and writes to Redis give up after this (a firewalled or hung Redis
    /// must not hold the relay's threads, nor shutdown).
    public static let relayTimeoutMilliseconds = 2_000
    /// Events waiting to be published to Redis; past it the oldest are dropped (a relay that
    /// cannot keep up resynchronizes its subscribers with a snapshot anyway).
    public static let relayQueueEvents = 10_000
    /// Events published in one pipelined round trip at most (a few hundred bytes each).
    public static let relayPipelineEvents = 256
    /// Connections a server's actor pool has beside the engine's own (`Defaults.actorBatchConnections`,
    /// batches of different drops in parallel) for reads: listings, snapshots, a user's
    /// reservations, the directory and the gauges.
    public static let readConnections = 8
    /// The actor strategy's pool in a server: the engine's batches plus the reads.
    public static var actorPoolSize: Int { Defaults.actorBatchConnections + readConnections }
    /// The server's waits on PostgreSQL: a request that needs the database hears 503 within
    /// about 2 s + 5 s when it hangs (a free connection, then the statement's answer), or 2 s
    /// when a new connection cannot be opened. A batch takes tens of ms and a rowlock claim waits
    /// for at most its pool's other transactions, so none of these fire on a live database.
    public static let databaseDeadlines = DatabaseDeadlines(
        connectSeconds: 2, statementMilliseconds: 4_000, answerMilliseconds: 5_000, acquireMilliseconds: 2_000)
    /// `/ready` gives up on the database after this long, so a load balancer's probe never hangs.
    public static let readinessTimeoutMilliseconds = 2_000
    /// Bucket bounds of the request latency histogram (seconds): a memory answer takes
    /// ~50 µs, a committed claim a few ms, an overloaded database seconds.
    public static let latencyBucketsSeconds: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// Batch size histogram bounds (claims per group-commit transaction).
    public static let batchSizeBuckets: [Double] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_000]
    /// Instances write their heartbeat this often; a directory entry older than three beats is
    /// taken for a dead instance, and a claim for its drops is answered 503 at once rather than
    /// waiting on a connection to nowhere.
    public static let heartbeatMilliseconds = 1_000
    public static let heartbeatsMissedBeforeDead = 3
    /// A forwarded claim waits this long for the owner's answer when the caller set no
    /// deadline: a batch commits in tens of ms, and a drop's queue drains within a second.
    public static let forwardTimeoutMilliseconds = 5_000
    /// The owner's answer to a forwarded claim is a small JSON body; past this it is refused.
    public static let forwardedBodyMaxBytes = 64 * 1024
    /// Connections kept open to each other instance for forwarded claims: a forward holds
    /// one for a batch's round trip (~5–50 ms), so 64 carry a few thousand claims a second.
    public static let forwardConnectionsPerInstance = 64
    /// An owner hands a drop to the instance its claims come from once, for 5 s or more, every
    /// claim it answered was forwarded from that one instance (64 of them at least, no pause
    /// over 2 s): a balancer that hashes the drop there sends every buyer through two hops.
    /// Sustained, because a hand-over refuses the drop's claims for a moment: with buyers
    /// spread over two instances and no balancer, a 2 s window moved a hot drop back and forth
    /// under a burst (2 of 32,349 reserves answered owner_changing). The cooldown keeps two
    /// instances that both receive the drop's claims from handing it to and fro.
    public static let handBackForwardedClaims = 64
    public static let handBackSustainedMilliseconds = 5_000
    public static let handBackGapMilliseconds = 2_000
    public static let handBackCooldownMilliseconds = 30_000
    public static let handBackTrackedDrops = 10_000
    /// A relayed stock event stamped further ahead of this instance's clock than this is
    /// refused (a forged or broken publisher); database and instance clocks agree far better.
    public static let relayedFutureToleranceMilliseconds = 60_000
    /// SIGTERM: in-flight requests get this long to finish (a claim waits at most for the
    /// database deadlines above); then what is left is cancelled, and a cancellation that takes
    /// longer than the second bound ends the process (fatalError) rather than leave it running.
    public static let gracefulShutdownMilliseconds = 10_000
    public static let shutdownCancellationMilliseconds = 5_000
    /// SIGTERM: how long the shutdown waits for every live socket to send its close frame
    /// (1001, going away) before the HTTP server's drain, which would close them with 1000.
    public static let liveFarewellMilliseconds = 1_000
    /// How long shutdown waits for the forwarding client to close its connections.
    public static let forwarderShutdownMilliseconds = 2_000
    /// An HTTP connection with no request in flight is closed after this long, so idle or
    /// half-open clients cannot hold sockets for ever; an upgraded WebSocket is not affected
    /// (it has pings of its own). Longer than a balancer's keep-alive (HAProxy's is 10 s in
    /// deploy/haproxy.cfg), so the balancer closes first and never reuses a dying connection.
    public static let httpIdleTimeoutSeconds = 60
    /// Open connections an instance accepts at most (HTTP and WebSocket together); past it
    /// new ones wait in the listen backlog until one closes, instead of the process running
    /// out of descriptors. Above the live-socket cap, with room for a balancer's connections.
    public static let maxConnections = 16_384
}
