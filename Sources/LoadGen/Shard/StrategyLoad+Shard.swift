// One shard's run: its slice of the scenario against drops a setup step created, from the
// start instant every shard shares, with its clock measured against the database's before
// and after. No drain and no checker here: they need every shard's history, so they run
// once, in `ShardMerge`.
import Engine
import Foundation

public struct ShardAssignment: Sendable {
    public var runFile: RunFile
    public var shard: ShardSpec
    /// The schedule's zero: the run file's, unless `--start-at` moved it.
    public var startAt: Date

    public init(runFile: RunFile, shard: ShardSpec, startAt: Date? = nil) {
        self.runFile = runFile
        self.shard = shard
        self.startAt = startAt ?? runFile.startAt
    }
}

extension StrategyLoad {
    func runShard(_ assignment: ShardAssignment, report: @Sendable (String) -> Void) async throws -> ShardDirectory {
        let drops = assignment.runFile.drops
        let users = plannedUsers(drops, shard: assignment.shard)
        live.board?.begin(strategy: target.strategy, drops: boardDrops(drops), plannedUsers: users.count)
        try await target.prepare(users: users.map(\.user))
        let observer = PostgresPool(url: target.databaseURL, size: 1)
        defer { Task { await observer.close() } }
        let before = try await ClockOffset.measure(pool: observer)
        report(
            "shard \(assignment.shard): \(users.count) users; clock offset to the database \(Self.milliseconds(before.offsetMicroseconds)) ± \(Self.milliseconds(before.uncertaintyMicroseconds)) ms"
        )
        let wait = assignment.startAt.timeIntervalSinceNow
        if wait > 0 {
            report(
                "shard \(assignment.shard): starting at \(assignment.startAt) (in \(String(format: "%.1f", wait)) s)")
            try await Task.sleep(for: .microseconds(Int64(wait * 1_000_000)))
        } else if wait < -Double(LoadDefaults.lateSendMilliseconds) / 1_000 {
            report(
                "shard \(assignment.shard): began \(String(format: "%.1f", -wait)) s after the start instant: arrivals already due go out at once (late sends)"
            )
        }
        let clock = RunClock(zeroAt: assignment.startAt)
        let beganLate = max(0, clock.nowMicroseconds)
        let load = try await self.load(users, drops: drops, clock: clock, observer: observer)
        load.ticker.cancel()
        let samples = await load.ticker.value
        // Whether the target still answers, for the merge (which drains and checks).
        let up = await targetAnswersAfterLoad()
        let after = try? await ClockOffset.measure(pool: observer)
        var manifest = ShardManifest(
            runID: assignment.runFile.runID, scenario: scenario.name, scenarioDigest: scenario.digest,
            seed: scenario.seed, shard: assignment.shard, strategy: target.strategy,
            target: scenario.target.description,
            host: ProcessInfo.processInfo.hostName,
            plannedStartAtEpochMicroseconds: assignment.startAt.epochMicroseconds,
            startedAtEpochMicroseconds: load.clock.startedAt.epochMicroseconds, beganLateMicroseconds: beganLate,
            clockBefore: before,
            clockAfter: after, plannedUsers: users.count, neverSent: load.outcome.neverSent,
            requests: load.records.count, loadSeconds: load.loadSeconds,
            targetCPUBeforeMicroseconds: load.cpuBeforeMicroseconds,
            targetCPUAfterMicroseconds: load.cpuAfterMicroseconds,
            harnessPeakResidentBytes: ProcessUsage.now().peakResidentBytes, stockSamples: samples,
            databaseURL: target.databaseURL)
        let causes = live.errorCauses
        manifest.errorCauses = causes.isEmpty ? nil : causes
        manifest.targetAnswered = up
        manifest.shedAtStop = load.outcome.shedAtStop > 0 ? load.outcome.shedAtStop : nil
        manifest.unsentAtStop = OperationKind.named(load.outcome.unsentAtStop)
        return ShardDirectory(
            path: "", runFile: assignment.runFile, manifest: manifest,
            history: load.history(databaseURL: target.databaseURL, drops: drops),
            histograms: OperationHistograms(load.records))
    }

    static func milliseconds(_ microseconds: Int64) -> String { String(format: "%.3f", Double(microseconds) / 1_000) }
}
