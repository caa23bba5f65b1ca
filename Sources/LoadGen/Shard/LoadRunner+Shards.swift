// The two halves of a sharded run that `stockdrop run` performs: the setup (drops created
// once, the run file written) and one shard's slice of the load. The merge is `ShardMerge`.
import Engine
import Foundation

extension LoadRunner {
    /// Creates the scenario's drops through the server target, each opening its `startsIn`
    /// after `startAt`, and returns the run file that every shard reads.
    public static func setUp(_ scenario: Scenario, options: RunOptions, startAt: Date) async throws -> RunFile {
        guard case .servers(let urls) = scenario.target else {
            throw RunError.usage("--setup-only creates drops on a server for shards to share: give --target URL")
        }
        guard scenario.nemesis == nil else { throw RunError.usage("a sharded run cannot start a nemesis cluster") }
        let target = try await serverTarget(urls, options: options)
        do {
            let drops = try await StrategyLoad(scenario: scenario, target: target, live: LiveCounters()) { _ in }
                .createDrops(startAt: startAt)
            await target.close()
            return RunFile(scenario: scenario, drops: drops, startAt: startAt, target: scenario.target.description)
        } catch {
            await target.close()
            throw error
        }
    }

    /// One shard's slice of `scenario` against the run file's drops; its directory (not yet
    /// written: `path` is empty).
    public static func runShard(
        _ scenario: Scenario, options: RunOptions, assignment: ShardAssignment,
        report: @escaping @Sendable (String) -> Void, progress: @escaping @Sendable (Strategy, ProgressTick) -> Void
    ) async throws -> ShardDirectory {
        guard case .servers(let urls) = scenario.target else {
            throw RunError.usage("a shard sends its load to a server: give --target URL (or the run file's)")
        }
        guard scenario.nemesis == nil else { throw RunError.usage("a sharded run cannot start a nemesis cluster") }
        if let mismatch = assignment.runFile.mismatch(with: scenario) { throw RunError.usage(mismatch) }
        let target = try await serverTarget(urls, options: options)
        do {
            let shard = try await StrategyLoad(
                scenario: scenario, target: target, live: LiveCounters(board: options.board)
            ) {
                progress(target.strategy, $0)
            }.runShard(assignment, report: report)
            await target.close()
            return shard
        } catch {
            await target.close()
            throw error
        }
    }

    /// The planned users of `shard` in arrival order: global id, the index of their drop in
    /// the scenario, arrival offset. Nothing is created or sent.
    public static func plan(
        _ scenario: Scenario, shard: ShardSpec
    ) -> [(user: UserID, dropIndex: Int, arrivalMicroseconds: Int64)] {
        let indices = scenario.drops.indices.map { DropID($0) }
        return scenario.plannedUsers(indices, shard: shard).map { ($0.user, Int($0.drop), $0.arrivalMicroseconds) }
    }
}
