// Every tunable number of the engine, in one place, each with its unit and its reason.
public enum Defaults {
    /// The database the embedded cluster serves to commands when DATABASE_URL is unset.
    public static let databaseName = "stockdrop"
    /// Enough for a server pool, a load run's rowlock pool (10), tests that open 20 at once,
    /// and several test suites in parallel, each with pools of their own.
    public static let embeddedMaxConnections = 300
}

extension Defaults {
    /// A hold lasts 60 s unless the drop says otherwise (docs/design.md, domain rules).
    public static let reserveTTLMilliseconds = 60_000
    /// How long past its `expires_at` an unbought hold keeps its unit, for a purchase asked
    /// before `expires_at` that is still on its way (queued in the server under load): such a
    /// purchase, decided within this grace, buys the hold. The batch function has the same
    /// bound (migration 9); the machine sweeps by it. Never more than half a hold's TTL: a
    /// 500 ms hold keeps its unit 250 ms past its expiry.
    public static let purchaseGraceMilliseconds = 1_000
    /// Bounds that keep absurd drops out; the API answers 422 past them.
    public static let minReserveTTLMilliseconds = 100
    public static let maxReserveTTLMilliseconds = 24 * 3_600_000
    public static let maxTotalStock = 100_000_000
    public static let maxPriceCents: Int64 = 100_000_000_00
    public static let maxPerUserLimit = 1_000

    /// Claims per group-commit transaction. Measured here: one batch of 1,000 rows commits at
    /// ~92–138k rows/s, 4,000 only ~15% faster but with 4× the latency of every caller in it.
    public static let maxBatchClaims = 1_024
    /// Claims waiting for the next batch of one drop; past it callers hear `overloaded` at once
    /// instead of memory growing without end. 64 batches' worth: ~0.5 s of work at 100k/s.
    public static let maxQueuedClaimsPerDrop = 65_536
    /// Ended holds a drop's memory remembers, to answer a retried purchase or cancel without
    /// the store: beyond it the oldest are forgotten and asked of the store. ~180 bytes each
    /// with the table's slack (an ending carries its purchase or reservation), so 0.7 MB a
    /// drop; 4,096 is seconds of endings at a flash sale's pace (a lost answer is retried
    /// within the 2 s backoff) and a minute at the soak's 75 a second, which fills it within
    /// its warm-up (at 8,192 a drop grew 5.8 MB after it, most of the soak's growth).
    public static let maxEndedHoldsRemembered = 4_096
    /// How long an idle drop gathers claims before it starts a batch. Without it, the first
    /// caller to come back after a batch commits alone, and the hundreds answered with it wait
    /// behind that batch of one. 300 µs and 1 ms gave the same ~64k claims/s with 1,000
    /// callers here; 300 µs had the lower p99 (22–24 ms against 25–26 ms).
    public static let batchGatherMicroseconds = 300
    /// Batches one drop may have in flight. With 2, a full batch waiting goes once the store
    /// holds the drop's lock for the last one, itself full (only a full batch asks for word
    /// of the lock; the new one waits on that lock, so the store applies them
    /// in order) and the database starts it the moment the last commits; with 1 it waits for
    /// the last batch's verdict, and the database for the drop's actor. Measured with
    /// `stockdrop bench --batches-in-flight` (docs/engine.md): 3,000 callers, whose claims keep
    /// full batches waiting, commit more with 2; 1,000 callers (one batch's worth) the same.
    /// The second batch holds a pool connection while it waits on the lock, and its answer
    /// deadline runs from its sending, the first batch's time included.
    public static let maxBatchesInFlight = 2
    /// When a sweep finds nothing due (the database's clock is a hair behind ours), wait this
    /// long before asking again rather than spinning.
    public static let sweepRetryMilliseconds = 5
    /// Connections of the rowlock strategy's pool (the seed's default was 10).
    public static let rowLockPoolSize = 10
    /// Purchases a drop's snapshot shows, newest first (the listing, a drop's read, the live
    /// page's feed): the store's query and the server's read views both keep this many.
    public static let recentPurchases = 3
    /// Connections the actor strategy shares between its drops, in process (`run`, `bench`):
    /// up to `maxBatchesInFlight` per drop. A server's pool also serves reads (ServerDefaults).
    public static let actorBatchConnections = 8
    /// How often the rowlock strategy's sweeper looks for overdue holds.
    public static let sweepIntervalMilliseconds = 250
    /// How often the actor strategy looks for drops with overdue holds and no live actor (after
    /// a restart, or a drop nobody touched since): such a drop's reads show an expired hold as
    /// reserved for at most this long. Drops with a live actor sweep on their own timers; the
    /// scan is one index-only query on the ACTIVE holds.
    public static let idleSweepMilliseconds = 1_000

    /// How long a drop's lease lasts without renewal: an owner that dies (kill -9) or pauses
    /// holds its drops this long before another instance may take them over, so it bounds
    /// the takeover window. Renewed by every batch and by the engine every third of it.
    public static let leaseMilliseconds = 3_000
    /// Memory stops trusting a lease this long before the store would let it lapse: clocks
    /// of two machines run at rates that differ by parts per million, so 200 ms covers a
    /// 3 s lease many times over, and leaves room for a renewal that is late by a scheduling
    /// hiccup.
    public static let leaseSafetyMarginMilliseconds = 200
}
