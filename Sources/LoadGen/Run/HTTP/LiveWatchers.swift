// `watchers: K`: K WebSocket clients of the server's live feed during a run, as a dashboard
// full of operators would be. They measure event lag (the database's commit time to receipt
// here, one machine so one clock), the events delivered per second, and, once the run has
// drained, whether the last stock value each watcher saw for each drop is the database's.
import Engine
import Foundation
import Histogram
import HummingbirdWSClient
import Logging
import Synchronization

public struct LiveFigures: Sendable, Codable, Equatable {
    public var watchers: Int
    public var connected: Int
    public var eventsReceived: Int
    public var eventsPerSecond: Double
    /// Commit to receipt, over stock, purchase and drop events.
    public var lagMilliseconds: LatencyPercentiles
    /// Watchers whose last stock value of every run drop equals the database's after the drain.
    public var finalStockMatches: Int
}

final class LiveWatchers: Sendable {
    private struct Snapshot: Decodable {
        struct SnapshotDrop: Decodable {
            let id: Int64
            let availableStock: Int
        }
        let drops: [SnapshotDrop]?
    }

    private struct State {
        var lastAvailable: [[DropID: Int]]
        var lag = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var received = 0
        var snapshots = 0
        var firstEventAt: Date?
        var lastEventAt: Date?
    }

    private let state: Mutex<State>
    private let stops: [AsyncStream<Void>.Continuation]
    private let finished: Mutex<[Task<Void, Never>]>

    /// Connects `tokens.count` watchers and returns once each has its snapshot (or 30 s passed).
    static func connect(host: String, port: Int, tokens: [String]) async -> LiveWatchers {
        let watchers = LiveWatchers(count: tokens.count)
        watchers.start(host: host, port: port, tokens: tokens)
        for _ in 0..<600 where watchers.state.withLock({ $0.snapshots }) < tokens.count {
            try? await Task.sleep(for: .milliseconds(50))
        }
        return watchers
    }

    private init(count: Int) {
        state = Mutex(State(lastAvailable: Array(repeating: [:], count: count)))
        var stops: [AsyncStream<Void>.Continuation] = []
        var streams: [AsyncStream<Void>] = []
        for _ in 0..<count {
            let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
            streams.append(stream)
            stops.append(continuation)
        }
        self.stops = stops
        finished = Mutex([])
        pendingStops = Mutex(streams)
    }

    private let pendingStops: Mutex<[AsyncStream<Void>]>

    private func start(host: String, port: Int, tokens: [String]) {
        let streams = pendingStops.withLock { $0 }
        var tasks: [Task<Void, Never>] = []
        for (index, token) in tokens.enumerated() {
            let stop = streams[index]
            tasks.append(
                Task {
                    _ = try? await WebSocketClient.connect(
                        url: "ws://\(host):\(port)/v1/live?token=\(token)",
                        configuration: WebSocketClientConfiguration(maxFrameSize: 1 << 24),
                        logger: Logger(label: "watcher")
                    ) { inbound, outbound, _ in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for await _ in stop { break }
                                try await outbound.close(.normalClosure, reason: nil)
                            }
                            var messages = inbound.makeAsyncIterator()
                            while let message = try await messages.nextMessage(maxSize: 1 << 24) {
                                if case .text(let text) = message { self.received(text, by: index) }
                            }
                            group.cancelAll()
                        }
                    }
                })
        }
        finished.withLock { $0 = tasks }
    }

    private func received(_ text: String, by watcher: Int) {
        let now = Date()
        let bytes = Array(text.utf8)
        var lags: [UInt64] = []
        var snapshot: Snapshot?
        let events = LiveFrameReader.objects(in: bytes).map { object -> LiveFrameEvent in
            let event = LiveFrameReader.event(object)
            // One per socket: decoded in full for its drops.
            if event.type == "snapshot" { snapshot = try? JSONDecoder().decode(Snapshot.self, from: Data(object)) }
            return event
        }
        for event in events where event.type != "snapshot" {
            if let committed = event.committedAtSeconds {
                lags.append(UInt64(clamping: max(1, Int64((now.timeIntervalSince1970 - committed) * 1_000_000))))
            }
        }
        state.withLock { state in
            for event in events {
                switch event.type {
                case "snapshot":
                    state.snapshots += 1
                    for drop in snapshot?.drops ?? [] { state.lastAvailable[watcher][drop.id] = drop.availableStock }
                    continue
                case "stock.changed":
                    if let drop = event.dropID, let available = event.availableStock {
                        state.lastAvailable[watcher][drop] = available
                    }
                default:
                    break
                }
                state.received += 1
                if state.firstEventAt == nil { state.firstEventAt = now }
                state.lastEventAt = now
            }
            for lag in lags { _ = state.lag.record(lag) }
        }
    }

    /// Waits (up to 5 s) for every watcher to hold the database's final figures, then closes
    /// them all and summarizes.
    func finish(available: [DropID: Int]) async -> LiveFigures {
        func matches() -> Int {
            state.withLock { state in
                state.lastAvailable.count { last in available.allSatisfy { last[$0.key] == $0.value } }
            }
        }
        for _ in 0..<100 where matches() < stops.count { try? await Task.sleep(for: .milliseconds(50)) }
        let matched = matches()
        for stop in stops { stop.yield() }
        for task in finished.withLock({ $0 }) { await task.value }
        return state.withLock { state in
            let seconds = max((state.lastEventAt ?? Date()).timeIntervalSince(state.firstEventAt ?? Date()), 1e-3)
            func ms(_ percentile: Double) -> Double { Double(state.lag.valueAtPercentile(percentile)) / 1_000 }
            let lag =
                state.lag.totalCount == 0
                ? LatencyPercentiles(p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
                : LatencyPercentiles(
                    p50: ms(50), p90: ms(90), p99: ms(99), p999: ms(99.9), max: Double(state.lag.max) / 1_000)
            return LiveFigures(
                watchers: stops.count, connected: state.snapshots, eventsReceived: state.received,
                eventsPerSecond: Double(state.received) / seconds, lagMilliseconds: lag, finalStockMatches: matched)
        }
    }
}
