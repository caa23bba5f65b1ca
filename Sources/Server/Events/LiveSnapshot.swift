// The first message on a live socket, and what the Redis relay resynchronizes subscribers
// with: every open drop as it stands. Sockets get it from a cache refreshed at most once a
// `liveSnapshotMaxAgeMilliseconds` (one listing at a time, however many sockets wait for it);
// the relay always asks for a fresh one.
import Engine
import Foundation

final class LiveSnapshot: Sendable {
    let inventory: any Inventory
    private let cache: SnapshotCache

    init(inventory: any Inventory, maxAge: Duration = .milliseconds(ServerDefaults.liveSnapshotMaxAgeMilliseconds)) {
        self.inventory = inventory
        cache = SnapshotCache(maxAge: maxAge)
    }

    /// A snapshot at most the cache's age old, or nil when the database fails.
    func cached() async -> LiveEvent? {
        let inventory = self.inventory
        return await cache.value { await Self.make(inventory) }
    }

    /// A snapshot read now (and kept for the sockets that come next).
    func make() async -> LiveEvent? {
        let fresh = await Self.make(inventory)
        if let fresh { await cache.store(fresh) }
        return fresh
    }

    /// Every drop (at most the first `maxPageLimit` × 10), or nil when the database fails.
    private static func make(_ inventory: any Inventory) async -> LiveEvent? {
        var drops: [DropResponse] = []
        var cursor: DropID?
        for _ in 0..<10 {
            guard let page = try? await inventory.listDrops(after: cursor, limit: ServerDefaults.maxPageLimit) else {
                return nil
            }
            drops += page.map(DropResponse.init)
            guard page.count == ServerDefaults.maxPageLimit, let last = page.last else { break }
            cursor = last.drop.id
        }
        var event = LiveEvent(type: .snapshot)
        event.drops = drops
        event.committedAt = APITime.string(Date())
        return event
    }
}

/// One value, refreshed by one caller at a time when older than `maxAge`; the others wait for
/// that refresh instead of starting their own.
private actor SnapshotCache {
    let maxAge: Duration
    private var stored: (event: LiveEvent, at: ContinuousClock.Instant)?
    private var refreshing: Task<LiveEvent?, Never>?

    init(maxAge: Duration) { self.maxAge = maxAge }

    func value(refresh: @escaping @Sendable () async -> LiveEvent?) async -> LiveEvent? {
        if let stored, stored.at.duration(to: .now) < maxAge { return stored.event }
        if let refreshing { return await refreshing.value }
        let task = Task { await refresh() }
        refreshing = task
        let event = await task.value
        refreshing = nil
        if let event { stored = (event, .now) }
        return event
    }

    func store(_ event: LiveEvent) { stored = (event, .now) }
}
