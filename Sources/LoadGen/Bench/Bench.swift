// `stockdrop bench`: one hot drop, N concurrent callers for S seconds, per strategy, on a
// database of its own. Phase 1 measures committed claims (a drop too large to sell out, every
// caller a new buyer each time); phase 2 measures sold-out rejections (a drop with no stock).
import Engine
import Foundation

public struct BenchOptions: Sendable {
    public var strategies: [Strategy]
    public var callers: Int
    public var seconds: Double
    public var rowLockPoolSize: Int
    /// Batches the actor strategy's drop may have in flight.
    public var batchesInFlight: Int
    /// Pairs of slices in which the actor and (a) are measured in turn (`Bench.pairedRounds`).
    public var pairedRounds: Int
    public var databaseURL: String?

    public init(
        strategies: [Strategy], callers: Int, seconds: Double, rowLockPoolSize: Int = Defaults.rowLockPoolSize,
        batchesInFlight: Int = Defaults.maxBatchesInFlight, pairedRounds: Int = 5, databaseURL: String?
    ) {
        self.batchesInFlight = batchesInFlight
        self.pairedRounds = pairedRounds
        self.strategies = strategies
        self.callers = callers
        self.seconds = seconds
        self.rowLockPoolSize = rowLockPoolSize
        self.databaseURL = databaseURL
    }
}

public struct BenchResult: Codable, Sendable {
    public var strategy: Strategy
    public var callers: Int
    public var seconds: Double
    public var committedClaims: Int
    public var committedClaimsPerSecond: Double
    /// Claims acknowledged as reserved that the database holds (must equal committedClaims).
    public var committedClaimsInDatabase: Int
    public var reserveLatencyMilliseconds: LatencySummary
    public var rejections: Int
    public var rejectionsPerSecond: Double
    public var rejectionLatencyMilliseconds: LatencySummary
    public var errors: Int
    /// Heap bytes per ACTIVE reservation held in an actor's memory (actor strategy only).
    public var actorBytesPerActiveReservation: Double?
    /// Where the actor's batches spent their time in the commit phase (actor strategy only).
    public var actorBatches: BatchStatistics?
    /// The actor's committed claims against (a), measured in turn (actor strategy only).
    public var pairedWithPlainInsert: [PairedRound]?
    /// The actor's sold-out rejections against (c), the bare actor, measured in turn.
    public var pairedWithBareActor: [PairedRound]?
}

/// One pair of slices measured one right after the other: a reference ((a), or the bare actor)
/// and what is judged against it, each per second.
public struct PairedRound: Codable, Sendable, Equatable {
    public var referencePerSecond: Double
    public var measuredPerSecond: Double
    public var ratio: Double { measuredPerSecond / max(referencePerSecond, 1e-9) }

    /// The median of the pairs' ratios (the mean of the middle two for an even count).
    public static func medianRatio(_ rounds: [PairedRound]) -> Double? {
        let ratios = rounds.map(\.ratio).sorted()
        guard !ratios.isEmpty else { return nil }
        let middle = ratios.count / 2
        return ratios.count.isMultiple(of: 2) ? (ratios[middle - 1] + ratios[middle]) / 2 : ratios[middle]
    }

    /// `pairs` pairs of a reference's slice and a measure's, one right after the other, the
    /// reference first in even pairs and second in odd ones (so neither always follows the
    /// other); each closure is told the pair's index.
    static func inTurn<Reference, Measure>(
        pairs: Int, reference: (Int) async throws -> Reference, measure: (Int) async throws -> Measure
    ) async throws -> [(reference: Reference, measure: Measure)] {
        var results: [(reference: Reference, measure: Measure)] = []
        for pair in 0..<pairs {
            if pair.isMultiple(of: 2) {
                let first = try await reference(pair)
                results.append((first, try await measure(pair)))
            } else {
                let first = try await measure(pair)
                results.append((try await reference(pair), first))
            }
        }
        return results
    }
}

public struct BenchReport: Codable, Sendable {
    public var results: [BenchResult]
    /// actor ÷ rowlock, when both ran.
    public var committedClaimsRatio: Double?
    public var rejectionsRatio: Double?
    /// What this machine's database and runtime can do, measured in this run.
    public var ceilings: BenchCeilings?
    /// The product against its ceilings, each with its target.
    public var targets: [BenchTarget] = []
}

public enum Bench {
    public static func run(_ options: BenchOptions, progress: @Sendable (String) -> Void) async throws -> BenchReport {
        var ceilings = try await BenchCeilingRun.measureDatabase(options, progress: progress)
        var results: [BenchResult] = []
        for strategy in options.strategies {
            if strategy == .actor || !options.strategies.contains(.actor) {
                // Beside the sold-out phase it is the reference for: same minute, same load.
                ceilings.bareActorAnswersPerSecond = try await BenchCeilingRun.measureBareActor(
                    options, progress: progress)
            }
            progress("bench: \(strategy), \(options.callers) callers, \(options.seconds) s per phase")
            results.append(try await run(strategy, options, progress: progress))
        }
        let actor = results.first { $0.strategy == .actor }
        let rowlock = results.first { $0.strategy == .rowlock }
        var report = BenchReport(results: results, ceilings: ceilings)
        report.targets = BenchTarget.all(results: results, ceilings: ceilings)
        if let actor, let rowlock {
            report.committedClaimsRatio = actor.committedClaimsPerSecond / max(rowlock.committedClaimsPerSecond, 1e-9)
            report.rejectionsRatio = actor.rejectionsPerSecond / max(rowlock.rejectionsPerSecond, 1e-9)
        }
        return report
    }

    /// Both phases, or only the committed claims (`soldOut` false: its rejection figures are 0).
    static func run(
        _ strategy: Strategy, _ options: BenchOptions, soldOut: Bool = true, progress: @Sendable (String) -> Void
    ) async throws -> BenchResult {
        let url = try await FreshDatabase.url(for: "bench", strategy, configured: options.databaseURL)
        let pool = PostgresPool(
            url: url, size: strategy == .actor ? Defaults.actorBatchConnections : options.rowLockPoolSize)
        let store = PostgresStore(pool: pool)
        let inventory: any Inventory =
            strategy == .actor
            ? ActorEngine(store: store, maxBatchesInFlight: options.batchesInFlight) : RowLockEngine(store: store)

        // Sold-out rejections first: answered from memory (actor), they must not share the
        // machine's two cores with the autovacuum that the commit phase's rows set off.
        var rejections = Tally()
        var pairedSoldOut: [PairedRound]?
        if soldOut {
            progress("bench: \(strategy), sold-out rejections")
            let empty = try await inventory.createDrop(
                DropSpec(name: "bench sold-out drop", priceCents: 1, totalStock: 0))
            let reject: @Sendable (UserID) async throws -> Bool = { user in
                try await inventory.reserve(drop: empty.id, user: user) == .soldOut
            }
            rejections = try await hammer(callers: options.callers, seconds: options.seconds, reject)
            if strategy == .actor, options.pairedRounds > 0 {
                progress("bench: \(strategy) sold-out and ceiling (c) in turn, \(options.pairedRounds) pairs")
                pairedSoldOut = try await pairedWithBareActor(options, reject: reject)
            }
        }

        let hot = try await inventory.createDrop(
            DropSpec(
                name: "bench hot drop", priceCents: 1, totalStock: Defaults.maxTotalStock,
                reserveTTLMilliseconds: Defaults.maxReserveTTLMilliseconds))
        progress("bench: \(strategy), committed claims")
        let claim: @Sendable (UserID) async throws -> Bool = { user in
            if case .reserved = try await inventory.reserve(drop: hot.id, user: user) { return true }
            return false
        }
        let claims = try await hammer(callers: options.callers, seconds: options.seconds, claim)
        let batches = inventory.batches?.batchStatistics()
        var paired: [PairedRound]?
        var pairedClaims = 0
        if strategy == .actor, options.pairedRounds > 0 {
            progress("bench: \(strategy) and ceiling (a) in turn, \(options.pairedRounds) pairs")
            (paired, pairedClaims) = try await pairedRounds(options, claim: claim)
        }
        // The phase's rows and the pairs' apart: a user id's low 32 bits are its call
        // (`user(caller:call:)`), the phase's below `firstPairedCall`, the pairs' from it.
        let counted = try await pool.query(
            """
            SELECT count(*) FILTER (WHERE (user_id & 4294967295) < $2) AS phase,
                   count(*) FILTER (WHERE (user_id & 4294967295) >= $2) AS paired
            FROM reservations WHERE drop_id = $1
            """, [.int64(hot.id), .int64(firstPairedCall)]
        ).first
        let inDatabase = try counted?.int("phase") ?? -1
        let pairedInDatabase = try counted?.int("paired") ?? -1
        guard pairedInDatabase == pairedClaims else {
            throw BenchCeilingError(
                "the pairs with (a) acknowledged \(pairedClaims) claims, and the database holds \(pairedInDatabase)")
        }
        await inventory.shutdown()
        await pool.close()
        return BenchResult(
            strategy: strategy, callers: options.callers, seconds: options.seconds,
            committedClaims: claims.successes,
            committedClaimsPerSecond: Double(claims.successes) / claims.elapsedSeconds,
            committedClaimsInDatabase: inDatabase,
            reserveLatencyMilliseconds: LatencySummary(microseconds: claims.latencies),
            rejections: rejections.successes,
            rejectionsPerSecond: rejections.elapsedSeconds > 0
                ? Double(rejections.successes) / rejections.elapsedSeconds : 0,
            rejectionLatencyMilliseconds: LatencySummary(microseconds: rejections.latencies),
            errors: claims.errors + rejections.errors,
            actorBytesPerActiveReservation: strategy == .actor ? ActorMemoryProbe.bytesPerActiveReservation() : nil,
            actorBatches: batches, pairedWithPlainInsert: paired, pairedWithBareActor: pairedSoldOut)
    }

    /// The sold-out rejections and (c) in slices taken in turn, as `pairedRounds` does for (a).
    static func pairedWithBareActor(
        _ options: BenchOptions, reject: @escaping @Sendable (UserID) async throws -> Bool
    ) async throws -> [PairedRound] {
        let slice = options.seconds / Double(options.pairedRounds)
        return try await PairedRound.inTurn(
            pairs: options.pairedRounds,
            reference: { _ in try await BenchCeilingRun.bareActor(callers: options.callers, seconds: slice) },
            measure: { _ in try await hammer(callers: options.callers, seconds: slice, reject).perSecond }
        ).map { PairedRound(referencePerSecond: $0.reference, measuredPerSecond: $0.measure) }
    }

    /// The committed claims and (a) in slices taken in turn (`pairedRounds` pairs of
    /// `seconds ÷ pairedRounds` each, which goes first alternating), each pair's ratio its own:
    /// measured a phase apart, minutes apart on this shared machine, (a) alone moved from 65k
    /// to 119k claims/s, so a ratio of two phases compared two moments of the machine. (a) runs
    /// on a drop of its own (and a database of its own unless `DATABASE_URL` names one). The
    /// actor's side runs on its hot drop after the phase, its rows behind it; (a)'s drop starts
    /// empty, and fills as the pairs go. Returns the pairs and the claims they committed.
    static func pairedRounds(
        _ options: BenchOptions, claim: @escaping @Sendable (UserID) async throws -> Bool
    ) async throws -> (rounds: [PairedRound], claims: Int) {
        let batchClaims = min(options.callers, Defaults.maxBatchClaims)
        let url = try await FreshDatabase.url(for: "bench", named: "paired_ceiling", configured: options.databaseURL)
        let connection = try await PostgresConnection.connect(url)
        defer { Task { await connection.close() } }
        try await connection.query("SET synchronous_commit = on")
        let insert = try await PlainInsertCeiling.open(connection, batchClaims: batchClaims)
        // Past the calls of the phase and of every pair's actor side (pair p from
        // (p + 1) × firstPairedCall, at most 50 pairs), though on another drop: the per-user
        // rules are per drop.
        var users = CallerStreams(callers: batchClaims, firstCall: 64 * firstPairedCall)
        let slice = options.seconds / Double(options.pairedRounds)
        let pairs = try await PairedRound.inTurn(
            pairs: options.pairedRounds,
            reference: { _ in try await insert.measure(seconds: slice, users: &users) },
            measure: { pair in
                try await hammer(
                    callers: options.callers, seconds: slice, firstCall: Int64(pair + 1) * firstPairedCall, claim)
            })
        return (
            pairs.map {
                PairedRound(referencePerSecond: $0.reference.perSecond, measuredPerSecond: $0.measure.perSecond)
            },
            pairs.reduce(0) { $0 + $1.measure.successes }
        )
    }

    /// The first call number of the pairs' callers: the phase's callers number theirs from 0
    /// and never reach it.
    static let firstPairedCall: Int64 = 1 << 24

    struct Tally {
        var successes = 0
        var errors = 0
        var latencies: [UInt32] = []
        var elapsedSeconds = 0.0
        var perSecond: Double { Double(successes) / max(elapsedSeconds, 1e-9) }
    }

    /// The user of a caller's `call`-th claim: each caller a stream of new buyers, the streams
    /// far apart in the key space (as buyers arriving together are: ids do not follow arrival).
    /// The ceilings draw their users the same way, so their index inserts land as scattered.
    static func user(caller: Int, call: Int64) -> UserID { (UserID(caller + 1) << 32) + call }

    /// `callers` tasks call `operation` back to back until the time is up (a closed model:
    /// each caller waits for its answer, as a buyer's client does). Each call gets a user id
    /// of its own, made without shared state so the callers do not contend on a counter.
    static func hammer(
        callers: Int, seconds: Double, firstCall: Int64 = 0,
        _ operation: @escaping @Sendable (UserID) async throws -> Bool
    ) async throws -> Tally {
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started.advanced(by: .milliseconds(Int64(seconds * 1000)))
        var total = await withTaskGroup(of: Tally.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var tally = Tally()
                    var call = firstCall
                    tally.latencies.reserveCapacity(4_096)
                    while clock.now < deadline {
                        let sent = clock.now
                        do {
                            call += 1
                            if try await operation(user(caller: caller, call: call)) { tally.successes += 1 }
                        } catch {
                            tally.errors += 1
                        }
                        tally.latencies.append(UInt32(clamping: RunClock.microseconds(clock.now - sent)))
                    }
                    return tally
                }
            }
            return await group.reduce(into: Tally()) { total, part in
                total.successes += part.successes
                total.errors += part.errors
                total.latencies += part.latencies
            }
        }
        total.elapsedSeconds = Double(RunClock.microseconds(clock.now - started)) / 1e6
        return total
    }
}
