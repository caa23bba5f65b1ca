// One actor per drop: serializes every claim on the drop by feeding its DropMachine, and
// performs the machine's effects (commit a batch, answer callers, arm the expiry timer).
import Foundation

actor DropActor: ClaimDecider {
    nonisolated let dropID: DropID
    private var machine: DropMachine
    private let store: any DropStore
    private let clock: any WallClock
    private let drivesTimer: Bool
    private let gatherWindow: Duration
    private var waiters: [DropMachine.Ticket: CheckedContinuation<DropMachine.Answer, any Error>] = [:]
    private var timer: Task<Void, Never>?
    private var timerAt: Date?
    /// The store calls of the batches in flight, by the machine's batch number, and of a reload.
    private var batchTasks: [Int: Task<Void, Never>] = [:]
    private var recoveryTask: Task<Void, Never>?
    /// Batches sent so far: the machine numbers its batches the same way.
    private var batchesSent = 0
    /// The batch whose answer the machine takes next, and answers that came back before it:
    /// the machine takes them in the order it sent them.
    private var nextToLand = 1
    private var landedEarly: [Int: Landing] = [:]
    private let leaseEvents: LeaseEvents
    private let timings: BatchTimings
    /// When the store returned the last batch: the database is idle for this drop from then
    /// until the next batch starts (the gap the bench reports), unless one was already sent.
    private var lastBatchReturned: ContinuousClock.Instant?
    private let onCommit: CommitObserver
    /// Called once when the machine steps down, so the engine forgets this actor.
    private let onStepDown: @Sendable (DropActor) -> Void

    init(
        recovery: DropRecovery, tenure: DropMachine.Tenure?, store: any DropStore, clock: any WallClock,
        drivesTimer: Bool, gatherWindow: Duration, maxBatchClaims: Int, maxQueuedClaims: Int,
        maxBatchesInFlight: Int = Defaults.maxBatchesInFlight,
        queueLatencyTarget: TimeInterval? = nil, leaseEvents: LeaseEvents, timings: BatchTimings,
        onCommit: @escaping CommitObserver,
        onStepDown: @escaping @Sendable (DropActor) -> Void
    ) {
        self.onCommit = onCommit
        dropID = recovery.drop.id
        self.store = store
        self.gatherWindow = gatherWindow
        self.clock = clock
        self.drivesTimer = drivesTimer
        self.leaseEvents = leaseEvents
        self.timings = timings
        self.onStepDown = onStepDown
        machine = DropMachine(
            recovery: recovery, now: clock.now(), tenure: tenure, maxBatchClaims: maxBatchClaims,
            maxQueuedClaims: maxQueuedClaims, queueLatencyTarget: queueLatencyTarget,
            purchaseGraceMilliseconds: store.purchaseGraceMilliseconds, maxBatchesInFlight: maxBatchesInFlight)
    }

    /// Arms the timer for holds loaded at activation (and sweeps overdue ones at once).
    func start() {
        perform(machine.tick(now: clock.now()))
    }

    /// A claim as it reaches the actor, before the machine decides it.
    enum Claim: Sendable {
        case reserve(UserID)
        case purchase(UserID, idempotencyKey: String?, askedAt: Date)
        case cancel(UserID)

        /// Its answer when no drop has this id.
        var unknownDrop: DropMachine.Answer {
            switch self {
            case .reserve: .reserve(.unknownDrop)
            case .purchase: .purchase(.unknownDrop)
            case .cancel: .cancel(.unknownDrop)
            }
        }
    }

    nonisolated var claimClock: any WallClock { clock }

    func decide(_ claim: Claim) async throws -> DropMachine.Answer {
        try await admit(admission(claim))
    }

    /// The claims that waited for this actor's activation (`ActivationLine`), decided in the
    /// order they came, in one turn of the actor, the line opened in the same step: a claim
    /// that finds it open waits for this turn to end, so none that came later goes before
    /// them. Their callers hear back as any claim's do.
    func admitLine(_ line: ActivationLine) {
        for (claim, continuation) in line.takeAllAndOpen(onto: self) {
            deliver(admission(claim), to: continuation)
        }
    }

    private func admission(_ claim: Claim) -> DropMachine.Admission {
        let now = clock.now()
        switch claim {
        case .reserve(let user):
            return machine.reserve(user: user, now: now)
        case .purchase(let user, let idempotencyKey, let askedAt):
            return machine.purchase(user: user, idempotencyKey: idempotencyKey, askedAt: askedAt, now: now)
        case .cancel(let user):
            return machine.cancel(user: user, now: now)
        }
    }

    /// Sweeps due holds now (timers call it; so do simulations that step a ManualClock).
    func tick() {
        perform(machine.tick(now: clock.now()))
    }

    /// Waits until no batch is in flight and nothing is queued.
    func drain() async {
        while true {
            if let task = recoveryTask ?? batchTasks.values.first {
                await task.value
            } else if machine.isGathering {
                flush()
            } else {
                return
            }
        }
    }

    func stopTimer() {
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    /// Claims waiting for a batch (queued or parked), for the server's queue-depth gauge.
    var queuedClaimCount: Int { machine.queuedCount }

    var activeHoldCount: Int { machine.activeHoldCount }

    /// The epoch to renew, while memory still trusts the lease. A lease memory stopped
    /// trusting is left to the next batch, whose epoch check confirms it or fences it.
    var renewableEpoch: Int64? { machine.renewableEpoch(now: clock.now()) }

    /// Returns whether the lease was lost.
    func renewal(_ renewal: LeaseRenewal, epoch: Int64, sentAt: Date) -> Bool {
        machine.renewal(renewal, epoch: epoch, sentAt: sentAt)
    }

    /// Lets the batch in flight and the claims queued commit, then steps down (claims that
    /// reach this actor afterwards are refused, naming no owner). Returns the epoch to release,
    /// or nil when this actor held no lease or had already stepped down.
    func stepDownAfterDraining(_ reason: EngineError) async -> Int64? {
        await drain()
        guard let epoch = machine.tenure?.epoch, !machine.isDeposed else { return nil }
        perform(machine.stepDown(reason))
        return epoch
    }

    var tenureEpoch: Int64? { machine.tenure?.epoch }
    func leaseLost() { machine.leaseLost() }

    // MARK: - Effects

    private func admit(_ admission: DropMachine.Admission) async throws -> DropMachine.Answer {
        switch admission {
        case .answered(let answer):
            return answer
        case .refused(let error):
            throw error
        case .queued:
            return try await withCheckedThrowingContinuation { deliver(admission, to: $0) }
        }
    }

    /// Gives a claim's caller its answer now, or its place among the waiters of the batch
    /// that will decide it.
    private func deliver(
        _ admission: DropMachine.Admission, to continuation: CheckedContinuation<DropMachine.Answer, any Error>
    ) {
        switch admission {
        case .answered(let answer): continuation.resume(returning: answer)
        case .refused(let error): continuation.resume(throwing: error)
        case .queued(let ticket, let effects):
            waiters[ticket] = continuation
            perform(effects)
        }
    }

    private func perform(_ effects: [DropMachine.Effect]) {
        // The next batch goes to the store before the last batch's callers are resumed: the
        // database would otherwise wait while hundreds of continuations are scheduled (0.9 ms
        // a batch of 500 here). The machine's state is final before any effect runs, so the
        // order of its effects is the actor's to choose.
        for effect in effects {
            if case .commit(let batch, let asksForLock) = effect { commit(batch, asksForLock: asksForLock) }
        }
        for effect in effects {
            switch effect {
            case .answer(let ticket, let answer):
                waiters.removeValue(forKey: ticket)?.resume(returning: answer)
            case .fail(let tickets, let error):
                for ticket in tickets { waiters.removeValue(forKey: ticket)?.resume(throwing: error) }
            case .commit:
                break
            case .armTimer(let at):
                arm(at)
            case .recover:
                startRecovery()
            case .gather:
                gather()
            case .stepDown:
                stopTimer()
                onStepDown(self)
            }
        }
    }

    /// A scheduling delay, not domain time: it lets the callers answered by the last batch
    /// come back before the next one starts, so it stays on the real clock.
    private func gather() {
        let window = gatherWindow
        Task {
            if window > .zero { try? await Task.sleep(for: window) } else { await Task.yield() }
            self.flush()
        }
    }

    private func flush() {
        perform(machine.flush(now: clock.now()))
    }

    /// The batch's completion runs at high priority: its callers' answers, and the units it
    /// frees, must not wait behind the new requests that pile onto this actor meanwhile (under
    /// a 50,000-buyer burst the first batch's answers waited 41 ms on the actor at the default
    /// priority, 17–23 ms at high; its callers heard back 200–255 ms after the batch's clock
    /// reading against 75–105 ms). So does the word that the store holds its lock, which lets
    /// the next batch go.
    private func commit(_ batch: ClaimBatch, asksForLock: Bool) {
        let store = self.store
        batchesSent += 1
        let number = batchesSent
        let started = ContinuousClock.now
        // The database waited on this drop only if nothing else was in flight.
        let gap = batchTasks.isEmpty ? lastBatchReturned.map { started - $0 } : nil
        batchTasks[number] = Task(priority: .high) {
            let result: Result<BatchOutcome, any Error>
            do {
                if asksForLock {
                    result = .success(
                        try await store.apply(batch) { Task(priority: .high) { await self.locked(number) } })
                } else {
                    result = .success(try await store.apply(batch))
                }
            } catch {
                result = .failure(error)
            }
            self.landed(
                number, Landing(batch: batch, result: result, started: started, returned: .now, gap: gap))
        }
    }

    private func locked(_ number: Int) {
        perform(machine.batchLocked(number, now: clock.now()))
    }

    /// A batch's store call, as it came back.
    private struct Landing {
        var batch: ClaimBatch
        var result: Result<BatchOutcome, any Error>
        var started: ContinuousClock.Instant
        var returned: ContinuousClock.Instant
        var gap: Duration?
    }

    /// The machine takes the batches' answers in the order it sent them: one that comes
    /// back early waits for those before it.
    private func landed(_ number: Int, _ landing: Landing) {
        batchTasks[number] = nil
        landedEarly[number] = landing
        while let next = landedEarly.removeValue(forKey: nextToLand) {
            nextToLand += 1
            finish(next)
        }
    }

    private func finish(_ landing: Landing) {
        let onActor = ContinuousClock.now
        lastBatchReturned = landing.returned
        defer {
            let ended = ContinuousClock.now
            timings.record(
                claims: landing.batch.items.count, store: landing.returned - landing.started,
                hop: onActor - landing.returned, answer: ended - onActor, gap: landing.gap)
        }
        switch landing.result {
        case .success(let outcome):
            // Observers first (a few microseconds: queue an event, update the read views), so
            // a caller that reads the drop after its answer sees its own commit.
            onCommit(landing.batch, outcome)
            perform(machine.committed(outcome, now: clock.now()))
        case .failure(let error):
            // A store says whether nothing was applied; an error it did not classify leaves
            // the outcome unknown.
            let failure = Self.engineError(error, .outcomeUnknown)
            if failure.code == .fenced { leaseEvents.fencedBatch() }
            perform(machine.failed(failure))
        }
    }

    private func startRecovery() {
        precondition(
            batchTasks.isEmpty && landedEarly.isEmpty && recoveryTask == nil,
            "the machine asked for a reload while a batch or reload was in flight")
        let store = self.store
        let dropID = machine.dropID
        let epoch = machine.tenure?.epoch
        recoveryTask = Task(priority: .high) {
            do {
                if let recovery = try await store.recover(dropID, epoch: epoch) {
                    self.recovered(recovery)
                } else {
                    self.recoveryFailed(EngineError(.storeUnavailable, "drop \(dropID) vanished from the store"))
                }
            } catch {
                self.recoveryFailed(Self.engineError(error, .storeUnavailable))
            }
        }
    }

    private func recovered(_ recovery: DropRecovery) {
        recoveryTask = nil
        perform(machine.recovered(recovery, now: clock.now()))
    }

    private func recoveryFailed(_ error: EngineError) {
        recoveryTask = nil
        perform(machine.recoveryFailed(error))
    }

    private func arm(_ at: Date) {
        guard drivesTimer else { return }
        if let timerAt, timerAt <= at, timer != nil { return }
        timer?.cancel()
        timerAt = at
        let clock = self.clock
        timer = Task {
            do { try await clock.sleep(until: at) } catch { return }
            self.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        timerAt = nil
        tick()
    }

    nonisolated static func engineError(_ error: any Error, _ code: EngineError.Code) -> EngineError {
        if let error = error as? EngineError { return error }
        return EngineError(code, String(describing: error))
    }
}
