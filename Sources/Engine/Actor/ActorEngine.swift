// The actor strategy: a registry that activates one DropActor per drop on first use (taking
// the drop's lease and loading the drop and its ACTIVE holds from the store under it) and
// routes every claim to it. A drop whose lease another instance holds is not run here: its
// route names the owner, for the caller to send the claim there.
import Foundation
import Synchronization

public final class ActorEngine: StoreBackedInventory, DropLeases, BatchFigures {
    public let strategy = Strategy.actor
    public let store: any DropStore
    private let clock: any WallClock
    private let drivesTimers: Bool
    private let gatherWindow: Duration
    private let maxBatchClaims: Int
    private let maxQueuedClaims: Int
    private let maxBatchesInFlight: Int
    private let queueLatencyTarget: TimeInterval?
    /// Who this engine is in the store's leases.
    public let owner: LeaseOwner
    private let leaseEvents = LeaseEvents()
    private let timings = BatchTimings()
    private let onCommit: CommitObserver

    private enum Entry {
        case active(DropActor)
        /// The lease is being taken and the drop loaded; claims wait in line, in the order they
        /// came, until the drop's actor exists (or the drop turns out unknown or another's).
        case activating(ActivationLine)
        /// Another instance held a live lease when this engine last asked; asked again after
        /// `until`, so a dead owner's drops are taken over once its lease lapses.
        case ownedElsewhere(owner: String, until: Date)
    }
    private let registry = Mutex<[DropID: Entry]>([:])
    private let accepting = Atomic<Bool>(true)
    /// The loops that sweep overdue drops and renew leases: apart, so a long sweep pass (many
    /// lapsed drops after an owner died) never delays a renewal past the lease.
    private let loops = Mutex<[Task<Void, Never>]>([])

    /// `drivesTimers: false` leaves expiry sweeps to `tickAll()`, for simulations that step
    /// time; otherwise the engine also sweeps, at start and every `idleSweepInterval`, the
    /// drops whose overdue holds no live actor will expire.
    public init(
        store: any DropStore, owner: LeaseOwner = .unique(), clock: any WallClock = SystemClock(),
        drivesTimers: Bool = true,
        gatherWindow: Duration = .microseconds(Defaults.batchGatherMicroseconds),
        maxBatchClaims: Int = Defaults.maxBatchClaims, maxQueuedClaims: Int = Defaults.maxQueuedClaimsPerDrop,
        maxBatchesInFlight: Int = Defaults.maxBatchesInFlight, queueLatencyTarget: TimeInterval? = nil,
        idleSweepInterval: TimeInterval = Double(Defaults.idleSweepMilliseconds) / 1000,
        onCommit: @escaping CommitObserver = { _, _ in }
    ) {
        self.store = store
        self.onCommit = onCommit
        self.owner = owner
        self.clock = clock
        self.drivesTimers = drivesTimers
        self.gatherWindow = gatherWindow
        self.maxBatchClaims = maxBatchClaims
        self.maxQueuedClaims = maxQueuedClaims
        self.maxBatchesInFlight = maxBatchesInFlight
        self.queueLatencyTarget = queueLatencyTarget
        if drivesTimers {
            startLoop(every: idleSweepInterval) { try await $0.sweepOverdueDrops() }
            startLoop(every: Double(owner.leaseMilliseconds) / 3 / 1000) { try await $0.renewLeases() }
        }
    }

    public var leases: (any DropLeases)? { self }
    public var batches: (any BatchFigures)? { self }

    public func reserve(drop: DropID, user: UserID) async throws -> ReserveOutcome {
        guard let claims = try await localClaims(on: drop) else { return .unknownDrop }
        return try await claims.reserve(user: user)
    }

    public func purchase(
        drop: DropID, user: UserID, idempotencyKey: String?, askedAt: Date?
    ) async throws -> PurchaseOutcome {
        let askedAt = askedAt ?? clock.now()
        guard let claims = try await localClaims(on: drop) else { return .unknownDrop }
        return try await claims.purchase(user: user, idempotencyKey: idempotencyKey, askedAt: askedAt)
    }

    public func cancel(drop: DropID, user: UserID) async throws -> CancelOutcome {
        guard let claims = try await localClaims(on: drop) else { return .unknownDrop }
        return try await claims.cancel(user: user)
    }

    public func shutdown() async {
        accepting.store(false, ordering: .sequentiallyConsistent)
        // Stopped and awaited first, so no sweep wakes an actor after its timer was stopped.
        let running = loops.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
        var epochs: [DropID: Int64] = [:]
        for actor in activeActors() {
            await actor.drain()
            await actor.stopTimer()
            // Memory stops answering before the lease is let go.
            await actor.leaseLost()
            epochs[actor.dropID] = await actor.tenureEpoch
        }
        // Others may take these drops over at once rather than after the lease lapses.
        try? await store.releaseLeases(epochs, of: owner)
    }

    /// Whether this engine runs the drop's actor now (holds its lease).
    public func runs(_ drop: DropID) -> Bool {
        if case .active = registry.withLock({ $0[drop] }) { true } else { false }
    }

    /// Forgets which instance owned the drop, so the next claim asks the store again (the
    /// owner said it no longer runs it).
    public func forgetOwner(of drop: DropID) {
        registry.withLock { entries in
            if case .ownedElsewhere = entries[drop] { entries.removeValue(forKey: drop) }
        }
    }

    /// Gives the drop's lease up once its claims in flight have committed, so the instance
    /// its claims keep coming from takes it over (a load balancer hashes the drop there). The
    /// actor steps down first: nothing is answered from its memory afterwards.
    public func handBack(_ drop: DropID) async {
        guard case .active(let actor) = registry.withLock({ $0[drop] }) else { return }
        let reason = EngineError(.notOwner, "drop \(drop) was handed to the instance its claims come from")
        guard let epoch = await actor.stepDownAfterDraining(reason) else { return }
        leaseEvents.handedBack()
        try? await store.releaseLeases([drop: epoch], of: owner)
    }

    /// Where the batches' time went, over every drop since the engine started.
    public func batchStatistics() -> BatchStatistics { timings.statistics }

    public func leaseStatistics() -> LeaseStatistics {
        leaseEvents.statistics(ownedDrops: activeActors().count)
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

    /// Claims waiting for a batch across every active drop, and for a drop's activation (the
    /// queue depth operators watch).
    public func queuedClaims() async -> Int {
        var total = registry.withLock { entries in
            entries.values.reduce(0) { if case .activating(let line) = $1 { $0 + line.waitingCount } else { $0 } }
        }
        for actor in activeActors() { total += await actor.queuedClaimCount }
        return total
    }

    /// Expires the overdue holds of every drop this engine may sweep: a live actor here sweeps
    /// its own drop; a drop whose lease lapsed or was never taken (its owner died, or nobody
    /// touched it since a restart) is swept by a batch without a lease, as the rowlock sweeper
    /// does, which also fences a lapsed owner; a drop another instance holds a live lease on is
    /// its owner's to sweep. Without it a drop nobody touches keeps expired holds ACTIVE, and
    /// its reads show them as reserved for good.
    public func sweepOverdueDrops() async throws {
        for drop in try await store.dropsWithOverdueHolds(sweptBy: owner) {
            if case .active(let actor) = registry.withLock({ $0[drop] }) {
                await actor.tick()
            } else {
                // One drop's failure (an instance took the lease meanwhile and its actor
                // sweeps, or the database refused) must not keep the others unswept.
                let sweep = ClaimBatch(dropID: drop, items: [])
                guard let outcome = try? await store.apply(sweep) else { continue }
                onCommit(sweep, outcome)
            }
        }
    }

    /// Extends the leases of the actors whose memory still trusts them, in one request; an
    /// actor whose lease is gone stops answering from memory at once.
    public func renewLeases() async throws {
        // One actor per drop (the registry is keyed by drop), each with the epoch it renews.
        var renewing: [(actor: DropActor, epoch: Int64)] = []
        for actor in activeActors() {
            guard let epoch = await actor.renewableEpoch else { continue }
            renewing.append((actor, epoch))
        }
        guard !renewing.isEmpty else { return }
        let sentAt = clock.now()
        let renewal = try await store.renewLeases(
            Dictionary(uniqueKeysWithValues: renewing.map { ($0.actor.dropID, $0.epoch) }), for: owner)
        for (actor, epoch) in renewing where await actor.renewal(renewal, epoch: epoch, sentAt: sentAt) {
            leaseEvents.leaseLost()
        }
    }

    private func startLoop(every interval: TimeInterval, _ body: @escaping @Sendable (ActorEngine) async throws -> Void)
    {
        let clock = self.clock
        let task = Task { [weak self] in
            while !Task.isCancelled {
                do {  // a scope, so the engine is not kept alive while the loop sleeps
                    guard let engine = self else { return }
                    try? await body(engine)
                }
                do { try await clock.sleep(until: clock.now().addingTimeInterval(interval)) } catch { return }
            }
        }
        loops.withLock { $0.append(task) }
    }

    // MARK: - Registry

    private func activeActors() -> [DropActor] {
        registry.withLock { entries in
            entries.values.compactMap { if case .active(let actor) = $0 { actor } else { nil } }
        }
    }

    /// The drop's actor here (activated on first use, taking the lease), the instance whose
    /// live lease was found when last asked (asked again a third of a lease later), or unknown.
    /// While the drop is being activated, its line: claims through it keep the order they came
    /// in, and are refused `notOwner` or answered `unknown_drop` if the activation finds the
    /// drop another's or missing.
    public func route(_ drop: DropID) async throws -> DropRoute {
        guard accepting.load(ordering: .relaxed) else {
            throw EngineError(.shuttingDown, "the engine is shutting down")
        }
        let now = clock.now()
        let entry: Entry = registry.withLock { entries in
            if let entry = entries[drop] {
                guard case .ownedElsewhere(_, let until) = entry, until <= now else { return entry }
            }
            let line = ActivationLine(dropID: drop, clock: clock)
            entries[drop] = .activating(line)
            // At high priority, as a batch's completion: under a burst the load's answer would
            // otherwise wait behind every new buyer's task queued meanwhile (~100 ms of them at
            // flash-sale's first instant, with each claim in line).
            Task(priority: .high) { await self.activate(drop, line) }
            return .activating(line)
        }
        switch entry {
        case .active(let actor): return .local(actor)
        case .activating(let line): return .local(line)
        case .ownedElsewhere(let owner, _): return .remote(owner: owner)
        }
    }

    private func activate(_ drop: DropID, _ line: ActivationLine) async {
        let askedAt = clock.now()
        let grant: LeaseGrant?
        do {
            grant = try await store.acquireLease(on: drop, for: owner)
        } catch {
            leaveRegistry(drop, line)
            line.end(.failed(DropActor.engineError(error, .storeUnavailable)))
            return
        }
        switch grant {
        case nil:
            // Unknown now; it may be created later (by another instance), so remember nothing.
            leaveRegistry(drop, line)
            line.end(.unknown)
        case .heldElsewhere(let holder):
            // Asked again after a third of a lease: often enough to take a dead owner's drops
            // over soon after its lease lapses, rarely enough that forwarded claims do not
            // queue on the drop's row lock.
            let until = clock.now().addingTimeInterval(Double(owner.leaseMilliseconds) / 3 / 1000)
            leaveRegistry(drop, line, for: .ownedElsewhere(owner: holder, until: until))
            line.end(.remote(owner: holder))
        case .granted(let recovery, let epoch, let previousOwner):
            // The engine began shutting down while the lease was asked for: no actor starts
            // after `shutdown` drained the others; the lease goes back at once.
            guard accepting.load(ordering: .sequentiallyConsistent) else {
                leaveRegistry(drop, line)
                line.end(.failed(EngineError(.shuttingDown, "the engine is shutting down")))
                try? await store.releaseLeases([drop: epoch], of: owner)
                return
            }
            if previousOwner != nil { leaseEvents.tookOver() }
            let tenure = DropMachine.Tenure(
                owner: owner, epoch: epoch, trustedUntil: owner.trustedUntil(sentAt: askedAt))
            let actor = DropActor(
                recovery: recovery, tenure: tenure, store: store, clock: clock, drivesTimer: drivesTimers,
                gatherWindow: gatherWindow, maxBatchClaims: maxBatchClaims, maxQueuedClaims: maxQueuedClaims,
                maxBatchesInFlight: maxBatchesInFlight, queueLatencyTarget: queueLatencyTarget,
                leaseEvents: leaseEvents, timings: timings, onCommit: onCommit
            ) { [weak self] deposed in self?.forget(deposed) }
            // Named before it starts: a fenced first sweep deposes it, and `forget` must find it.
            line.prepare(actor)
            await actor.start()
            // The claims that came during the load enter first; only then is the actor the
            // registry's, so no claim that came later reaches it before them.
            await line.open(onto: actor)
            let registered = registry.withLock { entries in
                guard case .activating(let current) = entries[drop], current === line else { return false }
                entries[drop] = .active(actor)
                return true
            }
            // Evicted (or stepped down) while its line went in: not this engine's actor.
            if !registered { await actor.stopTimer() }
        }
    }

    /// The activating drop's entry gives way (to `entry`, or to nothing), unless another has
    /// already taken its place.
    private func leaveRegistry(_ drop: DropID, _ line: ActivationLine, for entry: Entry? = nil) {
        registry.withLock { entries in
            guard case .activating(let current) = entries[drop], current === line else { return }
            entries[drop] = entry
        }
    }

    /// A deposed actor leaves the registry (unless a newer one already took its place), also
    /// while the claims of its activation's line are still going in.
    private func forget(_ deposed: DropActor) {
        registry.withLock { entries in
            switch entries[deposed.dropID] {
            case .active(let actor) where actor === deposed:
                entries.removeValue(forKey: deposed.dropID)
            case .activating(let line) where line.actor === deposed:
                entries.removeValue(forKey: deposed.dropID)
            default:
                break
            }
        }
    }
}
