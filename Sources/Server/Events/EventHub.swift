// Live events of this instance: derived from what the store committed (every batch of either
// strategy and every new drop pass through here), stock values coalesced per drop, handed to
// this instance's sockets (`SocketRegistry`) and to the Redis relay for the others; events
// relayed from other instances go to the read views and the sockets as they come. Totals and
// buyers' names come with the commit and from the read views: nothing is read from the store.
import Engine
import Foundation
import Synchronization

public final class EventHub: Sendable {
    /// Identifies this instance's events on the shared Redis channel.
    let instanceID = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    /// Where events are delivered on this instance.
    public let sockets: SocketRegistry
    /// The read views: relayed commits move them, and they know buyers' names.
    private let reads: DropReads?
    private let coalescer: Mutex<StockCoalescer>
    private let flushScheduled = Atomic<Bool>(false)
    /// The closure sits in a struct: a Mutex of a bare function type reabstracts the closure on
    /// every `withLock` (read, then written back), so each event wrapped it in two more thunks
    /// until a flash-sale with Redis overflowed the stack (SIGSEGV after ~60,000 events).
    private struct Forward: Sendable { let publish: @Sendable (LiveEvent) -> Void }
    private let remote = Mutex<Forward?>(nil)
    /// The newest stock version seen per drop, from this instance or relayed.
    private let latestStock = Mutex<[DropID: Int64]>([:])
    private let started = ContinuousClock.now

    init(stockEventsPerSecond: Double, sockets: SocketRegistry = SocketRegistry(), reads: DropReads? = nil) {
        coalescer = Mutex(StockCoalescer(intervalSeconds: 1 / max(stockEventsPerSecond, 0.001)))
        self.sockets = sockets
        self.reads = reads
    }

    /// Where this instance's events go besides its own sockets (the Redis relay).
    func forward(to publish: @escaping @Sendable (LiveEvent) -> Void) {
        remote.withLock { $0 = Forward(publish: publish) }
    }

    // MARK: - Sources

    func dropCreated(_ record: DropRecord) {
        var event = LiveEvent(type: .dropCreated, dropId: record.id)
        event.drop = DropResponse(DropSnapshot(drop: record, recentPurchases: []))
        event.committedAt = APITime.string(record.createdAt)
        emit(event)
    }

    /// Everything one committed batch changed: purchases for the feed, each owner's private
    /// news, and the drop's new stock figures.
    func batchCommitted(_ batch: ClaimBatch, _ outcome: BatchOutcome, totalStock: Int) {
        let committedAt = APITime.string(outcome.committedAt)
        for result in outcome.results {
            guard case .purchased(let purchase, let replayed) = result, !replayed else { continue }
            var feed = LiveEvent(type: .purchaseCompleted, dropId: batch.dropID)
            feed.purchase = .init(
                purchaseId: purchase.id, buyerName: reads?.buyerName(of: purchase.userID),
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

    /// An event another instance published.
    func relayed(_ event: LiveEvent) {
        guard event.origin != instanceID, Self.plausible(event, now: Date()) else { return }
        reads?.relayed(event)
        guard isCurrent(event, record: true) else { return }
        sockets.deliver(event)
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

    // MARK: - Coalescing

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
        sockets.deliver(event)
        remote.withLock { $0 }?.publish(event)
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
                    sockets.deliver(event)
                    remote.withLock { $0 }?.publish(event)
                }
            }
            flushScheduled.store(false, ordering: .releasing)
            // An event held between the last check and the store above needs a flusher.
            if coalescer.withLock({ !$0.held.isEmpty }) { scheduleFlush() }
        }
    }
}
