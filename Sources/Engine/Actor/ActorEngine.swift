// The actor strategy: a registry that activates one DropActor per drop on first use (loading
// the drop and its ACTIVE holds from the store) and routes every claim to it.
import Foundation
import Synchronization

public final class ActorEngine: StoreBackedInventory {
    public let strategy = Strategy.actor
    public let store: any DropStore
    private let clock: any WallClock
    private let drivesTimers: Bool
    private let gatherWindow: Duration
    private let maxBatchClaims: Int
    private let maxQueuedClaims: Int

    private enum Entry {
        case active(DropActor)
        case activating(Task<DropActor?, any Error>)
    }
    private let registry = Mutex<[DropID: Entry]>([:])
    private let accepting = Atomic<Bool>(true)
    private let sweeper = Mutex<Task<Void, Never>?>(nil)

    /// `drivesTimers: false` leaves expiry sweeps to `tickAll()`, for simulations that step
    /// time; otherwise the engine also sweeps, at start and every `idleSweepInterval`, the
    /// drops whose overdue holds no live actor will expire.
    public init(store: any DropStore, clock: any WallClock = SystemClock(), drivesTimers: Bool = true,
                gatherWindow: Duration = .microseconds(Defaults.batchGatherMicroseconds),
                maxBatchClaims: Int = Defaults.maxBatchClaims, maxQueuedClaims: Int = Defaults.maxQueuedClaimsPerDrop,
                idleSweepInterval: TimeInterval = Double(Defaults.idleSweepMilliseconds) / 1000) {
        self.store = store
        self.clock = clock
        self.drivesTimers = drivesTimers
        self.gatherWindow = gatherWindow
        self.maxBatchClaims = maxBatchClaims
        self.maxQueuedClaims = maxQueuedClaims
        if drivesTimers { startSweeper(every: idleSweepInterval) }
    }

    public func reserve(drop: DropID, user: UserID) async throws -> ReserveOutcome {
        guard let actor = try await actor(for: drop) else { return .unknownDrop }
        return try await actor.reserve(user: user)
    }

    public func purchase(drop: DropID, user: UserID, idempotencyKey: String?) async throws -> PurchaseOutcome {
        guard let actor = try await actor(for: drop) else { return .unknownDrop }
        return try await actor.purchase(user: user, idempotencyKey: idempotencyKey)
    }

    public func cancel(drop: DropID, user: UserID) async throws -> CancelOutcome {
        guard let actor = try await actor(for: drop) else { return .unknownDrop }
        return try await actor.cancel(user: user)
    }

    public func shutdown() async {
        accepting.store(false, ordering: .sequentiallyConsistent)
        // Stopped and awaited first, so no sweep wakes an actor after its timer was stopped.
        let sweep = sweeper.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        sweep?.cancel()
        await sweep?.value
        for actor in activeActors() {
            await actor.drain()
            await actor.stopTimer()
        }
    }

    /// Sweeps every active drop's due holds now (simulations with a ManualClock).
    public func tickAll() async {
        for actor in activeActors() { await actor.tick() }
    }

    /// Waits until every active drop has nothing queued or in flight.
    public func drainAll() async {
        for actor in activeActors() { await actor.drain() }
    }

    /// Forgets a drop's actor, as a crash would; the next claim recovers it from the store.
    /// Its waiting callers (if any) are not answered, like a process that died.
    public func evict(_ drop: DropID) async {
        let removed = registry.withLock { $0.removeValue(forKey: drop) }
        if case .active(let actor) = removed { await actor.stopTimer() }
    }

    /// ACTIVE holds the actor of `drop` keeps in memory (nil when not active).
    public func activeHoldCount(of drop: DropID) async -> Int? {
        guard case .active(let actor) = registry.withLock({ $0[drop] }) else { return nil }
        return await actor.activeHoldCount
    }

    /// Claims waiting for a batch across every active drop (the queue depth operators watch).
    public func queuedClaims() async -> Int {
        var total = 0
        for actor in activeActors() { total += await actor.queuedClaimCount }
        return total
    }

    /// Expires the overdue holds of every drop: a live actor sweeps its own drop; a drop with
    /// none here is swept by a batch of its own, as the rowlock sweeper does, without loading
    /// an actor this instance may never need. Without it a drop nobody touches after a restart
    /// keeps expired holds ACTIVE, and its reads show them as reserved for good. (An actor
    /// activating meanwhile that loaded those holds reloads after its next batch: the
    /// counters then disagree with its holds.)
    public func sweepOverdueDrops() async throws {
        for drop in try await store.dropsWithOverdueHolds() {
            if case .active(let actor) = registry.withLock({ $0[drop] }) {
                await actor.tick()
            } else {
                _ = try await store.apply(ClaimBatch(dropID: drop, items: []))
            }
        }
    }

    private func startSweeper(every interval: TimeInterval) {
        let clock = self.clock
        let task = Task { [weak self] in
            while !Task.isCancelled {
                do {  // a scope, so the engine is not kept alive while the loop sleeps
                    guard let engine = self else { return }
                    try? await engine.sweepOverdueDrops()
                }
                do { try await clock.sleep(until: clock.now().addingTimeInterval(interval)) } catch { return }
            }
        }
        sweeper.withLock { $0 = task }
    }

    // MARK: - Registry

    private func activeActors() -> [DropActor] {
        registry.withLock { entries in
            entries.values.compactMap { if case .active(let actor) = $0 { actor } else { nil } }
        }
    }

    private func actor(for drop: DropID) async throws -> DropActor? {
        guard accepting.load(ordering: .relaxed) else {
            throw EngineError(.shuttingDown, "the engine is shutting down")
        }
        let entry: Entry = registry.withLock { entries in
            if let entry = entries[drop] { return entry }
            let task = Task { try await self.activate(drop) }
            entries[drop] = .activating(task)
            return .activating(task)
        }
        switch entry {
        case .active(let actor): return actor
        case .activating(let task): return try await task.value
        }
    }

    private func activate(_ drop: DropID) async throws -> DropActor? {
        let recovery: DropRecovery?
        do {
            recovery = try await store.recover(drop)
        } catch {
            registry.withLock { _ = $0.removeValue(forKey: drop) }
            throw DropActor.engineError(error, .storeUnavailable)
        }
        guard let recovery else {
            // Unknown now; it may be created later (by another instance), so remember nothing.
            registry.withLock { _ = $0.removeValue(forKey: drop) }
            return nil
        }
        let actor = DropActor(recovery: recovery, store: store, clock: clock, drivesTimer: drivesTimers,
                              gatherWindow: gatherWindow, maxBatchClaims: maxBatchClaims, maxQueuedClaims: maxQueuedClaims)
        registry.withLock { $0[drop] = .active(actor) }
        await actor.start()
        return actor
    }
}
