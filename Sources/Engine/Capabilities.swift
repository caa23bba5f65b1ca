// What only some strategies can do, stated as protocols an `Inventory` offers or not
// (`Inventory.leases`, `Inventory.batches`), so no caller casts to a concrete engine.

/// Ownership of drops across instances: a strategy whose memory of a drop is trusted only
/// under the drop's lease (the actor engine).
public protocol DropLeases: Sendable {
    /// Who this engine is in the store's leases (the lease's length among it).
    var owner: LeaseOwner { get }
    /// Whether this engine decides the drop's claims now (holds its lease).
    func runs(_ drop: DropID) -> Bool
    /// Forgets which instance owned the drop, so the next claim asks the store again.
    func forgetOwner(of drop: DropID)
    /// Gives the drop's lease up once its claims in flight committed.
    func handBack(_ drop: DropID) async
    func leaseStatistics() -> LeaseStatistics
}

/// Figures of a strategy that gathers claims into batches and queues them in memory.
public protocol BatchFigures: Sendable {
    /// Where the batches' time went since the engine started.
    func batchStatistics() -> BatchStatistics
    /// Claims waiting for a batch across every drop (the queue depth operators watch).
    func queuedClaims() async -> Int
}
