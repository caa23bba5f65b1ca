// `stockdrop report merge`: the shards of one run made into one verdict. Every history is
// moved onto the database's clock by its shard's measured offset, the histograms are added
// bucket by bucket, and the checker runs once over the database and every history, as if one
// process had made all the requests. Shards that are not one run's complete set are refused
// before anything is read from the database, each problem named.
import Engine
import Foundation

public enum ShardMerge {
    /// Why `shards` cannot be merged into one verdict (empty when they can): another run's
    /// shard, mismatched scenarios, seeds or counts, a slice twice or missing, a clock whose
    /// uncertainty exceeds the checker's tolerance.
    public static func problems(_ shards: [(path: String, runFile: RunFile, manifest: ShardManifest)]) -> [String] {
        guard let first = shards.first else { return ["no shard directories given"] }
        var problems: [String] = []
        func differ<T: Equatable>(_ what: String, _ value: (ShardManifest, RunFile) -> T, _ show: (T) -> String) {
            let reference = value(first.manifest, first.runFile)
            for shard in shards.dropFirst() where value(shard.manifest, shard.runFile) != reference {
                problems.append(
                    "\(shard.path) has \(what) \(show(value(shard.manifest, shard.runFile))), \(first.path) has \(show(reference)): not shards of one run"
                )
            }
        }
        differ("run file", { $1.runID }, { "`\($0)`" })
        differ("scenario", { manifest, _ in "\(manifest.scenario) (digest \(manifest.scenarioDigest))" }, { $0 })
        differ("seed", { manifest, _ in manifest.seed }, { "\($0)" })
        differ("shard count", { manifest, _ in manifest.shard.count }, { "\($0)" })
        differ("start instant", { manifest, _ in manifest.plannedStartAtEpochMicroseconds }, { "\($0) µs" })
        for shard in shards where shard.manifest.runID != shard.runFile.runID {
            problems.append(
                "\(shard.path): its shard.json is of run `\(shard.manifest.runID)`, its run.json of `\(shard.runFile.runID)`"
            )
        }
        let count = first.manifest.shard.count
        var seen: [Int: String] = [:]
        for shard in shards where shard.manifest.shard.count == count {
            if let other = seen[shard.manifest.shard.index] {
                problems.append("shard \(shard.manifest.shard) appears twice: \(other) and \(shard.path)")
            }
            seen[shard.manifest.shard.index] = shard.path
        }
        let missing = (0..<count).filter { seen[$0] == nil }
        if !missing.isEmpty {
            problems.append(
                "shard\(missing.count == 1 ? "" : "s") \(missing.map { "\($0)/\(count)" }.joined(separator: ", ")) missing: a merge needs every shard's directory"
            )
        }
        let toleranceMicroseconds = Int64(first.runFile.clockToleranceMilliseconds * 1_000)
        for shard in shards where shard.manifest.uncertaintyMicroseconds > toleranceMicroseconds {
            let manifest = shard.manifest
            problems.append(
                "shard \(manifest.shard) (\(shard.path)): its clock's uncertainty \(StrategyLoad.milliseconds(manifest.uncertaintyMicroseconds)) ms exceeds the checker's tolerance \(first.runFile.clockToleranceMilliseconds) ms (round trip to the database \(StrategyLoad.milliseconds(manifest.clockBefore.roundTripMicroseconds)) ms, drift during the load \(StrategyLoad.milliseconds(manifest.driftMicroseconds)) ms): its times cannot be compared with the rows'"
            )
        }
        return problems
    }

    /// The shards' histories on the database's clock, as one: the merged zero is the earliest
    /// shard's zero read on the database's clock, and every record moves by its shard's zero
    /// minus that.
    public static func history(_ shards: [ShardDirectory]) -> ClientHistory {
        let zero = shards.map(\.manifest.startedAtDatabaseEpochMicroseconds).min() ?? 0
        var records: [OperationRecord] = []
        records.reserveCapacity(shards.reduce(0) { $0 + $1.history.records.count })
        var cutOff: [DropID: ClientHistory.CutOff] = [:]
        for shard in shards {
            let shift = shard.history.startedAtEpochMicroseconds + shard.manifest.offsetMicroseconds - zero
            for var record in shard.history.records {
                record.intendedMicroseconds += shift
                record.sentMicroseconds += shift
                record.answeredMicroseconds += shift
                records.append(record)
            }
            for (drop, cut) in shard.history.cutOff {
                let previous = cutOff[drop] ?? ClientHistory.CutOff(users: 0, atMicroseconds: 0)
                cutOff[drop] = ClientHistory.CutOff(
                    users: previous.users + cut.users,
                    atMicroseconds: max(previous.atMicroseconds, cut.atMicroseconds + shift))
            }
        }
        records.sort { ($0.sentMicroseconds, $0.user) < ($1.sentMicroseconds, $1.user) }
        var merged = ClientHistory(
            records: records, startedAtEpochMicroseconds: zero, cutOff: cutOff,
            databaseURL: shards.first?.history.databaseURL, drops: shards.first?.runFile.drops)
        merged.clockUncertaintyMicroseconds = shards.map(\.manifest.uncertaintyMicroseconds).max()
        return merged
    }

    /// Every shard's histograms added.
    public static func histograms(_ shards: [ShardDirectory]) -> OperationHistograms {
        var sum = OperationHistograms()
        for shard in shards { sum.add(shard.histograms) }
        return sum
    }

    /// The shards' users still shed, and requests due, when their loads stopped, added up.
    static func atStop(_ manifests: [ShardManifest]) -> (shed: Int, unsent: [OperationKind: Int]) {
        var unsent: [OperationKind: Int] = [:]
        for (operation, count) in manifests.flatMap({ $0.unsentAtStop ?? [:] }) {
            guard let kind = OperationKind(rawValue: operation) else { continue }
            unsent[kind, default: 0] += count
        }
        return (manifests.reduce(0) { $0 + ($1.shedAtStop ?? 0) }, unsent)
    }

    /// Reads the shard directories, refuses them if they are not one run's complete set, waits
    /// for the run's holds to end (at most `drainSeconds`, else the run's default bound),
    /// runs the checker and builds the report.
    public static func merge(
        directories: [String], databaseURL: String?, drainSeconds: Double? = nil,
        note: @Sendable (String) -> Void = { _ in }
    ) async throws -> MergeOutcome {
        let began = ContinuousClock.now
        let shards = try directories.map(ShardDirectory.read).sorted {
            $0.manifest.shard.index < $1.manifest.shard.index
        }
        let problems = problems(shards.map { ($0.path, $0.runFile, $0.manifest) })
        guard problems.isEmpty else { throw MergeRefusal(problems: problems) }
        let runFile = shards[0].runFile
        let history = history(shards)
        // The database the caller names, else the one the shards measured against.
        let url = try await Database.prepare(environment: [
            "DATABASE_URL": databaseURL ?? shards[0].manifest.databaseURL
        ])
        let observer = PostgresPool(url: url, size: 1)
        defer { Task { await observer.close() } }
        // As a single run: when no shard heard a server after its load, nothing expired the
        // holds left ACTIVE, so they are not judged and the report says the target was down.
        let up = shards.contains { $0.manifest.targetAnswered ?? true }
        let check = try await StrategyLoad.drainedChecker(
            drops: runFile.drops, observer: observer, longestTTLMilliseconds: runFile.longestReserveTTLMilliseconds,
            boundSeconds: drainSeconds, strategy: shards[0].manifest.strategy,
            toleranceMilliseconds: runFile.clockToleranceMilliseconds, expiriesJudged: up, note: note
        ).check(pool: observer, drops: runFile.drops, history: history)
        var run = StrategyResult(
            strategy: shards[0].manifest.strategy, databaseURL: url, drops: runFile.drops,
            totalStock: runFile.totalStock,
            history: history,
            loadSeconds: Double(max(history.records.map(\.answeredMicroseconds).max() ?? 1, 1)) / 1e6,
            plannedUsers: shards.reduce(0) { $0 + $1.manifest.plannedUsers },
            neverSent: shards.reduce(0) { $0 + $1.manifest.neverSent },
            stockSamples: stockSamples(shards, zero: history.startedAtEpochMicroseconds), check: check)
        run.histograms = histograms(shards)
        run.harnessPeakResidentBytes = shards.map(\.manifest.harnessPeakResidentBytes).max()
        run.targetCPUMicroseconds = targetCPU(shards)
        run.errorCauses = ErrorTally.merged(shards.map { $0.manifest.errorCauses ?? [] })
        (run.shedAtStop, run.unsentAtStop) = atStop(shards.map(\.manifest))
        if !up { run.targetDown = TargetDown(after: history.records) }
        // Memory over time is the first shard's (its samples); peak memory is the largest shard's.
        let report = StrategyReport(run, thresholds: try runFile.parsedThresholds())
        let exitCode = LoadRunner.verdict([report])
        var summary = RunReport(
            scenario: runFile.scenario, seed: runFile.seed,
            startedAt: Date(timeIntervalSince1970: Double(history.startedAtEpochMicroseconds) / 1e6),
            pass: exitCode == 0, exitCode: exitCode,
            target:
                "\(shards.count) shards against \(Set(shards.map(\.manifest.target)).sorted().joined(separator: ", "))",
            strategies: [report], comparison: nil)
        summary.shards = shards.map { ShardLine($0, zero: history.startedAtEpochMicroseconds) }
        return MergeOutcome(
            report: summary, history: history, histograms: run.histograms ?? OperationHistograms(),
            seconds: Double(RunClock.microseconds(ContinuousClock.now - began)) / 1e6)
    }

    /// The first shard's samples of the drops' stock (every shard reads the same rows), moved
    /// onto the merged zero.
    static func stockSamples(_ shards: [ShardDirectory], zero: Int64) -> [StockSample] {
        guard let first = shards.first else { return [] }
        let shift = Double(first.manifest.startedAtDatabaseEpochMicroseconds - zero) / 1e6
        return first.manifest.stockSamples.map { sample in
            var moved = sample
            moved.second += shift
            return moved
        }
    }

    /// The target's CPU from the first shard's reading before to the last one's after, when
    /// every shard read the one target's counter.
    static func targetCPU(_ shards: [ShardDirectory]) -> Int64? {
        guard Set(shards.map(\.manifest.target)).count == 1 else { return nil }
        let before = shards.compactMap(\.manifest.targetCPUBeforeMicroseconds)
        let after = shards.compactMap(\.manifest.targetCPUAfterMicroseconds)
        guard before.count == shards.count, after.count == shards.count, let low = before.min(), let high = after.max()
        else { return nil }
        return high - low
    }
}

public struct MergeOutcome: Sendable {
    public var report: RunReport
    public var history: ClientHistory
    public var histograms: OperationHistograms
    /// From reading the first directory to the report built, checker included.
    public var seconds: Double
}

/// The shards were not one run's complete set; nothing was checked.
public struct MergeRefusal: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    public var description: String { "not merged:\n" + problems.map { "  - \($0)" }.joined(separator: "\n") }
}

/// One shard's line in the merged report.
public struct ShardLine: Sendable, Codable, Equatable {
    public var shard: String
    public var host: String
    public var directory: String
    public var users: Int
    public var requests: Int
    public var reserveOK: Int
    public var reserveP50Milliseconds: Double
    public var reserveP99Milliseconds: Double
    /// Database clock minus the shard's, and how far off that may be, in milliseconds.
    public var clockOffsetMilliseconds: Double
    public var clockUncertaintyMilliseconds: Double
    public var clockDriftMilliseconds: Double
    /// The shard's zero on the database's clock, after the merged zero.
    public var startedAfterMilliseconds: Double
    /// From its zero to its first possible send on its own clock.
    public var beganLateMilliseconds: Double

    init(_ shard: ShardDirectory, zero: Int64) {
        let manifest = shard.manifest
        let reserve = shard.histograms.histogram(.reserve)
        self.shard = manifest.shard.description
        host = manifest.host
        directory = shard.path
        users = manifest.plannedUsers
        requests = manifest.requests
        reserveOK = shard.history.records.count { $0.operation == .reserve && $0.result == .ok }
        reserveP50Milliseconds = reserve.percentiles.p50
        reserveP99Milliseconds = reserve.percentiles.p99
        clockOffsetMilliseconds = Double(manifest.offsetMicroseconds) / 1_000
        clockUncertaintyMilliseconds = Double(manifest.uncertaintyMicroseconds) / 1_000
        clockDriftMilliseconds = Double(manifest.driftMicroseconds) / 1_000
        startedAfterMilliseconds = Double(manifest.startedAtDatabaseEpochMicroseconds - zero) / 1_000
        beganLateMilliseconds = Double(manifest.beganLateMicroseconds) / 1_000
    }
}
