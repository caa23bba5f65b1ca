// Every tunable number of the load harness, each with its unit and its reason.
import Engine
import NIOCore

public enum LoadDefaults {
    /// Users per scenario: 100,000 in one process stay under 1 GiB; 1,000,000 is the hard cap.
    public static let maxUsers = 1_000_000
    public static let maxArrivalsPerSecond = 1_000_000.0
    public static let maxThinkMilliseconds = 600_000.0
    public static let maxRetries = 100
    /// A run stops sending after this unless the scenario says otherwise.
    public static let maxDurationSeconds = 60.0
    /// The database's clock and ours may disagree by this much (one machine: far less).
    public static let clockToleranceMilliseconds = 100.0
    /// A send this late against its intended time is counted as late.
    public static let lateSendMilliseconds = 10.0
    /// How often the run samples each drop's available stock for the time series.
    public static let stockSampleMilliseconds = 1_000
    /// After the last user, how long past the longest TTL the run waits for holds to expire
    /// (the rowlock sweeper runs every 250 ms) before the checker looks.
    public static let drainSlackMilliseconds = 2_000
    /// The longest the drain waits unless `run --drain` says otherwise: the whole wait for holds
    /// of the default TTL (60 s, its grace and the slack), so a run of them judges every
    /// expiry, while one of 10-minute or day-long holds ends about a minute after its load
    /// instead of sitting idle until they lapse (the holds still live are named as not judged).
    public static let maxDrainMilliseconds =
        Defaults.reserveTTLMilliseconds + Defaults.purchaseGraceMilliseconds + drainSlackMilliseconds
    /// Scheduler granularity: the longest the scheduler sleeps between looks at its queue, so
    /// a request an answer schedules sooner (no think time, no backoff) waits at most this.
    public static let schedulerTickMicroseconds = 500
    /// Requests out at once; past it due requests wait (and count as late) rather than each
    /// becoming a task: 1,000,000 buyers arriving together must not be 1,000,000 tasks.
    public static let maxRequestsInFlight = 100_000
    /// Client history records kept in memory (80 bytes each on disk, ~120 in memory) before
    /// the rest are spooled to a file, so a soak's memory stays flat: a soak at 500 requests/s
    /// starts spooling within its warm-up, and the `ci` scenario never touches the disk.
    public static let historyMemoryRecords = 1 << 14
    /// A soak's memory is judged after this: the first minute fills caches and pools.
    public static let warmUpSeconds = 60.0
    /// Round trips a shard makes to read its clock's offset to the database's (the shortest is
    /// kept): 16 on loopback take ~2 ms and the shortest is within ~50 µs of the smallest seen.
    public static let clockOffsetSamples = 16
    /// Without `--start-at`, a setup step starts the schedule this long after it wrote the run
    /// file: time to launch shards by hand or from a script. A Kubernetes Job that must pull an
    /// image wants more (`--start-at +2m`).
    public static let shardStartLeadSeconds = 10.0
}

extension LoadDefaults {
    /// Connections a run's buyers may have open to one server at once: each buyer with a
    /// request out has one of its own (k6's virtual users), reused by the next buyer once
    /// answered. Past the bound a request waits for a free one, and that wait is the harness's
    /// (the report says so). flash-sale over HTTP on 2 cores shared with the server: 64 →
    /// 17.6k answers/s, 128 → 19.8k, 256 → 19.8k, 512 → 18.4k, 1,024 → 17.4k, 4,096 → 16.6k,
    /// 16,000 → 15.9k and connects of up to 1.5 s: past a few hundred, connections only move
    /// the queue into the server's sockets and cost it CPU. Lowered to what the descriptor
    /// limit leaves (`reservedDescriptors`).
    public static let httpConnections = 512
    /// Descriptors kept for everything but the buyers' connections: the database, watchers'
    /// sockets (up to `maxWatchers`), the history spool, the event loops' own.
    public static let reservedDescriptors = 1_024
    /// Connects in flight per lane and server at most: a burst of thousands of buyers opening
    /// connections at once would overflow the server's listen backlog (4,096 here), and a
    /// dropped SYN is retried only after a second. Requests past it wait, as at the bound.
    public static let httpConnectsInFlight = 512
    /// The harness's own connections to each server (probes, drop creation, /metrics).
    public static let httpControlConnections = 2
    /// A buyer's request shed again and again (503 `overloaded`) is given up after this many.
    public static let maxShedRetries = 20
    /// How often each connection looks for requests past their deadline: a timeout is
    /// reported at most this late.
    public static let httpDeadlineSweep = TimeAmount.milliseconds(50)
    /// WebSocket watchers a scenario may attach (each is a connection and a task).
    public static let maxWatchers = 10_000
    /// Event-loop threads (lanes) the buyers run on over HTTP, each with its share of users
    /// and connections. One: with the generator beside the server on 2 cores, two threads
    /// cost 20.1 µs of CPU a request against one's 14.2 µs (each woke for fewer answers).
    public static let httpEventLoopThreads = 1
    /// A request without a reply after this is recorded as a timeout (indeterminate).
    public static let httpRequestTimeoutMilliseconds = 10_000
    /// Virtual users' tokens outlive any run (maxDuration is capped at an hour).
    public static let tokenLifetimeSeconds: Double = 4 * 3_600

    /// A nemesis opens a fault about this often unless told otherwise: longer than a lease
    /// (3 s), so a paused owner is deposed, and short enough for a 30 s run to see several.
    public static let nemesisIntervalMilliseconds = 5_000
    /// Instances of the cluster a nemesis run starts (the scale-out issue's reference setup).
    public static let nemesisInstances = 3
    /// After the load, how long the harness waits for the database to answer again (a restart
    /// or a failover during the run: Patroni's TTL of 10 s plus its promotion) before the drain
    /// and the checker; a database gone longer fails the run.
    public static let databaseRecoverySeconds = 60
    /// How often `--prometheus-rw` pushes the live figures: Prometheus' own default scrape
    /// interval is 15 s and remote write queues send every 5 s.
    public static let remoteWriteSeconds = 5
    /// A push that takes longer is given up (counted as failed): a slow receiver never holds
    /// the run, and the final push never holds its exit longer than this.
    public static let remoteWriteTimeoutMilliseconds = 2_000
}
