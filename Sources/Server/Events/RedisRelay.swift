// Fans events out across server instances through Redis pub/sub (hiredis, on threads of its
// own: it blocks). Publishing never blocks a caller: events queue (bounded, drops counted)
// for a publisher thread, which pipelines whatever is queued in one round trip. A subscriber thread relays the other instances' events to this hub. When Redis goes
// away, claims go on (events are never needed for a claim), `/ready` says events are
// degraded, both sides reconnect with backoff, and on recovery every local socket gets a
// fresh snapshot, since events were missed meanwhile.
import Engine
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

public final class RedisRelay: Service, Sendable {
    public enum Status: Sendable, Equatable {
        case connecting, connected
        case degraded(String)
    }

    static let channel = "stockdrop:events"

    let url: String
    private let hub: EventHub
    private let snapshot: @Sendable () async -> LiveEvent?
    private let logger: Logger
    private let publisherThread = BlockingThread(name: "redis-publish")
    private let subscriberThread = BlockingThread(name: "redis-subscribe")
    private let publisher = Mutex<RedisConnection?>(nil)
    private let subscriber = Mutex<RedisConnection?>(nil)
    private let state = Mutex<Status>(.connecting)
    private let stopping = Atomic<Bool>(false)
    private let subscriberHealthy = Atomic<Bool>(false)
    /// Optimistic until a publish fails: an instance that never publishes is not degraded.
    private let publisherHealthy = Atomic<Bool>(true)
    private let outgoing = PublishQueue(capacity: ServerDefaults.relayQueueEvents)

    init(url: String, hub: EventHub, logger: Logger, snapshot: @escaping @Sendable () async -> LiveEvent?) {
        self.url = url
        self.hub = hub
        self.logger = logger
        self.snapshot = snapshot
        hub.forward { [outgoing] event in outgoing.push(event) }
    }

    public var status: Status { state.withLock { $0 } }
    /// Events this instance could not publish (queue full, or a failed publish) since start.
    public var droppedEvents: Int { outgoing.droppedCount }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.publishLoop() }
                group.addTask { await self.subscribeLoop() }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .sequentiallyConsistent)
            self.outgoing.finish()
            self.subscriber.withLock { $0 }?.interrupt()
            self.publisher.withLock { $0 }?.interrupt()
        }
        publisherThread.stop()
        subscriberThread.stop()
    }

    private var isStopping: Bool { stopping.load(ordering: .sequentiallyConsistent) || Task.isCancelled }

    // MARK: - Publishing

    /// Whatever is queued (up to `relayPipelineEvents`) in one pipelined round trip on the
    /// publisher thread; a failure drops those events (counted) and the connection (the next
    /// batch connects anew, bounded by the relay timeout; meanwhile the bounded queue drops its
    /// oldest) and marks events degraded. Other instances' sockets are resynchronized with a
    /// snapshot when their subscriber reconnects.
    private func publishLoop() async {
        while let events = await outgoing.take(limit: ServerDefaults.relayPipelineEvents) {
            if isStopping { break }
            let texts = events.map(\.json)
            do {
                try await publisherThread.run { [self] in
                    var connection = publisher.withLock { $0 }
                    if connection == nil {
                        let fresh = try RedisConnection(
                            url: url, timeoutMilliseconds: ServerDefaults.relayTimeoutMilliseconds)
                        fresh.setTimeout(milliseconds: ServerDefaults.relayTimeoutMilliseconds)
                        publisher.withLock { $0 = fresh }
                        connection = fresh
                    }
                    do {
                        try connection?.publish(channel: Self.channel, messages: texts)
                    } catch {
                        publisher.withLock { $0 = nil }
                        throw error
                    }
                }
                publisherHealthy.store(true, ordering: .sequentiallyConsistent)
                refreshStatus()
            } catch {
                outgoing.countDropped(texts.count)
                publisherHealthy.store(false, ordering: .sequentiallyConsistent)
                degrade("publish: \(error)")
            }
        }
    }

    // MARK: - Subscribing

    private func subscribeLoop() async {
        var retryMilliseconds = ServerDefaults.relayRetryMilliseconds
        while !isStopping {
            do {
                let connection = try await subscriberThread.run { [url] in
                    try RedisConnection(url: url, timeoutMilliseconds: ServerDefaults.relayTimeoutMilliseconds)
                }
                // Stored before SUBSCRIBE, so shutdown can interrupt every blocking step.
                subscriber.withLock { $0 = connection }
                if isStopping { connection.interrupt() }
                try await subscriberThread.run {
                    connection.enableKeepAlive()
                    _ = try connection.command(["SUBSCRIBE", Self.channel])
                }
                subscriberHealthy.store(true, ordering: .sequentiallyConsistent)
                // Redis answers again: the publisher reconnects on its next event, and says so
                // if it cannot.
                publisherHealthy.store(true, ordering: .sequentiallyConsistent)
                refreshStatus()
                logger.info("event relay connected", metadata: ["redis": "\(RedactedURL.of(url))"])
                retryMilliseconds = ServerDefaults.relayRetryMilliseconds
                // Events may have been missed while unsubscribed (or before the first connect).
                if hub.sockets.subscriberCount > 0, let snapshot = await snapshot() {
                    hub.sockets.resynchronize(snapshot)
                }
                let hub = self.hub
                try await subscriberThread.run {
                    while true {
                        guard case .array(let parts) = try connection.nextReply(), parts.count == 3,
                            case .string(let kind) = parts[0], kind == "message", case .string(let text) = parts[2],
                            let event = LiveEvent.decode(text)
                        else { continue }
                        hub.relayed(event)
                    }
                }
            } catch {
                subscriber.withLock { $0 = nil }
                subscriberHealthy.store(false, ordering: .sequentiallyConsistent)
                guard !isStopping else { break }
                degrade("subscribe: \(error)")
                try? await Task.sleep(for: .milliseconds(retryMilliseconds))
                retryMilliseconds = min(retryMilliseconds * 2, ServerDefaults.relayMaxRetryMilliseconds)
            }
        }
    }

    /// Connected when the subscriber is, and the publisher has not failed since.
    private func refreshStatus() {
        guard subscriberHealthy.load(ordering: .sequentiallyConsistent),
            publisherHealthy.load(ordering: .sequentiallyConsistent)
        else { return }
        state.withLock { $0 = .connected }
    }

    private func degrade(_ reason: String) {
        let changed = state.withLock { state -> Bool in
            if case .degraded = state { return false }
            state = .degraded(reason)
            return true
        }
        if changed { logger.warning("event relay degraded; claims are unaffected", metadata: ["reason": "\(reason)"]) }
    }
}
