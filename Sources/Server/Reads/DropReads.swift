// Reads of drops from memory, never from a state that was not committed. Each drop's view is
// the figures of one committed instant (`committedAt`, the database's clock), kept current by
// the commits this instance makes (the owner's batches, as each commits) and by those other
// instances relay (Redis carries events, never state), and read again from the database once
// no commit or read has confirmed it for `maxAge`: a lost event costs freshness, never
// correctness. A read waits for at most one database read per drop however many requests
// ask at once, and the hot path (a drop whose commits keep it confirmed) takes no lock but a
// mutex around a dictionary lookup.
import Engine
import Foundation
import NIOCore
import Synchronization

public final class DropReads: Sendable {
    /// A drop as of one committed instant, and when this instance last knew it was current.
    public struct View: Sendable, Equatable {
        public var snapshot: DropSnapshot
        public var committedAt: Date
        var confirmedAt: ContinuousClock.Instant
        /// The JSON of `GET /v1/drops/{id}` for this view, encoded by the first read of it:
        /// JSONEncoder per read cost a fifth of the read path.
        var body: ByteBuffer? = nil

        /// The commit instant in microseconds: orders a drop's states across instances.
        public var version: Int64 { Self.version(committedAt) }
        /// A weak validator of what a read shows: the same while the figures and the latest
        /// purchases are (a re-read from the database, or a reserve undone by a cancel, keeps
        /// it), different after any commit that changes them. Weak, because `committedAt` in
        /// the body may differ between two answers it validates.
        public var etag: String {
            let drop = snapshot.drop
            let purchases = snapshot.recentPurchases.map { String($0.purchaseID) }.joined(separator: ".")
            return "W/\"\(drop.id)-\(drop.sold)-\(drop.reserved)-\(purchases)\""
        }

        static func version(_ date: Date) -> Int64 { date.epochMicroseconds }
    }

    /// A page of the listing: which drops, in order, and when it was read.
    private struct Page {
        var ids: [DropID]
        var readAt: ContinuousClock.Instant
    }
    private struct PageKey: Hashable {
        var after: DropID
        var limit: Int
    }

    private struct State {
        var views: [DropID: View] = [:]
        /// Purchases relayed before the stock event of their batch: shown with it, not before.
        var pendingPurchases: [DropID: [(version: Int64, purchase: RecentPurchase)]] = [:]
        var pages: [PageKey: Page] = [:]
        var loading: [DropID: Task<View?, any Error>] = [:]
    }

    private let store: any DropStore
    public let maxAge: Duration
    private let state = Mutex(State())
    /// Buyers' display names for the purchase feed, noted from their request before their
    /// purchase commits (the one place they are kept; past `knownBuyersLimit` it starts over).
    private let names = Mutex<[UserID: String]>([:])

    public init(store: any DropStore, maxAge: Duration = .milliseconds(ServerDefaults.dropReadMaxAgeMilliseconds)) {
        self.store = store
        self.maxAge = maxAge
    }

    // MARK: - Reads

    /// The drop as of its latest commit this instance confirmed within `maxAge`, else read
    /// now; nil for an unknown drop.
    public func view(of drop: DropID) async throws -> View? {
        let now = ContinuousClock.now
        let (fresh, task) = state.withLock { state -> (View?, Task<View?, any Error>?) in
            if let view = state.views[drop], now - view.confirmedAt < maxAge { return (view, nil) }
            if let loading = state.loading[drop] { return (nil, loading) }
            let store = self.store
            let task = Task {
                let started = ContinuousClock.now
                return try await store.snapshot(of: drop).map { self.stored($0, readFrom: started) }
            }
            state.loading[drop] = task
            return (nil, task)
        }
        if let fresh { return fresh }
        guard let task else { return nil }
        defer { state.withLock { if $0.loading[drop] == task { $0.loading[drop] = nil } } }
        return try await task.value
    }

    /// A page of drops in id order, each as fresh as `view(of:)` promises; read from the
    /// database when `fresh` (the relay's resynchronization after events were lost).
    public func page(after cursor: DropID?, limit: Int, fresh: Bool = false) async throws -> [View] {
        let key = PageKey(after: cursor ?? 0, limit: limit)
        let now = ContinuousClock.now
        let cached = state.withLock { state -> [View]? in
            guard !fresh, let page = state.pages[key], now - page.readAt < maxAge else { return nil }
            var views: [View] = []
            for id in page.ids {
                guard let view = state.views[id], now - view.confirmedAt < maxAge else { return nil }
                views.append(view)
            }
            return views
        }
        if let cached { return cached }
        let snapshots = try await store.listDrops(after: cursor, limit: limit)
        let views = snapshots.map { stored($0, readFrom: now) }
        state.withLock { state in
            if state.pages.count >= ServerDefaults.dropReadPages { state.pages.removeAll(keepingCapacity: true) }
            state.pages[key] = Page(ids: views.map(\.snapshot.drop.id), readAt: now)
        }
        return views
    }

    /// Keeps a snapshot read from the database unless a newer commit got there first; the
    /// view to answer with. It is confirmed as of `started`, when the read was asked, not when
    /// it returned: under load a read takes long, and a view confirmed at its answer could be
    /// served up to that long past `maxAge` of what it said (a fresh clone's test run saw 8 of
    /// 4,101 reads older than the bound; this is one way that happens).
    private func stored(_ snapshot: DropSnapshot, readFrom started: ContinuousClock.Instant) -> View {
        let read = View(
            snapshot: snapshot, committedAt: snapshot.committedAt ?? Date(), confirmedAt: started)
        return state.withLock { state in
            if let current = state.views[snapshot.drop.id], current.version > read.version {
                state.views[snapshot.drop.id]?.confirmedAt = max(current.confirmedAt, read.confirmedAt)
                return state.views[snapshot.drop.id] ?? read
            }
            if state.views.count >= ServerDefaults.dropReadViews { state.views.removeAll(keepingCapacity: true) }
            state.views[snapshot.drop.id] = read
            return read
        }
    }

    // MARK: - Buyers' names

    func noteName(_ name: String, of user: UserID) {
        names.withLock { names in
            if names.count >= ServerDefaults.knownBuyersLimit { names.removeAll(keepingCapacity: true) }
            names[user] = name
        }
    }

    func buyerName(of user: UserID) -> String? { names.withLock { $0[user] } }

    // MARK: - Commits

    /// A batch this instance committed: its figures and purchases, as of its stamp.
    public func committed(
        drop: DropID, sold: Int, reserved: Int, committedAt: Date, purchases: [RecentPurchase]
    ) {
        let version = View.version(committedAt)
        state.withLock { state in
            guard var view = state.views[drop], version > view.version else { return }
            Self.apply(&view, sold: sold, reserved: reserved, committedAt: committedAt, purchases: purchases)
            state.views[drop] = view
        }
    }

    /// A commit another instance relayed: a stock event moves the figures (and the purchases
    /// that waited for it); a purchase waits for its batch's stock event.
    func relayed(_ event: LiveEvent) {
        guard let drop = event.dropId else { return }
        switch event.type {
        case .stockChanged:
            guard let sold = event.soldCount, let reserved = event.reservedStock, let version = event.version else {
                return
            }
            let committedAt = Date(timeIntervalSince1970: Double(version) / 1_000_000)
            state.withLock { state in
                let pending = state.pendingPurchases[drop] ?? []
                let due = pending.filter { $0.version <= version }.map(\.purchase)
                state.pendingPurchases[drop] = pending.filter { $0.version > version }
                guard var view = state.views[drop], version > view.version else { return }
                Self.apply(&view, sold: sold, reserved: reserved, committedAt: committedAt, purchases: due)
                state.views[drop] = view
            }
        case .purchaseCompleted:
            guard let purchase = event.purchase, let at = event.committedAt.flatMap(RFC3339.date),
                let created = RFC3339.date(purchase.createdAt)
            else { return }
            let recent = RecentPurchase(
                purchaseID: purchase.purchaseId, userID: 0, buyerName: purchase.buyerName, createdAt: created)
            state.withLock { state in
                guard state.views[drop] != nil else { return }
                var pending = state.pendingPurchases[drop] ?? []
                if pending.count < Defaults.recentPurchases * 4 { pending.append((View.version(at), recent)) }
                state.pendingPurchases[drop] = pending
            }
        default:
            return
        }
    }

    /// Keeps the encoded answer of a view, unless the drop moved on meanwhile.
    func remember(body: ByteBuffer, of drop: DropID, version: Int64) {
        state.withLock { state in
            guard state.views[drop]?.version == version else { return }
            state.views[drop]?.body = body
        }
    }

    private static func apply(
        _ view: inout View, sold: Int, reserved: Int, committedAt: Date, purchases: [RecentPurchase]
    ) {
        view.body = nil
        view.snapshot.drop.sold = sold
        view.snapshot.drop.reserved = reserved
        view.snapshot.committedAt = committedAt
        view.committedAt = committedAt
        view.confirmedAt = .now
        // The newest first, by id, as the database lists them.
        if !purchases.isEmpty {
            let known = Set(view.snapshot.recentPurchases.map(\.purchaseID))
            view.snapshot.recentPurchases = Array(
                (view.snapshot.recentPurchases + purchases.filter { !known.contains($0.purchaseID) })
                    .sorted { $0.purchaseID > $1.purchaseID }
                    .prefix(Defaults.recentPurchases))
        }
    }
}
