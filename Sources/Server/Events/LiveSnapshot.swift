// The first message on a live socket, and what the Redis relay resynchronizes subscribers
// with: every open drop as it stands.
import Engine
import Foundation

struct LiveSnapshot: Sendable {
    let inventory: any Inventory

    /// Every drop (at most the first `maxPageLimit` × 10), or nil when the database fails.
    func make() async -> LiveEvent? {
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
