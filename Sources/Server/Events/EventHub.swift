// Live events of this instance: derived from what the store committed (every batch of either
// strategy and every new drop pass through it), coalesced per drop, delivered to this
// instance's sockets and handed to the Redis relay for the others; events relayed from other
// instances are delivered here as they come. The committing task only appends to a queue: one
// delivery task encodes each event once and hands it to the sockets it concerns (every socket
// for public events, the owner's sockets, found by index, for private ones).
import DequeModule
import Engine
import Foundation
import Synchronization

public final class EventHub: Sendable {
    /// Identifies this instance's events on the shared Redis channel.
    let instanceID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    private let outboxCapacity: Int
    private let limits: SocketLimits
    private let subscribers = Mutex(Subscribers())
    private let queue = Mutex(DeliveryQueue())
    private let droppedFrames = Atomic<Int>(0)
    private let refusedSockets = Atomic<Int>(0)
    /// The newest stock frame delivered per drop, and the drops created lately: what a socket
    /// gets after a snapshot that may be older than its subscription (a cached one, or one read
    /// before the events queued ahead of it).
    private let lastStock = Mutex<[DropID: LiveFrame]>([:])
    private let recentDrops = Mutex<Deque<(at: ContinuousClock.Instant, frame: LiveFrame)>>([])
    private let coalescer: Mutex<StockCoalescer>
    private let flushScheduled = Atomic<Bool>(false)
    private let totals = Mutex<[DropID: Int]>([:])
    private let names = Mutex<[UserID: String]>([:])
    /// The closure sits in a struct: a Mutex of a bare function type reabstracts the closure on
    /// every `withLock` (read, then written back), so each event wrapped it in two more thunks
    /// until a flash-sale with Redis overflowed the stack (SIGSEGV after ~60,000 events).
    private struct Forward: Sendable { let publish: @Sendable (LiveEvent) -> Void }
    private let remote = Mutex<Forward?>(nil)
    private let reads = Mutex<DropReads?>(nil)
    /// The newest stock version seen per drop, from this instance or relayed.
    private let latestStock = Mutex<[DropID: Int64]>([:])
    private let started = ContinuousClock.now

    init(
        stockEventsPerSecond: Double, outboxCapacity: Int = ServerDefaults.socketOutboxEvents,
        limits: SocketLimits = SocketLimits()
    ) {
        coalescer = Mutex(StockCoalescer(intervalSeconds: 1 / max(stockEventsPerSecond, 0.001)))
        self.outboxCapacity = outboxCapacity
        self.limits = limits
    }

    /// Where this instance's events go besides its own sockets (the Redis relay).
    func forward(to publish: @escaping @Sendable (LiveEvent) -> Void) {
        remote.withLock { $0 = Forward(publish: publish) }
    }

    var subscriberCount: Int { subscribers.withLock { $0.all.count } }
    /// Feed frames a slow socket's full outbox dropped, and events the hub's own full queue
    /// dropped, since start.
    var droppedFrameCount: Int { droppedFrames.load(ordering: .relaxed) }
    var refusedSocketCount: Int { refusedSockets.load(ordering: .relaxed) }

    // MARK: - Sources

    /// A buyer's display name, for the purchase feed (known before their purchase commits).
    func noteName(_ name: String, of user: UserID) {
        names.withLock { names in
            if names.count >= ServerDefaults.knownBuyersLimit { names.removeAll(keepingCapacity: true) }
            names[user] = name
        }
    }

    func name(of user: UserID) -> String? { names.withLock { $0[user] } }

    /// Where relayed commits also go: the drop read views of this instance.
    func feedReads(_ reads: DropReads) {
        self.reads.withLock { $0 = reads }
    }

    func dropCreated(_ record: DropRecord) {
        totals.withLock { $0[record.id] = record.spec.totalStock }
        var event = LiveEvent(type: .dropCreated, dropId: record.id)
        event.drop = DropResponse(DropSnapshot(drop: record, recentPurchases: []))
        event.committedAt = APITime.string(record.createdAt)
        emit(event)
    }

    /// Everything one committed batch changed: purchases for the feed, each owner's private
    /// news, and the drop's new stock figures.
    func batchCommitted(_ batch: ClaimBatch, _ outcome: BatchOutcome, totalStock: Int) {
        totals.withLock { $0[batch.dropID] = totalStock }
        let committedAt = APITime.string(outcome.committedAt)
        for result in outcome.results {
            guard case .purchased(let purchase, let replayed) = result, !replayed else { continue }
            var feed = LiveEvent(type: .purchaseCompleted, dropId: batch.dropID)
            feed.purchase = .init(
                purchaseId: purchase.id, buyerName: names.withLock { $0[purchase.userID] },
                createdAt: APITime.string(purchase.createdAt))
            feed.committedAt = committedAt
            emit(feed)
            var owner = LiveEvent(type: .reservationPurchased, dropId: batch.dropID)
            owner.userId = purchase.userID
            owner.reservationId = purchase.reservationID
            owner.purchaseId = purchase.id
            owner.committedAt = committedAt
            emit(owner)
        }
        for hold in outcome.expired {
            var owner = LiveEvent(type: .reservationExpired, dropId: batch.dropID)
            owner.userId = hold.userID
            owner.reservationId = hold.reservationID
            owner.committedAt = committedAt
            emit(owner)
        }
        emit(
            .stock(
                drop: batch.dropID, total: totalStock, sold: outcome.sold, reserved: outcome.reserved,
                committedAt: outcome.committedAt))
    }

    func knownTotal(of drop: DropID) -> Int? { totals.withLock { $0[drop] } }

    /// An event another instance published.
    func relayed(_ event: LiveEvent) {
        guard event.origin != instanceID, Self.plausible(event, now: Date()) else { return }
        reads.withLock { $0 }?.relayed(event)
        guard isCurrent(event, record: true) else { return }
        enqueue(event)
    }

    /// A relayed stock value stamped far in the future would shadow every real one of its
    /// drop (`isCurrent` keeps the newest version) on every instance: whoever can publish to
    /// the channel could freeze a drop's stock. Commit times are the database's clock, so a
    /// real one is never much ahead of this instance's.
    static func plausible(_ event: LiveEvent, now: Date) -> Bool {
        guard event.type == .stockChanged else { return true }
        guard let version = event.version, let total = event.totalStock, let available = event.availableStock,
            total >= 0, (0...total).contains(available)
        else { return false }
        let limit =
            (now.timeIntervalSince1970 + Double(ServerDefaults.relayedFutureToleranceMilliseconds) / 1000) * 1_000_000
        return Double(version) <= limit
    }

    /// False for a stock value older than one already seen for its drop (commits of the rowlock
    /// strategy, or of another instance, can arrive out of order). `record` makes it the newest.
    private func isCurrent(_ event: LiveEvent, record: Bool) -> Bool {
        guard event.type == .stockChanged, let drop = event.dropId, let version = event.version else { return true }
        return latestStock.withLock { latest in
            if let seen = latest[drop], seen > version || (seen == version && record) { return false }
            if record { latest[drop] = version }
            return true
        }
    }

    // MARK: - Subscribers

    /// A socket's outbox, or why it may not have one: past the per-user cap (close code 1008,
    /// policy violation) or the instance's total (1013, try again later).
    func subscribe(user: UserID) -> Result<SocketOutbox, SocketRefusal> {
        let outbox = SocketOutbox(userID: user, capacity: outboxCapacity)
        let refusal = subscribers.withLock { table -> SocketRefusal? in
            if table.all.count >= limits.total { return .instanceFull }
            if table.byUser[user, default: [:]].count >= limits.perUser { return .userLimit }
            table.all[ObjectIdentifier(outbox)] = outbox
            table.byUser[user, default: [:]][ObjectIdentifier(outbox)] = outbox
            return nil
        }
        if let refusal {
            refusedSockets.add(1, ordering: .relaxed)
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
        enqueue(snapshot)
    }

    // MARK: - Delivery

    private var nowSeconds: Double { (ContinuousClock.now - started).seconds }

    private func emit(_ event: LiveEvent) {
        var event = event
        event.origin = instanceID
        if event.type == .stockChanged {
            guard isCurrent(event, record: true) else { return }
            guard let now = coalescer.withLock({ $0.offer(event, now: nowSeconds) }) else {
                scheduleFlush()
                return
            }
            event = now
        }
        enqueue(event)
        remote.withLock { $0 }?.publish(event)
    }

    /// Appends for the delivery task, starting one if none runs. Bounded: past the limit a
    /// queued stock value goes first (a later one, or a socket's catch-up, replaces it), else
    /// the oldest event; either is counted.
    private func enqueue(_ event: LiveEvent) {
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

    /// Sends held stock values when their interval ends; one flusher at a time.
    private func scheduleFlush() {
        guard flushScheduled.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        Task {
            while true {
                let next = coalescer.withLock { $0.nextDue() }
                guard let next else { break }
                let wait = next - nowSeconds
                if wait > 0 { try? await Task.sleep(for: .microseconds(Int64(wait * 1e6) + 1)) }
                for event in coalescer.withLock({ $0.due(now: nowSeconds) }) where isCurrent(event, record: false) {
                    enqueue(event)
                    remote.withLock { $0 }?.publish(event)
                }
            }
            flushScheduled.store(false, ordering: .releasing)
            // An event held between the last check and the store above needs a flusher.
            if coalescer.withLock({ !$0.held.isEmpty }) { scheduleFlush() }
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
    case userLimit, instanceFull
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
