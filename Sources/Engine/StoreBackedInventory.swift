// What both strategies answer straight from the store: drops, snapshots, a user's holds.
// Only claims differ between them.

/// Told of every batch a strategy committed (sweeps included), after its callers have their
/// answers: live events are derived here, never on the commit path.
public typealias CommitObserver = @Sendable (ClaimBatch, BatchOutcome) -> Void
protocol StoreBackedInventory: Inventory {
    var store: any DropStore { get }
}

extension StoreBackedInventory {
    public func createDrop(_ spec: DropSpec) async throws -> DropRecord {
        try await store.createDrop(Self.validated(spec))
    }

    public func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot] {
        try await store.listDrops(after: cursor, limit: limit)
    }

    public func snapshot(of drop: DropID) async throws -> DropSnapshot? {
        try await store.snapshot(of: drop)
    }

    public func reservations(of user: UserID) async throws -> [Reservation] {
        try await store.reservations(of: user)
    }

    public func liveHold(of user: UserID, on drop: DropID) async throws -> Reservation? {
        try await store.liveHold(of: user, on: drop)
    }
}
