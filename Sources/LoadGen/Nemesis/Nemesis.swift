// Runs a nemesis plan against a `NemesisCluster` while the load runs: each window opens its
// fault on its target (kills and pauses aim at the hot drop's owner at that instant), waits,
// heals, and logs both instants on the run's clock. Cancelled when the load ends, it heals
// whatever is open before returning, so the drain and the checker see a whole system.
import Engine
import Foundation

/// One fault as it happened, on the run's clock.
public struct FaultRecord: Sendable, Codable, Equatable {
    public var kind: FaultKind
    /// `s2` (an instance), `postgres`, `redis`.
    public var target: String
    public var startedMicroseconds: Int64
    public var healedMicroseconds: Int64
    /// Set when opening or healing the fault failed (the run goes on; the report says so).
    public var problem: String?
    /// When a new primary served after `kill-primary` or `switchover` (Patroni's leader).
    public var promotedMicroseconds: Int64? = nil
}

public struct Nemesis: Sendable {
    public let plan: NemesisPlan
    public let cluster: NemesisCluster
    public let seed: UInt64

    public init(plan: NemesisPlan, cluster: NemesisCluster, seed: UInt64) {
        self.plan = plan
        self.cluster = cluster
        self.seed = seed
    }

    func run(clock: RunClock, hotDrop: DropID, endMicroseconds: Int64) async -> [FaultRecord] {
        var records: [FaultRecord] = []
        for window in plan.schedule(seed: seed, endMicroseconds: endMicroseconds) {
            if Task.isCancelled { break }
            try? await Task.sleep(until: clock.instant(atMicroseconds: window.startMicroseconds), clock: .continuous)
            if Task.isCancelled { break }
            var record = FaultRecord(
                kind: window.kind, target: "", startedMicroseconds: clock.nowMicroseconds, healedMicroseconds: 0)
            let opened: Fault
            do {
                opened = try await open(window.kind, hotDrop: hotDrop, clock: clock)
                record.target = opened.target
                // A primary is found before it is killed: the fault starts at the kill.
                if window.kind == .killPrimary { record.startedMicroseconds = clock.nowMicroseconds }
            } catch {
                record.problem = "could not open: \(error)"
                record.healedMicroseconds = clock.nowMicroseconds
                records.append(record)
                continue
            }
            // A cancelled sleep (the load ended) heals at once.
            try? await Task.sleep(
                until: clock.instant(atMicroseconds: record.startedMicroseconds + window.lastsMicroseconds),
                clock: .continuous)
            do {
                // Healing runs to its end even when the load ended meanwhile (a restart waits
                // for its instance's /ready): a task of its own, outside this one's cancellation.
                try await Task { try await heal(opened) }.value
            } catch {
                record.problem = "could not heal: \(error)"
            }
            record.promotedMicroseconds = await opened.promoted?.value
            record.healedMicroseconds = clock.nowMicroseconds
            records.append(record)
        }
        return records
    }

    private struct Fault {
        var kind: FaultKind
        var instance: Int?
        var target: String
        /// The run time at which a new primary served (failover faults), watched from the open.
        var promoted: Task<Int64?, Never>? = nil
    }

    private func open(_ kind: FaultKind, hotDrop: DropID, clock: RunClock) async throws -> Fault {
        switch kind {
        case .killPrimary:
            let database = try cluster.failoverDatabase()
            let node = try await database.control.killLeader().node
            return Fault(
                kind: kind, instance: node, target: PatroniCluster.nodeName(node),
                promoted: Self.watchPromotion(database, away: node, clock: clock))
        case .switchover:
            let database = try cluster.failoverDatabase()
            let (from, to) = try await database.control.switchover()
            let promoted = clock.nowMicroseconds
            return Fault(
                kind: kind, instance: from,
                target: "\(PatroniCluster.nodeName(from))->\(PatroniCluster.nodeName(to))",
                promoted: Task { promoted })
        case .killServer, .pauseServer:
            let instance = await cluster.owner(of: hotDrop) ?? 1
            if kind == .killServer {
                try cluster.kill(instance: instance)
            } else {
                try cluster.pause(instance: instance)
            }
            return Fault(kind: kind, instance: instance, target: LocalCluster.name(ofInstance: instance))
        case .restartPostgres:
            try await cluster.crashAndRestartDatabase()
            return Fault(kind: kind, target: "postgres")
        case .pausePostgres:
            cluster.pauseDatabase()
            return Fault(kind: kind, target: "postgres")
        case .killRedis:
            try cluster.killRedis()
            return Fault(kind: kind, target: "redis")
        }
    }

    private func heal(_ fault: Fault) async throws {
        switch fault.kind {
        case .killServer: try await cluster.restart(instance: fault.instance ?? 1)
        case .pauseServer: try cluster.resume(instance: fault.instance ?? 1)
        case .restartPostgres: break  // over once the cluster accepts connections again
        case .pausePostgres: cluster.resumeDatabase()
        case .killRedis: try await cluster.restartRedis()
        case .killPrimary:
            // The old primary comes back as a replica once another was promoted.
            _ = await fault.promoted?.value
            try await cluster.failoverDatabase().restart(node: fault.instance ?? 1)
        case .switchover: break
        }
    }

    /// Polls Patroni until a node other than `away` leads and takes writes through HAProxy
    /// (60 s at most): the run time of the promotion as clients can see it.
    private static func watchPromotion(
        _ database: PatroniCluster, away node: Int, clock: RunClock
    ) -> Task<
        Int64?, Never
    > {
        Task { await database.control.waitForNewPrimary(away: node, seconds: 60).map { _ in clock.nowMicroseconds } }
    }
}
