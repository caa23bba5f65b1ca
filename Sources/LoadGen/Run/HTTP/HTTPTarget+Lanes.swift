// A run's buyers against a server: split over event-loop lanes (`HTTPLane`), each running its
// share of the schedule and its connections on one thread, as wrk's threads do. The bound on
// connections is per server, shared out between the lanes; it defaults to what the process's
// descriptor limit leaves room for, raised to its hard limit first.
import Engine
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A target that runs a run's users itself rather than being called once per request.
protocol UserDriver: Sendable {
    func drive(
        _ users: [VirtualUser], clock: RunClock, stopMicroseconds: Int64, live: LiveCounters, spool: HistorySpool
    ) async throws -> UserScheduler.Outcome
}

/// A target that measures its own latency (a server's /metrics), for the report to set beside
/// the harness's.
protocol ServerMeasured: Sendable {
    func serverHistogram() async -> ServerHistogram?
}

extension HTTPTarget: ServerMeasured {}

extension HTTPTarget: UserDriver {
    func drive(
        _ users: [VirtualUser], clock: RunClock, stopMicroseconds: Int64, live: LiveCounters, spool: HistorySpool
    ) async throws -> UserScheduler.Outcome {
        let tokens = try await self.tokens.tokens(for: users.map(\.user))
        let laneCount = max(1, LoadDefaults.httpEventLoopThreads)
        let perServer = Self.connectionBound(asked: options.connections, servers: servers.count)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: laneCount)
        defer { group.shutdownGracefully { _ in } }
        // Users go to lanes round-robin in arrival order, so a burst is shared evenly.
        var laneUsers = [[VirtualUser]](repeating: [], count: laneCount)
        var laneTokens = [[String]](repeating: [], count: laneCount)
        for index in users.indices {
            laneUsers[index % laneCount].append(users[index])
            laneTokens[index % laneCount].append(tokens[index])
        }
        let lanes = (0..<laneCount).map { lane in
            HTTPLane(
                eventLoop: group.next(), users: laneUsers[lane], tokens: laneTokens[lane], servers: servers,
                maxConnectionsPerServer: (perServer + laneCount - 1) / laneCount,
                timeoutMilliseconds: options.timeoutMilliseconds, clock: clock, stopMicroseconds: stopMicroseconds,
                live: live, spool: spool)
        }
        laneUsers = []
        laneTokens = []
        return await withTaskGroup(of: (UserScheduler.Outcome, LaneFigures).self) { tasks in
            for lane in lanes { tasks.addTask { await lane.run() } }
            var outcome = UserScheduler.Outcome()
            var figures = LaneFigures()
            for await (part, laneFigures) in tasks {
                outcome.neverSent += part.neverSent
                outcome.cutOff.merge(part.cutOff, uniquingKeysWith: +)
                outcome.shedAtStop += part.shedAtStop
                outcome.unsentAtStop.merge(part.unsentAtStop, uniquingKeysWith: +)
                figures = figures + laneFigures
            }
            outcome.connections = ConnectionFigures(
                boundPerServer: perServer, opened: figures.connectionsOpened, failedToOpen: figures.connectFailures)
            outcome.laneCPUMicroseconds = figures.threadCPUMicroseconds
            return outcome
        }
    }

    /// Connections per server: what was asked, else what the descriptor limit leaves once
    /// each server's share and some room for everything else (the database, watchers, files)
    /// are set aside, `LoadDefaults.httpConnections` at most.
    static func connectionBound(asked: Int?, servers: Int) -> Int {
        if let asked { return max(1, asked) }
        let descriptors = ProcessLimits.raiseOpenFilesToHardLimit()
        let room = max(64, (descriptors - LoadDefaults.reservedDescriptors) / max(1, servers))
        return min(LoadDefaults.httpConnections, room)
    }
}

/// What the run's buyers' connections did.
public struct ConnectionFigures: Sendable, Codable, Equatable {
    /// The most connections the harness would open to each server (`--connections`).
    public var boundPerServer: Int
    public var opened: Int
    public var failedToOpen: Int
}

enum ProcessLimits {
    /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), in microseconds.
    static func threadCPUMicroseconds() -> Int64 {
        var time = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time) == 0 else { return 0 }
        return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1_000
    }

    /// Raises the soft limit on open files to the hard one (as Go's runtime does) and returns
    /// the limit now in force.
    static func raiseOpenFilesToHardLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}
