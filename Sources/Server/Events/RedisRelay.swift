// Fans events out across server instances through Redis pub/sub (hiredis, on threads of its
// own: it blocks). Publishing never blocks a caller: events queue (bounded) for a publisher
// thread. A subscriber thread relays the other instances' events to this hub. When Redis goes
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
        case connecting, connected, degraded(String)
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
    private let outgoing: AsyncStream<LiveEvent>
    private let outgoingContinuation: AsyncStream<LiveEvent>.Continuation

    init(url: String, hub: EventHub, logger: Logger, snapshot: @escaping @Sendable () async -> LiveEvent?) {
        self.url = url
        self.hub = hub
        self.logger = logger
        self.snapshot = snapshot
        (outgoing, outgoingContinuation) = AsyncStream.makeStream(of: LiveEvent.self, bufferingPolicy: .bufferingNewest(ServerDefaults.relayQueueEvents))
        hub.forward { [outgoingContinuation] event in outgoingContinuation.yield(event) }
    }

    public var status: Status { state.withLock { $0 } }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.publishLoop() }
                group.addTask { await self.subscribeLoop() }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .sequentiallyConsistent)
            self.outgoingContinuation.finish()
            self.subscriber.withLock { $0 }?.interrupt()
        }
        publisherThread.stop()
        subscriberThread.stop()
    }

    // MARK: - Publishing

    private func publishLoop() async {
        for await event in outgoing {
            let text = event.json
            do {
                try await publisherThread.run { [self] in
                    let connection = try publisher.withLock { current in
                        if let current { return current }
                        let fresh = try RedisConnection(url: url)
                        current = fresh
                        return fresh
                    }
                    do {
                        try connection.publish(channel: Self.channel, message: text)
                    } catch {
                        publisher.withLock { $0 = nil }
                        throw error
                    }
                }
            } catch {
                // The event is lost to other instances; their sockets resynchronize when the
                // relay recovers. Local sockets already have it.
                degrade("publish: \(error)")
            }
        }
    }

    // MARK: - Subscribing

    private func subscribeLoop() async {
        var retryMilliseconds = ServerDefaults.relayRetryMilliseconds
        var everConnected = false
        while !stopping.load(ordering: .sequentiallyConsistent) {
            do {
                let connection = try await subscriberThread.run { [url] in
                    let connection = try RedisConnection(url: url)
                    _ = try connection.command(["SUBSCRIBE", Self.channel])
                    return connection
                }
                subscriber.withLock { $0 = connection }
                if stopping.load(ordering: .sequentiallyConsistent) { connection.interrupt() }
                state.withLock { $0 = .connected }
                publisher.withLock { $0 = nil }  // a publisher connection from before the outage may be dead
                logger.info("event relay connected", metadata: ["redis": "\(url)"])
                retryMilliseconds = ServerDefaults.relayRetryMilliseconds
                if everConnected, let snapshot = await snapshot() { hub.resynchronize(snapshot) }
                everConnected = true
                let hub = self.hub
                try await subscriberThread.run {
                    while true {
                        guard case .array(let parts) = try connection.nextReply(), parts.count == 3,
                              case .string(let kind) = parts[0], kind == "message", case .string(let text) = parts[2],
                              let event = LiveEvent.decode(text) else { continue }
                        hub.relayed(event)
                    }
                }
            } catch {
                subscriber.withLock { $0 = nil }
                guard !stopping.load(ordering: .sequentiallyConsistent) else { break }
                degrade("subscribe: \(error)")
                try? await Task.sleep(for: .milliseconds(retryMilliseconds))
                retryMilliseconds = min(retryMilliseconds * 2, ServerDefaults.relayMaxRetryMilliseconds)
            }
        }
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
