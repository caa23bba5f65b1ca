// The baseline, kept on purpose: the seed's strategy. Every request is its own transaction
// that takes the drop row's lock (`SELECT … FOR UPDATE` inside stockdrop_apply_batch, a
// batch of one) over a fixed pool of connections; a periodic sweeper expires overdue holds.
// Same operations, same outcomes, same SQL as the actor strategy: only the batching differs.
import Foundation
import Synchronization

public final class RowLockEngine: StoreBackedInventory {
    public let strategy = Strategy.rowlock
    public let store: any DropStore
    private let sweeper: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let accepting = Atomic<Bool>(true)
    private let onCommit: CommitObserver
    private let clock: any WallClock

    /// `sweepInterval: nil` disables the sweeper (simulations sweep through requests).
    public init(
        store: any DropStore, clock: any WallClock = SystemClock(),
        sweepInterval: TimeInterval? = Double(Defaults.sweepIntervalMilliseconds) / 1000,
        onCommit: @escaping CommitObserver = { _, _ in }
    ) {
        self.store = store
        self.onCommit = onCommit
        self.clock = clock
        if let sweepInterval {
            sweeper.withLock {
                // The first pass runs at start, beside the first requests: holds a stopped
                // process left overdue go without waiting a whole interval (a drop whose dead
                // owner's lease is still live is swept on a later pass).
                $0 = Task { [store] in
                    while !Task.isCancelled {
                        try? await Self.sweep(store, onCommit: onCommit)
                        do { try await clock.sleep(until: clock.now().addingTimeInterval(sweepInterval)) } catch {
                            return
                        }
                    }
                }
            }
        }
    }

    /// Expires overdue holds on every drop that has some and no live lease (an actor instance
    /// sweeps its own drops), one transaction per drop.
    static func sweep(_ store: any DropStore, onCommit: CommitObserver) async throws {
        for drop in try await store.dropsWithOverdueHolds() {
            let sweep = ClaimBatch(dropID: drop, items: [])
            guard let outcome = try? await store.apply(sweep) else { continue }
            onCommit(sweep, outcome)
        }
    }

    /// Every drop is decided here: a request takes the drop row's lock itself.
    public func route(_ drop: DropID) async throws -> DropRoute { .local(Claims(engine: self, drop: drop)) }
    public var leases: (any DropLeases)? { nil }
    public var batches: (any BatchFigures)? { nil }

    private struct Claims: DropClaims {
        let engine: RowLockEngine
        let drop: DropID
        func reserve(user: UserID) async throws -> ReserveOutcome { try await engine.reserve(drop: drop, user: user) }
        func purchase(user: UserID, idempotencyKey: String?, askedAt: Date?) async throws -> PurchaseOutcome {
            try await engine.purchase(drop: drop, user: user, idempotencyKey: idempotencyKey, askedAt: askedAt)
        }
        func cancel(user: UserID) async throws -> CancelOutcome { try await engine.cancel(drop: drop, user: user) }
    }

    public func reserve(drop: DropID, user: UserID) async throws -> ReserveOutcome {
        let result = try await one(ClaimItem(.reserve, user: user), on: drop)
        let startsAt = result == .rejected(.notStarted) ? try await store.snapshot(of: drop)?.drop.spec.startsAt : nil
        return try Self.expect(ReserveOutcome(result, holding: nil, startsAt: startsAt), from: result, to: "a reserve")
    }

    /// Asked when called (or when the server read it): a hold that fell due while the request
    /// waited for a connection or the drop's lock is still bought within the purchase grace.
    public func purchase(
        drop: DropID, user: UserID, idempotencyKey: String?, askedAt: Date?
    ) async throws -> PurchaseOutcome {
        let item = ClaimItem(.purchase, user: user, idempotencyKey: idempotencyKey, askedAt: askedAt ?? clock.now())
        let result = try await one(item, on: drop)
        return try Self.expect(PurchaseOutcome(result), from: result, to: "a purchase")
    }

    public func cancel(drop: DropID, user: UserID) async throws -> CancelOutcome {
        let result = try await one(ClaimItem(.cancel, user: user), on: drop)
        return try Self.expect(CancelOutcome(result), from: result, to: "a cancel")
    }

    /// A verdict that does not fit the claim came from a broken store after it committed.
    private static func expect<Outcome>(
        _ outcome: Outcome?, from result: ClaimResult, to claim: String
    ) throws -> Outcome {
        guard let outcome else { throw EngineError(.outcomeUnknown, "the store answered \(result) to \(claim)") }
        return outcome
    }

    public func shutdown() async {
        accepting.store(false, ordering: .sequentiallyConsistent)
        sweeper.withLock { $0?.cancel() }
    }

    private func one(_ item: ClaimItem, on drop: DropID) async throws -> ClaimResult {
        guard accepting.load(ordering: .relaxed) else {
            throw EngineError(.shuttingDown, "the engine is shutting down")
        }
        do {
            let batch = ClaimBatch(dropID: drop, items: [item])
            let outcome = try await store.apply(batch)
            defer { onCommit(batch, outcome) }
            return outcome.results[0]
        } catch {
            throw DropActor.engineError(error, .outcomeUnknown)
        }
    }
}
