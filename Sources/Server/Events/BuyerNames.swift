// Buyers' display names for the purchase feed, written to the users table once per buyer.
import Engine
import Logging
import Synchronization

final class BuyerNames: Sendable {
    private let store: any DropStore
    private let known = Mutex<Set<UserID>>([])

    init(store: any DropStore) {
        self.store = store
    }

    /// Once per buyer while the set is small (it is forgotten past `knownBuyersLimit`). A
    /// failure costs the feed a name, never the purchase, which has committed.
    func remember(_ caller: Caller, logger: Logger) async {
        let isNew = known.withLock { known in
            if known.count >= ServerDefaults.knownBuyersLimit { known.removeAll(keepingCapacity: true) }
            return known.insert(caller.userID).inserted
        }
        guard isNew else { return }
        do {
            try await store.upsertUser(caller.userID, name: caller.name, role: caller.role.rawValue)
        } catch {
            known.withLock { _ = $0.remove(caller.userID) }
            logger.warning("buyer name not recorded", metadata: ["user": "\(caller.userID)", "error": "\(error)"])
        }
    }
}
