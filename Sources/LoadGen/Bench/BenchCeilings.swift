// The bench's reference ceilings, measured in the same run as the strategies (machines differ
// by 2x, so the product is judged as a ratio to what this machine's database and runtime can
// do at that hour):
// (a) plain locked insert: one connection, back to back, each transaction locks the drop,
//     inserts a batch of new users' holds into the real `reservations` table (its indexes,
//     trigger and CHECKs), updates the counter and commits (`synchronous_commit` on);
// (b) the batch function alone: one connection feeding `stockdrop_apply_batch` full batches of
//     reserves for new users as the actor sends them (vouched for: not probed), no actor;
// (c) a bare Swift actor answering every call from memory, no database: the most the
//     runtime gives a sold-out rejection.
import Engine
import Foundation

public struct BenchCeilings: Codable, Sendable {
    /// Claims per transaction of (a) and (b): the bench's batch size, min(callers, the actor's
    /// largest batch). (With 1,000 callers the actor's batches alternate in two cohorts of ~500.)
    public var batchClaims: Int
    /// Holds each ceiling wrote (the checks of `bench`'s own test: every one is a row).
    public var plainInsertClaims: Int
    public var plainInsertClaimsPerSecond: Double
    public var plainInsertTransactionMilliseconds: LatencySummary
    public var batchFunctionClaims: Int
    public var batchFunctionClaimsPerSecond: Double
    public var batchFunctionCallMilliseconds: LatencySummary
    public var bareActorAnswersPerSecond: Double
    /// (b) against (a), measured in turn (`BenchOptions.pairedRounds`; nil when 0).
    public var batchFunctionPaired: [PairedRound]?
}

enum BenchCeilingRun {
    /// (a) and (b); (c) is measured beside the strategies' sold-out phase.
    static func measureDatabase(
        _ options: BenchOptions, progress: @Sendable (String) -> Void
    ) async throws -> BenchCeilings {
        let batchClaims = min(options.callers, Defaults.maxBatchClaims)
        let url = try await FreshDatabase.url(for: "bench", named: "ceiling", configured: options.databaseURL)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        try await connection.query("SET synchronous_commit = on")
        var users = CallerStreams(callers: batchClaims)

        let insert = try await PlainInsertCeiling.open(connection, batchClaims: batchClaims)
        let functionDrop = try await createDrop(connection, name: "bench ceiling: batch function")
        // The reserves as the actor sends them for new users: vouched for, so not probed.
        let kinds = [Int64](
            repeating: Int64(ClaimItem(.reserve, user: 0, vouched: true).batchFunctionKind), count: batchClaims)
        let keys = [String?](repeating: nil, count: batchClaims)
        func batchFunction(seconds: Double) async throws -> Loop {
            try await loop(seconds: seconds) {
                let rows = try await connection.query(
                    "SELECT count(*) FILTER (WHERE code = 'reserved') AS n FROM stockdrop_apply_batch($1, $2::integer[], $3, $4)",
                    [.int64(functionDrop), .int64Array(kinds), .int64Array(users.next()), .textArray(keys)])
                let reserved = try rows.first?.int("n") ?? 0
                guard reserved == batchClaims else {
                    throw BenchCeilingError("the batch function reserved \(reserved) of \(batchClaims) new users")
                }
                return reserved
            }
        }

        // (a) and (b) in turn, in pairs of slices whose first alternates, each pair's ratio its
        // own (as the actor's against (a), `Bench.pairedRounds`); their totals are the figures.
        let pairs = max(options.pairedRounds, 1)
        let slice = options.seconds / Double(pairs)
        progress(
            "bench: ceilings (a), plain locked insert of \(batchClaims) holds per transaction, and (b),"
                + " stockdrop_apply_batch alone, \(batchClaims) reserves per call: \(pairs) pairs in turn")
        let inTurn = try await PairedRound.inTurn(
            pairs: pairs,
            reference: { _ in try await insert.measure(seconds: slice, users: &users) },
            measure: { _ in try await batchFunction(seconds: slice) })
        var plainInsert = Loop()
        var function = Loop()
        for pair in inTurn {
            plainInsert.add(pair.reference)
            function.add(pair.measure)
        }
        let rounds = inTurn.map {
            PairedRound(referencePerSecond: $0.reference.perSecond, measuredPerSecond: $0.measure.perSecond)
        }

        return BenchCeilings(
            batchClaims: batchClaims,
            plainInsertClaims: plainInsert.claims,
            plainInsertClaimsPerSecond: plainInsert.perSecond,
            plainInsertTransactionMilliseconds: LatencySummary(microseconds: plainInsert.latencies),
            batchFunctionClaims: function.claims,
            batchFunctionClaimsPerSecond: function.perSecond,
            batchFunctionCallMilliseconds: LatencySummary(microseconds: function.latencies),
            bareActorAnswersPerSecond: 0, batchFunctionPaired: options.pairedRounds > 0 ? rounds : nil)
    }

    static func measureBareActor(_ options: BenchOptions, progress: @Sendable (String) -> Void) async throws -> Double {
        progress("bench: ceiling (c), a bare actor answering from memory, \(options.callers) callers")
        return try await bareActor(callers: options.callers, seconds: options.seconds)
    }

    /// (c)'s answers per second.
    static func bareActor(callers: Int, seconds: Double) async throws -> Double {
        let bare = BareActor()
        return try await Bench.hammer(callers: callers, seconds: seconds) { user in
            await bare.answer(user) == .soldOut
        }.perSecond
    }

    static func createDrop(_ connection: PostgresConnection, name: String) async throws -> Int64 {
        try await connection.query(
            "INSERT INTO drops (name, price_cents, total_stock, reserve_ttl_ms) VALUES ($1, 1, $2, $3) RETURNING id",
            [.text(name), .int32(Int32(Defaults.maxTotalStock)), .int32(Int32(Defaults.maxReserveTTLMilliseconds))]
        ).first!.int64("id")
    }

    struct Loop {
        var claims = 0
        var latencies: [UInt32] = []
        var elapsedSeconds = 0.0
        var perSecond: Double { Double(claims) / max(elapsedSeconds, 1e-9) }

        mutating func add(_ other: Loop) {
            claims += other.claims
            latencies += other.latencies
            elapsedSeconds += other.elapsedSeconds
        }
    }

    /// One connection, one call after another until the time is up.
    static func loop(seconds: Double, _ call: () async throws -> Int) async throws -> Loop {
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started.advanced(by: .milliseconds(Int64(seconds * 1000)))
        var result = Loop()
        while clock.now < deadline {
            let sent = clock.now
            result.claims += try await call()
            result.latencies.append(UInt32(clamping: RunClock.microseconds(clock.now - sent)))
        }
        result.elapsedSeconds = Double(RunClock.microseconds(clock.now - started)) / 1e6
        return result
    }
}

/// (a)'s transaction on a drop of its own: measured alone beside (b), and in slices taken in
/// turn with the actor's (`Bench.pairedRounds`).
struct PlainInsertCeiling {
    let connection: PostgresConnection
    let drop: Int64
    let batchClaims: Int

    static func open(_ connection: PostgresConnection, batchClaims: Int) async throws -> PlainInsertCeiling {
        let drop = try await BenchCeilingRun.createDrop(connection, name: "bench ceiling: plain insert")
        return PlainInsertCeiling(connection: connection, drop: drop, batchClaims: batchClaims)
    }

    func measure(seconds: Double, users: inout CallerStreams) async throws -> BenchCeilingRun.Loop {
        try await BenchCeilingRun.loop(seconds: seconds) {
            let rows = try await connection.query(
                """
                WITH d AS (SELECT id, reserve_ttl_ms FROM drops WHERE id = $1 FOR UPDATE),
                ins AS (
                    INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at)
                    SELECT d.id, u, 'ACTIVE', clock_timestamp(), clock_timestamp() + d.reserve_ttl_ms * interval '1 millisecond'
                    FROM d, unnest($2::bigint[]) AS u
                    RETURNING 1)
                UPDATE drops SET reserved = reserved + (SELECT count(*) FROM ins) WHERE id = $1 RETURNING reserved
                """, [.int64(drop), .int64Array(users.next())])
            guard rows.rows.count == 1 else { throw BenchCeilingError("the plain insert updated no counter") }
            return batchClaims
        }
    }
}

/// New users for every transaction, drawn as the bench's callers draw theirs: the k-th
/// transaction takes the k-th user of each of `callers` streams.
struct CallerStreams {
    let callers: Int
    private var call: Int64
    init(callers: Int, firstCall: Int64 = 0) {
        self.callers = callers
        call = firstCall
    }
    mutating func next() -> [Int64] {
        call += 1
        return (0..<callers).map { Bench.user(caller: $0, call: call) }
    }
}

/// What the sold-out phase asks of the engine, with nothing else: an actor, a counter, an answer.
private actor BareActor {
    private var available = 0
    private var asked = 0
    func answer(_ user: UserID) -> ReserveOutcome {
        asked += 1
        return available > 0 ? .alreadyHolding(nil) : .soldOut
    }
}

struct BenchCeilingError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
