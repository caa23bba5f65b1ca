// This instance's live sockets and the delivery of events to them. Whoever has an event
// (the hub, for this instance's commits and those relayed from others) only appends it to a
// queue: one delivery task encodes each event once and hands it to the sockets it concerns
// (every socket for public events, the owner's sockets, found by index, for private ones).
// A new socket is greeted with a snapshot and then the newest stock value of every drop, so
// a snapshot up to a second old is corrected at once.
import DequeModule
import Engine
import Foundation
import Synchronization

public final class SocketRegistry: Sendable {
    private let outboxCapacity: Int
    private let limits: SocketLimits
    private let subscribers = Mutex(Subscribers())
    private let queue = Mutex(DeliveryQueue())
    private let droppedFrames = Atomic<Int>(0)
    private let refusedSockets = Atomic<Int>(0)
    /// Set when the shutdown closed the sockets: a socket opened after it is closed at once.
    private let goingAway = Atomic<Bool>(false)
    /// The newest stock frame delivered per drop, and the drops created lately: what a socket
    /// gets after a snapshot that may be older than its subscription (a cached one, or one read
    /// before the events queued ahead of it).
    private let lastStock = Mutex<[DropID: LiveFrame]>([:])
    private let recentDrops = Mutex<Deque<(at: ContinuousClock.Instant, frame: LiveFrame)>>([])

    init(outboxCapacity: Int = ServerDefaults.socketOutboxEvents, limits: SocketLimits = SocketLimits()) {
        self.outboxCapacity = outboxCapacity
        self.limits = limits
    }

    var subscriberCount: Int { subscribers.withLock { $0.all.count } }
    /// Feed frames a slow socket's full outbox dropped, and events the delivery queue dropped,
    /// since start.
    var droppedFrameCount: Int { droppedFrames.load(ordering: .relaxed) }
    var refusedSocketCount: Int { refusedSockets.load(ordering: .relaxed) }

    // MARK: - Subscribers

    /// A socket's outbox, or why it may not have one: past the per-user cap (close code 1008,
    /// policy violation) or the instance's total (1013, try again later), or the server is
    /// shutting down (1001, going away).
    func subscribe(user: UserID) -> Result<SocketOutbox, SocketRefusal> {
        let outbox = SocketOutbox(userID: user, capacity: outboxCapacity)
        let refusal = subscribers.withLock { table -> SocketRefusal? in
            // Read under the lock `closeAllGoingAway` takes after setting it: a socket is
            // either among those it closes or refused here.
            if goingAway.load(ordering: .relaxed) { return .shuttingDown }
            if table.all.count >= limits.total { return .instanceFull }
            if table.byUser[user, default: [:]].count >= limits.perUser { return .userLimit }
            table.all[ObjectIdentifier(outbox)] = outbox
            table.byUser[user, default: [:]][ObjectIdentifier(outbox)] = outbox
            return nil
        }
        if let refusal {
            if refusal != .shuttingDown { refusedSockets.add(1, ordering: .relaxed) }
            return .failure(refusal)
        }
        return .success(outbox)
    }

    func unsubscribe(_ outbox: SocketOutbox) {
        outbox.close()
        subscribers.withLock { table in
            let id = ObjectIdentifier(outbox)
            guard table.all.removeValue(forKey: id) != nil else { return }
            table.byUser[outbox.userID]?[id] = nil
            if table.byUser[outbox.userID]?.isEmpty == true { table.byUser[outbox.userID] = nil }
        }
    }

    /// The server is shutting down: every socket is closed with 1001 (going away), and this
    /// returns once each has sent its close frame or its socket ended, or after `bound`. Called
    /// before the HTTP server's own graceful shutdown, which would close them with 1000 (normal
    /// closure): a client reconnects after 1001 (to another instance) and not after 1000.
    func closeAllGoingAway(within bound: Duration) async {
        goingAway.store(true, ordering: .relaxed)
        let outboxes = subscribers.withLock { Array($0.all.values) }
        for outbox in outboxes { outbox.closeGoingAway() }
        let deadline = ContinuousClock.now + bound
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let open = subscribers.withLock { $0.all }
            guard outboxes.contains(where: { open[ObjectIdentifier($0)] != nil && $0.awaitsFarewell }) else { return }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// A new socket's start: the (possibly cached) snapshot first, then the newest stock value
    /// of every drop delivered since, so a snapshot up to a second old is corrected at once.
    func greet(_ outbox: SocketOutbox, with snapshot: LiveEvent) {
        greet(outbox, with: LiveFrame(snapshot), catchUp: catchUpFrames())
    }

    /// The snapshot first, keeping what is pending (newer than it may be), then the newest
    /// stock value of every drop and the drops created within the snapshot cache's age.
    private func greet(_ outbox: SocketOutbox, with snapshot: LiveFrame, catchUp: [LiveFrame]) {
        outbox.push(snapshot, initial: true)
        for frame in catchUp { outbox.push(frame) }
    }

    private func catchUpFrames() -> [LiveFrame] {
        let horizon = ContinuousClock.now - .milliseconds(2 * ServerDefaults.liveSnapshotMaxAgeMilliseconds)
        let created = recentDrops.withLock { recent in
            while let first = recent.first, first.at < horizon { recent.removeFirst() }
            return recent.map(\.frame)
        }
        return created + lastStock.withLock { Array($0.values) }
    }

    /// Sends every socket a fresh snapshot (after the relay recovers: events were missed).
    func resynchronize(_ snapshot: LiveEvent) {
        deliver(snapshot)
    }

    // MARK: - Delivery

    /// Appends for the delivery task, starting one if none runs. Bounded: past the limit a
    /// queued stock value goes first (a later one, or a socket's catch-up, replaces it), else
    /// the oldest event; either is counted.
    func deliver(_ event: LiveEvent) {
        let start = queue.withLock { queue -> Bool in
            if queue.events.count >= limits.queuedEvents {
                queue.events.remove(at: queue.events.firstIndex(where: \.isSuperseded) ?? queue.events.startIndex)
                droppedFrames.add(1, ordering: .relaxed)
            }
            queue.events.append(event)
            defer { queue.delivering = true }
            return !queue.delivering
        }
        if start { Task { self.drain() } }
    }

    /// Takes the queue until it is empty; each event is encoded once and pushed to the outboxes
    /// it concerns.
    private func drain() {
        while true {
            let events = queue.withLock { queue -> [LiveEvent] in
                let events = Array(queue.events)
                queue.events.removeAll(keepingCapacity: true)
                if events.isEmpty { queue.delivering = false }
                return events
            }
            guard !events.isEmpty else { return }
            for event in events {
                let frame = LiveFrame(event)
                if event.type == .stockChanged, let drop = event.dropId {
                    lastStock.withLock { $0[drop] = frame }
                }
                if event.type == .dropCreated {
                    recentDrops.withLock { $0.append((.now, frame)) }
                }
                if event.type == .snapshot {
                    // A resynchronizing snapshot was read before the events queued ahead of it
                    // were delivered: it must not erase them, and the catch-up follows it.
                    let catchUp = catchUpFrames()
                    for outbox in subscribers.withLock({ Array($0.all.values) }) {
                        greet(outbox, with: frame, catchUp: catchUp)
                    }
                    continue
                }
                let outboxes = subscribers.withLock { table -> [SocketOutbox] in
                    if event.isPrivate {
                        guard let user = event.userId, let mine = table.byUser[user] else { return [] }
                        return Array(mine.values)
                    }
                    return Array(table.all.values)
                }
                var dropped = 0
                for outbox in outboxes where outbox.push(frame) { dropped += 1 }
                if dropped > 0 { droppedFrames.add(dropped, ordering: .relaxed) }
            }
        }
    }
}

/// How many live sockets an instance keeps open, in all and per user, and how many events its
/// delivery queue holds.
struct SocketLimits: Sendable {
    var total = ServerDefaults.maxLiveSockets
    var perUser = ServerDefaults.maxLiveSocketsPerUser
    var queuedEvents = ServerDefaults.liveQueueEvents
}

enum SocketRefusal: Error, Sendable {
    case userLimit, instanceFull, shuttingDown
}

private struct Subscribers {
    var all: [ObjectIdentifier: SocketOutbox] = [:]
    var byUser: [UserID: [ObjectIdentifier: SocketOutbox]] = [:]
}

private struct DeliveryQueue {
    var events: Deque<LiveEvent> = []
    var delivering = false
}

extension LiveEvent {
    /// A stock value: a later one (or a socket's catch-up) replaces it, so dropping it loses
    /// nothing.
    fileprivate var isSuperseded: Bool { type == .stockChanged }
}
