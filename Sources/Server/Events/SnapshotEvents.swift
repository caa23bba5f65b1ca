// The first message on a live socket, and what the Redis relay resynchronizes subscribers
// with: every open drop as it stands, through the same committed read views as
// `GET /v1/drops`. Sockets get it from a cache refreshed at most once a
// `liveSnapshotMaxAgeMilliseconds` (one listing at a time, however many sockets wait for it);
// the relay always asks for a fresh one.
import Engine
import Foundation

final class SnapshotEvents: Sendable {
    let reads: DropReads
    private let cache: SnapshotCache

    init(reads: DropReads, maxAge: Duration = .milliseconds(ServerDefaults.liveSnapshotMaxAgeMilliseconds)) {
        self.reads = reads
        cache = SnapshotCache(maxAge: maxAge)
    }

    /// A snapshot at most the cache's age old, or nil when the database fails.
    func cached() async -> LiveEvent? {
        let reads = self.reads
        return await cache.value { await Self.make(reads, fresh: false) }
    }

    /// A snapshot read from the database now (and kept for the sockets that come next): what
    /// the relay resynchronizes with after events were lost.
    func make() async -> LiveEvent? {
        let fresh = await Self.make(reads, fresh: true)
        if let fresh { await cache.store(fresh) }
        return fresh
    }

    /// Every drop (at most the first `maxPageLimit` × 10), or nil when the database fails.
    private static func make(_ reads: DropReads, fresh: Bool) async -> LiveEvent? {
        var drops: [DropResponse] = []
        var cursor: DropID?
        var latest: Date?
        for _ in 0..<10 {
            guard let page = try? await reads.page(after: cursor, limit: ServerDefaults.maxPageLimit, fresh: fresh)
            else {
                return nil
            }
            drops += page.map { DropResponse($0.snapshot) }
            latest = page.map(\.committedAt).reduce(latest) { max($0 ?? $1, $1) }
            guard page.count == ServerDefaults.maxPageLimit, let last = page.last else { break }
            cursor = last.snapshot.drop.id
        }
        var event = LiveEvent(type: .snapshot)
        event.drops = drops
        event.committedAt = APITime.string(latest ?? Date())
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
