// The load of one scenario against one strategy: fresh database, drops, users on their
// schedule, a stock sampler, the drain past every TTL, then the checker; its result is a
// `StrategyResult`. `LoadRunner` runs one per strategy and builds the report from them.
import Engine
import Foundation

struct StrategyLoad: Sendable {
    let scenario: Scenario
    let target: any LoadTarget
    let live: LiveCounters
    var nemesis: Nemesis? = nil
    /// The most the drain waits after the load, in seconds (`run --drain`); nil:
    /// `drainMilliseconds`' rule.
    var drainBoundSeconds: Double? = nil
    /// One line for the person running it (the drain's start): standard error by default.
    var note: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    let progress: @Sendable (ProgressTick) -> Void

    func run() async throws -> StrategyResult {
        // Drops first, their start times relative to the run's zero (a moment from now).
        let dropIDs = try await createDrops(startAt: Date())
        let users = plannedUsers(dropIDs)
        live.board?.begin(strategy: target.strategy, drops: boardDrops(dropIDs), plannedUsers: users.count)
        // Before the clock starts: a real buyer holds a token before the sale opens.
        try await target.prepare(users: users.map(\.user))
        let watchers = scenario.watchers > 0 ? try await (target as? HTTPTarget)?.watch(count: scenario.watchers) : nil

        // One connection of the harness's own watches the run: stock samples, the drain, the
        // checker. A target's queue (the rowlock pool's backlog) must not starve them.
        let observer = PostgresPool(url: target.databaseURL, size: 1)
        defer { Task { await observer.close() } }
        // The checker sets what users were told beside the rows' timestamps, which are the
        // database's clock: a harness on another host moves its history onto that clock, as
        // a shard does (on one host the offset is a few microseconds).
        let offset = try? await RetriedRead.run {
            try await ClockOffset.measure(pool: observer)
        }
        let load = try await self.load(users, drops: dropIDs, clock: RunClock(), observer: observer)
        var history = load.history(databaseURL: target.databaseURL, drops: dropIDs)
        history.startedAtEpochMicroseconds += offset?.offsetMicroseconds ?? 0
        history.clockUncertaintyMicroseconds = offset?.uncertaintyMicroseconds
        let tolerance = Self.checkedTolerance(
            scenario.limits.clockToleranceMilliseconds, offset: offset, strategy: target.strategy, note: note)

        // The sampler keeps going through the drain, so the chart shows expiries returning stock.
        let samples: [StockSample]
        let check: CheckReport
        // A target gone for good (every server down) expires no hold: it is then not judged on
        // holds left ACTIVE, and the report says so.
        let up = await targetAnswersAfterLoad()
        do {
            live.draining.store(up, ordering: .relaxed)
            let checker = try await Self.drainedChecker(
                drops: dropIDs, observer: observer, longestTTLMilliseconds: scenario.longestReserveTTLMilliseconds,
                boundSeconds: drainBoundSeconds, strategy: target.strategy,
                toleranceMilliseconds: tolerance, expiriesJudged: up, note: note)
            load.ticker.cancel()
            samples = await load.ticker.value
            check = try await RetriedRead.run {
                try await checker.check(pool: observer, drops: dropIDs, history: history)
            }
        } catch {
            load.ticker.cancel()
            throw error
        }
        var live: LiveFigures?
        if let watchers {
            let rows = try await RetriedRead.run {
                try await observer.query(
                    "SELECT id, total_stock - sold - reserved AS available FROM drops WHERE id = ANY($1)",
                    [.int64Array(dropIDs)])
            }
            var available: [DropID: Int] = [:]
            for row in rows.rows { available[try row.int64("id")] = try row.int("available") }
            live = await watchers.finish(available: available)
        }
        var run = StrategyResult(
            strategy: target.strategy, databaseURL: target.databaseURL, drops: dropIDs,
            totalStock: scenario.drops.reduce(0) { $0 + $1.stock }, history: history,
            loadSeconds: load.loadSeconds, plannedUsers: users.count, neverSent: load.outcome.neverSent,
            stockSamples: samples, check: check, live: live, faults: load.faults)
        if let before = load.cpuBeforeMicroseconds, let after = load.cpuAfterMicroseconds {
            run.targetCPUMicroseconds = after - before
        }
        run.harnessCPUMicroseconds = load.harnessCPUMicroseconds
        run.shedAtStop = load.outcome.shedAtStop
        run.unsentAtStop = load.outcome.unsentAtStop
        run.connections = load.outcome.connections
        run.harnessThreads = load.outcome.connections == nil ? nil : LoadDefaults.httpEventLoopThreads
        run.harnessThreadsCPUMicroseconds = load.outcome.laneCPUMicroseconds
        run.errorCauses = self.live.errorCauses
        if !up { run.targetDown = TargetDown(after: load.records) }
        if let before = load.serverBefore, let after = load.serverAfter {
            let delta = after.subtracting(before)
            run.serverLatency = Dictionary(
                uniqueKeysWithValues: OperationKind.allCases.compactMap { operation in
                    delta.figures(operation).map { (operation.rawValue, $0) }
                })
        }
        return run
    }

    /// The scenario's drops, created through the target, each opening its `startsIn` after
    /// `startAt` (the schedule's zero).
    func createDrops(startAt: Date) async throws -> [DropID] {
        var dropIDs: [DropID] = []
        for plan in scenario.drops {
            let startsAt =
                plan.startsInMilliseconds > 0
                ? startAt.addingTimeInterval(Double(plan.startsInMilliseconds) / 1_000) : nil
            dropIDs.append(
                try await target.createDrop(
                    DropSpec(
                        name: plan.name, priceCents: plan.priceCents, totalStock: plan.stock, startsAt: startsAt,
                        perUserLimit: plan.perUserLimit, reserveTTLMilliseconds: plan.reserveTTLMilliseconds)))
        }
        return dropIDs
    }

    /// What the load itself gave: every request as its user saw it, who never got to send,
    /// the target's CPU around it, the faults, and the stock sampler (still running: the
    /// caller stops it once it has what it wants charted).
    struct LoadPhase {
        var clock: RunClock
        var records: [OperationRecord]
        var outcome: UserScheduler.Outcome
        var stopMicroseconds: Int64
        var loadSeconds: Double
        var cpuBeforeMicroseconds: Int64?
        var cpuAfterMicroseconds: Int64?
        /// This process's CPU while the users ran (in process, the engine's too).
        var harnessCPUMicroseconds: Int64
        /// The server's claim latency histograms around the load (server targets).
        var serverBefore: ServerHistogram?
        var serverAfter: ServerHistogram?
        var faults: [FaultRecord]
        var ticker: Task<[StockSample], Never>

        func history(databaseURL: String, drops: [DropID]) -> ClientHistory {
            ClientHistory(
                records: records,
                startedAtEpochMicroseconds: Int64(clock.startedAt.timeIntervalSince1970 * 1_000_000),
                cutOff: outcome.cutOff.mapValues { ClientHistory.CutOff(users: $0, atMicroseconds: stopMicroseconds) },
                databaseURL: databaseURL, drops: drops)
        }
    }

    /// `users` on their schedule from `clock`'s zero until the last has finished or the
    /// scenario's maximum duration, with the nemesis (if any) opening faults meanwhile.
    func load(
        _ users: [VirtualUser], drops: [DropID], clock: RunClock, observer: PostgresPool
    ) async throws
        -> LoadPhase
    {
        let stop = scenario.limits.maxDurationMicroseconds
        let hotDrop = Self.hottest(users) ?? drops[0]
        let nemesis = self.nemesis.map { nemesis in
            Task { await nemesis.run(clock: clock, hotDrop: hotDrop, endMicroseconds: stop) }
        }
        let ticker = Task { await tick(clock: clock, drops: drops, observer: observer) }
        let spool = HistorySpool()
        let measured = target as? any ServerMeasured
        let serverBefore = await measured?.serverHistogram()
        let cpuBefore = await target.cpuMicroseconds()
        let harnessBefore = ProcessUsage.now().cpuMicroseconds
        let outcome: UserScheduler.Outcome
        if let driver = target as? any UserDriver {
            outcome = try await driver.drive(users, clock: clock, stopMicroseconds: stop, live: live, spool: spool)
        } else {
            outcome = await UserScheduler(users).run(
                on: target, clock: clock, stopMicroseconds: stop, live: live, spool: spool)
        }
        let loadEnded = clock.nowMicroseconds
        let harnessCPU = ProcessUsage.now().cpuMicroseconds - harnessBefore
        let cpuAfter = await target.cpuMicroseconds()
        let serverAfter = await measured?.serverHistogram()
        // The load is over: heal what is open, so the drain and the checker see a whole system.
        nemesis?.cancel()
        let faults = await nemesis?.value ?? []
        // A database that restarted or failed over during the load broke the observer's
        // connection: the first query on it fails and the pool replaces it (through a balancer,
        // with the new primary), before the drain and the checker. Bounded: a database still
        // gone then fails the run.
        let recoveryDeadline = ContinuousClock.now.advanced(by: .seconds(LoadDefaults.databaseRecoverySeconds))
        while ContinuousClock.now < recoveryDeadline, (try? await observer.query("SELECT 1")) == nil {
            try? await Task.sleep(for: .milliseconds(200))
        }
        let records: [OperationRecord]
        do {
            records = try spool.all()
        } catch {
            ticker.cancel()
            throw error
        }
        let lastAnswer = records.map(\.answeredMicroseconds).max() ?? loadEnded
        return LoadPhase(
            clock: clock, records: records, outcome: outcome, stopMicroseconds: stop,
            loadSeconds: Double(max(lastAnswer, 1)) / 1e6, cpuBeforeMicroseconds: cpuBefore,
            cpuAfterMicroseconds: cpuAfter, harnessCPUMicroseconds: harnessCPU, serverBefore: serverBefore,
            serverAfter: serverAfter, faults: faults, ticker: ticker)
    }

    /// The scenario's drops under their ids, as the dashboard judges them.
    func boardDrops(_ ids: [DropID]) -> [OnlineInvariants.Drop] {
        zip(ids, scenario.drops).map {
            OnlineInvariants.Drop(id: $0, name: $1.name, stock: $1.stock, perUserLimit: $1.perUserLimit)
        }
    }

    /// The drop most users go for: where a nemesis aims its kills and pauses.
    static func hottest(_ users: [VirtualUser]) -> DropID? {
        var counts: [DropID: Int] = [:]
        for user in users { counts[user.drop, default: 0] += 1 }
        return counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
    }

    func plannedUsers(_ drops: [DropID], shard: ShardSpec = .whole) -> [VirtualUser] {
        scenario.plannedUsers(drops, shard: shard)
    }

    /// Once a second until cancelled: the progress line and the available stock of the run's
    /// drops, read from the database (with a dashboard, from the snapshot it judges: one read).
    private func tick(clock: RunClock, drops: [DropID], observer: PostgresPool) async -> [StockSample] {
        var samples: [StockSample] = []
        var previous = live.reading
        while !Task.isCancelled {
            let second = Double(clock.nowMicroseconds) / 1e6
            let facts: RowFacts?
            let counters: [DropCounters]?
            if let board = live.board {
                facts = await Self.rowFacts(board, pool: observer, drops: drops, atSeconds: second)
                counters = facts?.drops.map(\.counters)
            } else {
                facts = nil
                counters = try? await DropCounters.read(pool: observer, drops: drops)
            }
            let available = counters.map { $0.reduce(0) { $0 + $1.available } }
            if let available {
                samples.append(
                    StockSample(second: second, available: available, residentBytes: ProcessUsage.residentBytesNow()))
            }
            let now = live.reading
            let progressTick = ProgressTick(
                elapsedSeconds: second, counters: now, sentPerSecond: Double(now.sent - previous.sent),
                availableStock: available, lastSecondP99: live.takeSecond(), drops: counters,
                draining: live.draining.load(ordering: .relaxed))
            progress(progressTick)
            live.board?.tick(progressTick, rows: facts)
            previous = now
            try? await Task.sleep(for: .milliseconds(LoadDefaults.stockSampleMilliseconds))
        }
        return samples
    }

    /// What the rows say this second for the dashboard, with the acknowledgements it has not
    /// looked up yet; nil (and the acknowledgements kept for the next second) when the
    /// database could not be read.
    static func rowFacts(_ board: LiveBoard, pool: PostgresPool, drops: [DropID], atSeconds: Double) async -> RowFacts?
    {
        let (holds, purchases) = board.takeUnconfirmed()
        do {
            return try await RowFacts.read(
                pool: pool, drops: drops, holds: holds, purchases: purchases, atSeconds: atSeconds)
        } catch {
            board.giveBack(holds: holds, purchases: purchases)
            return nil
        }
    }

    /// How long the drain waits at most: the longest TTL, the purchase grace (an unbought hold
    /// keeps its unit that long past its expiry) and a slack, within `bound` (the run's
    /// `--drain`, else `LoadDefaults.maxDrainMilliseconds`).
    static func drainMilliseconds(_ longestTTLMilliseconds: Int, bound: Int? = nil) -> Int {
        min(
            longestTTLMilliseconds + Defaults.purchaseGraceMilliseconds + LoadDefaults.drainSlackMilliseconds,
            bound ?? LoadDefaults.maxDrainMilliseconds)
    }

    /// Whether the target still answers after the load, asked for as long as the drain would
    /// wait by default whatever `--drain` says (a server restarting in that time counts).
    func targetAnswersAfterLoad() async -> Bool {
        await target.answers(
            withinSeconds: Double(Self.drainMilliseconds(scenario.longestReserveTTLMilliseconds)) / 1_000)
    }

    /// The clock tolerance the checker uses: the scenario's, but never below the uncertainty of
    /// the harness's measured offset to the database's clock (half the shortest round trip of
    /// `ClockOffset`): within it the history's instants, moved onto that clock, may be off
    /// either way. With `clockTolerance: 0ms` a purchase asked a few microseconds after its
    /// send read as asked before it, and invariant 2 broke for a product that kept it. A
    /// sharded run's merge refuses such a shard instead (it cannot widen what shards agreed).
    static func checkedTolerance(
        _ milliseconds: Double, offset: ClockOffset?, strategy: Strategy, note: (String) -> Void
    ) -> Double {
        let checked = Checker.tolerance(milliseconds, uncertaintyMicroseconds: offset?.uncertaintyMicroseconds)
        guard let offset, checked > milliseconds else { return milliseconds }
        note(
            "\(strategy.rawValue): note: limits.clockTolerance \(String(format: "%g", milliseconds)) ms is below the uncertainty of the harness's clock offset to the database's (\(Self.milliseconds(offset.uncertaintyMicroseconds)) ms, half the shortest of \(LoadDefaults.clockOffsetSamples) round trips): the checker allows \(Self.milliseconds(offset.uncertaintyMicroseconds)) ms"
        )
        return checked
    }

    /// After a load, a run's or a sharded run's merge: drains the run's holds when a server ran
    /// after the load to expire them (`expiriesJudged`), at most `drainMilliseconds` within
    /// `boundSeconds`, saying what it waits for, and gives the checker of what the drain left
    /// (the sweepers' slack when it ended by its bound rather than with every hold ended).
    static func drainedChecker(
        drops: [DropID], observer: PostgresPool, longestTTLMilliseconds: Int, boundSeconds: Double?,
        strategy: Strategy, toleranceMilliseconds: Double, expiriesJudged: Bool, note: (String) -> Void
    ) async throws -> Checker {
        var settled = true
        if expiriesJudged {
            let milliseconds = drainMilliseconds(
                longestTTLMilliseconds, bound: boundSeconds.map { Int(($0 * 1_000).rounded()) })
            settled = try await drain(drops: drops, observer: observer, milliseconds: milliseconds) { held, wait in
                note(
                    "\(strategy.rawValue): load done; waiting up to \(String(format: "%.1f", Double(wait) / 1_000)) s for its \(held) holds still ACTIVE to be bought, cancelled or expired, so the checker judges their expiry (--drain S bounds the wait)"
                )
            }
        }
        return Checker(
            toleranceMilliseconds: toleranceMilliseconds, expiriesJudged: expiriesJudged,
            sweepSlackMilliseconds: settled ? 0 : Double(LoadDefaults.drainSlackMilliseconds))
    }

    /// Waits until no hold of the run is ACTIVE (all purchased, cancelled or expired), at most
    /// `milliseconds`, and says whether that happened: invariant 4 is then checked on a settled
    /// database. A drain ended by its bound may cut in while holds are being swept: the
    /// checker then gives the sweepers their slack (`Checker.sweepSlackMilliseconds`), and a
    /// hold still live is checked as live (its expiry not judged). `waiting` hears, once, how
    /// many holds the wait began with and how long it may last, unless there were none.
    static func drain(
        drops: [DropID], observer: PostgresPool, milliseconds: Int,
        waiting: (_ held: Int, _ milliseconds: Int) -> Void = { _, _ in }
    ) async throws -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(milliseconds))
        var said = false
        while true {
            // A failed read (a connection cut by a failover) is tried again on a new one.
            let active = try? await observer.query(
                "SELECT count(*) AS n FROM reservations WHERE drop_id = ANY($1) AND status = 'ACTIVE'",
                [.int64Array(drops)]
            ).first?.int("n")
            if active == 0 { return true }
            // Said even when the first read came back past a short bound (a busy machine): the
            // holds it found are what the checker will count live.
            if let active, !said {
                waiting(active, milliseconds)
                said = true
            }
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

public struct ProgressTick: Sendable {
    public var elapsedSeconds: Double
    public var counters: CounterReading
    public var sentPerSecond: Double
    /// Units left over the run's drops; nil when the database could not be read this second
    /// (never a made-up figure).
    public var availableStock: Int?
    /// The last second's p99 latency in milliseconds, from the intended send and from the
    /// actual send; nil when nothing was answered in it.
    public var lastSecondP99: (fromIntended: Double, fromSend: Double)?
    /// Each drop's counters this second; nil when the database could not be read.
    public var drops: [DropCounters]? = nil
    /// The load is over: the run waits for its holds to end before the checker looks.
    public var draining = false
}

/// A drop's counters as its row has them.
public struct DropCounters: Sendable, Equatable {
    public var id: DropID
    public var totalStock: Int
    public var sold: Int
    public var reserved: Int

    /// Units neither sold nor held (never below zero: an oversold drop has none left).
    public var available: Int { max(totalStock - sold - reserved, 0) }

    init(_ row: PostgresRow) throws {
        self.init(
            id: try row.int64("id"), totalStock: try row.int("total_stock"), sold: try row.int("sold"),
            reserved: try row.int("reserved"))
    }

    init(id: DropID, totalStock: Int, sold: Int, reserved: Int) {
        self.id = id
        self.totalStock = totalStock
        self.sold = sold
        self.reserved = reserved
    }

    /// The counters of `drops`, in id order.
    static func read(pool: PostgresPool, drops: [DropID]) async throws -> [DropCounters] {
        try await pool.query(
            "SELECT id, total_stock, sold, reserved FROM drops WHERE id = ANY($1) ORDER BY id", [.int64Array(drops)]
        )
        .rows.map(DropCounters.init)
    }
}

extension Scenario {
    /// Every user of every population with their drop and arrival, in arrival order; with a
    /// shard, that shard's slice of each population (`ShardSpec`), ids and seeds unchanged.
    func plannedUsers(_ drops: [DropID], shard: ShardSpec = .whole) -> [VirtualUser] {
        var users: [VirtualUser] = []
        users.reserveCapacity(userCount / shard.count + 1)
        var nextUser: UserID = 1
        for population in populations {
            for index in 0..<population.arrival.arrivals(outOf: population.count) where shard.owns(arrival: index) {
                let user = nextUser + UserID(index)
                var random = SplitMix64(seed: seed ^ (UInt64(user) &* 0xD1B5_4A32_D192_ED03))
                let drop: DropID =
                    switch population.drop {
                    case .one(let index): drops[index]
                    case .any: drops[Int.random(in: 0..<drops.count, using: &random)]
                    }
                users.append(
                    VirtualUser(
                        user: user, drop: drop,
                        arrivalMicroseconds: population.arrival.offsetMicroseconds(ofArrival: index),
                        behaviour: population, random: random))
            }
            nextUser += UserID(population.count)
        }
        users.sort { $0.arrivalMicroseconds < $1.arrivalMicroseconds }
        return users
    }
}
