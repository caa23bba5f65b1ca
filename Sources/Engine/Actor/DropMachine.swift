// The heart of the actor strategy, as a value: commands in, next state and effects out. No
// I/O, no clock of its own, no concurrency; the DropActor feeds it and performs its effects.
// It answers from memory whatever needs no write and whose answer it knows to be the store's
// at that instant (DropMachine+Memory), queues the rest, and sends them in batches (group
// commit): at most `maxBatchesInFlight`, the next one (a full one) only once the store holds the
// drop's lock for the last (a full one too), so the store applies them in the order they were
// sent. It also decides when its memory can no longer be trusted and must be reloaded from the
// store.
import DequeModule
import Foundation
import HeapModule

struct DropMachine {
    typealias Ticket = UInt64

    enum Answer: Sendable {
        case reserve(ReserveOutcome)
        case purchase(PurchaseOutcome)
        case cancel(CancelOutcome)
    }

    enum Effect {
        case answer(Ticket, Answer)
        case fail([Ticket], EngineError)
        /// The drop's lease changed hands: this machine has stepped down for good. Forget it;
        /// the next claim asks for the lease again (and learns who owns the drop).
        case stepDown
        /// Send this batch. `asksForLock`: ask the store to say when it holds the drop's lock
        /// (`batchLocked`), so that a full batch may go behind it.
        case commit(ClaimBatch, asksForLock: Bool)
        /// Wake the machine (`tick`) at this instant.
        case armTimer(Date)
        /// Reload the drop from the store, then call `recovered` or `recoveryFailed`.
        case recover
        /// Claims arrived while a batch may be sent: call `flush` after the gather window, so
        /// the claims arriving together travel in one batch.
        case gather
    }

    /// What a request turned into: an answer now, or a place in line.
    enum Admission {
        case answered(Answer)
        case queued(Ticket, [Effect])
        /// The machine stepped down: the claim must go to the drop's owner.
        case refused(EngineError)
    }

    /// The lease this machine runs under: whose it is, its epoch, and until when memory may
    /// trust it (by the machine's clock; see `LeaseOwner.trustedUntil`).
    struct Tenure: Equatable {
        let owner: LeaseOwner
        /// Moved on by every reload (`DropRecovery.epoch`).
        var epoch: Int64
        var trustedUntil: Date
    }

    struct Hold: Equatable {
        var id: ReservationID
        var createdAt: Date
        var expiresAt: Date
    }

    /// How a user's last hold on this drop ended, as this machine saw it happen.
    enum Ended: Equatable {
        case purchased(Purchase)
        case cancelled(Reservation)
        case expired
    }

    /// When a hold is due to be swept: the purchase grace past its `expires_at`.
    struct Deadline: Comparable {
        var sweepAt: Date
        var reservationID: ReservationID
        var userID: UserID
        static func < (a: Deadline, b: Deadline) -> Bool {
            (a.sweepAt, a.reservationID) < (b.sweepAt, b.reservationID)
        }
    }

    struct Waiting {
        var ticket: Ticket
        var item: ClaimItem
        /// True when memory admitted the claim expecting the store to grant it; false when
        /// memory could not know the answer and asks the store. A refusal of a reserve memory
        /// admitted, for a reason memory should have seen, shows that memory was wrong.
        var decidedByMemory: Bool
    }

    /// A batch sent to the store and not yet answered.
    struct InFlight {
        /// The machine's count of batches sent, this one included (`batchLocked` names it).
        var number: Int
        var claims: [Waiting]
        var sentAt: Date
        /// The machine asked the store for word of the lock (`Effect.commit`).
        var asksForLock: Bool
        /// The store holds the drop's lock for it: a batch sent now queues behind it, so the
        /// store applies the two in the order they were sent.
        var locked: Bool
    }

    enum Phase {
        /// Deciding claims and sending batches (`inFlight` holds those not yet answered).
        case running
        /// Reloading from the store, or about to once the batches in flight have landed (the
        /// reload must come after them). Requests wait, undecided, for the fresh memory.
        case recovering
        /// A reload failed: memory is stale, and the next request starts another reload.
        case stale
        /// The lease changed hands (a batch or a reload was fenced): nothing more is decided
        /// here. The batches still in flight land first; then the machine steps down.
        case deposed(EngineError)
    }

    private(set) var drop: DropRecord
    private(set) var holds: [UserID: Hold] = [:]
    /// Users whose hold memory knows is past its `expires_at` and the purchase grace after it,
    /// but the store has not swept yet. Its unit is free (the next batch expires it before
    /// anything else), so memory counts it as such and never answers "sold out" or "already
    /// holding" on its account. Within the grace a hold stays live for everything but a
    /// purchase, which the store judges by when it was asked (so memory asks the store).
    private(set) var overdue: Set<UserID> = []
    private(set) var purchases: [UserID: [Purchase]] = [:]
    private var purchaseCount = 0
    /// Only what this machine saw since its last load, and only the latest
    /// `maxEndedRemembered` of it: older endings are the store's to tell (a request about one
    /// asks the store, which gives the same answer). Memory per drop is then bounded by its
    /// stock and this, not by every buyer who ever held a unit.
    private(set) var ended: [UserID: Ended] = [:]
    /// Users in the order their ending was remembered (some may since hold again: skipped).
    private var endedOrder: Deque<UserID> = []
    let maxEndedRemembered: Int
    private var deadlines = Heap<Deadline>()
    private var armedAt: Date?
    /// Reserves waiting for the next batch, in arrival order.
    private var queue: Deque<Waiting> = []
    /// Purchases and cancels waiting for the next batch. They go into it before any reserve
    /// (the batch function applies them first anyway), so a buyer settling a live hold never
    /// waits behind a line of reserves, however long; there are at most as many as live holds.
    private var settling: Deque<Waiting> = []
    var reservesPending: Set<UserID> = []
    /// Reserves whose answer depends on claims in flight: the last free units are promised
    /// to reserves not yet committed (they may fail), or the user's own first reserve is in
    /// flight. They are decided again after each commit, from memory.
    var parked: Deque<Waiting> = []
    /// Requests that came while memory was being reloaded; decided once it is fresh.
    private var undecided: Deque<Waiting> = []
    /// The timer found overdue holds: the next batch may be a sweep alone.
    private var sweepDue = false
    private(set) var phase: Phase = .running
    /// Batches sent and not yet answered, oldest first: the store answers them in this order.
    private(set) var inFlight: Deque<InFlight> = []
    /// A gather window is open: `flush` will start a batch.
    private(set) var isGathering = false
    private var batchesSent = 0
    /// When the last batch landed: a batch sent behind another starts its work then.
    private var lastLandedAt: Date?
    /// Nil: no lease (a machine alone on its store, as in unit tests); memory is always trusted.
    private(set) var tenure: Tenure?
    private var nextTicket: Ticket = 1
    let maxBatchClaims: Int
    /// Batches one drop may have in flight: 1 waits for each verdict before the next batch
    /// goes; 2 sends a full batch behind a full first once the store holds the lock for the
    /// first, so the database starts it the moment the first commits instead of waiting on
    /// this machine.
    let maxBatchesInFlight: Int
    /// Claims of any kind waiting at most: memory's backstop.
    let maxQueuedClaims: Int
    /// The longest a new reserve should expect to wait in line (nil: only `maxQueuedClaims`
    /// bounds the line). With it, reserves past what the store takes in that time are refused
    /// `overloaded` at once; purchases and cancels never are.
    let queueLatencyTarget: TimeInterval?
    /// The store's purchase grace: memory sweeps a hold this long past its `expires_at` (at
    /// most half its TTL, `Reservation.graceEnds`).
    let purchaseGraceMilliseconds: Int
    /// Claims per second the store has been taking (each saturated batch's claims over the
    /// time from sending it to its commit).
    private(set) var claimRate = SmoothedRate()

    init(
        recovery: DropRecovery, now: Date, tenure: Tenure? = nil, maxBatchClaims: Int = Defaults.maxBatchClaims,
        maxQueuedClaims: Int = Defaults.maxQueuedClaimsPerDrop,
        maxEndedRemembered: Int = Defaults.maxEndedHoldsRemembered, queueLatencyTarget: TimeInterval? = nil,
        purchaseGraceMilliseconds: Int = Defaults.purchaseGraceMilliseconds,
        maxBatchesInFlight: Int = Defaults.maxBatchesInFlight
    ) {
        precondition(maxBatchClaims > 0 && maxQueuedClaims > 0 && maxEndedRemembered > 0 && maxBatchesInFlight > 0)
        self.maxBatchesInFlight = maxBatchesInFlight
        precondition(queueLatencyTarget.map { $0 > 0 } ?? true)
        precondition(purchaseGraceMilliseconds >= 0)
        self.purchaseGraceMilliseconds = purchaseGraceMilliseconds
        self.queueLatencyTarget = queueLatencyTarget
        self.maxEndedRemembered = maxEndedRemembered
        drop = recovery.drop
        self.tenure = tenure
        self.maxBatchClaims = maxBatchClaims
        self.maxQueuedClaims = maxQueuedClaims
        load(recovery)
    }

    var dropID: DropID { drop.id }
    var isCommitting: Bool { !inFlight.isEmpty }
    var queuedCount: Int { queue.count + settling.count + parked.count + undecided.count }
    /// How many claims may wait before a new reserve is refused `overloaded`: what the store
    /// takes within the latency target at its measured rate, never under one batch, never
    /// over the backstop.
    var reserveQueueBound: Int {
        guard let queueLatencyTarget, claimRate.perSecond > 0 else { return maxQueuedClaims }
        return min(maxQueuedClaims, max(maxBatchClaims, claimRate.count(within: queueLatencyTarget)))
    }
    /// Memory answers only while the lease is provably this machine's: past `trustedUntil`
    /// another instance may have taken the drop over, so every claim goes to the store, whose
    /// epoch check either confirms the lease (and renews it) or fences the batch.
    func memoryTrusted(now: Date) -> Bool { tenure.map { now < $0.trustedUntil } ?? true }
    var isDeposed: Bool {
        if case .deposed = phase { true } else { false }
    }
    var activeHoldCount: Int { holds.count }
    /// Units free by the committed state, overdue holds counted as free.
    var committedFreeUnits: Int { drop.spec.totalStock - drop.sold - drop.reserved + overdue.count }
    /// Units a new reserve could still take, counting those promised to reserves in flight.
    var availableForNewClaims: Int { committedFreeUnits - reservesPending.count }

    // MARK: - Requests

    mutating func reserve(user: UserID, now: Date) -> Admission {
        admit(ClaimItem(.reserve, user: user), now: now)
    }

    /// `askedAt`: when the buyer asked (nil: at the batch's clock reading).
    mutating func purchase(user: UserID, idempotencyKey: String?, askedAt: Date? = nil, now: Date) -> Admission {
        admit(ClaimItem(.purchase, user: user, idempotencyKey: idempotencyKey, askedAt: askedAt), now: now)
    }

    mutating func cancel(user: UserID, now: Date) -> Admission {
        admit(ClaimItem(.cancel, user: user), now: now)
    }

    private mutating func admit(_ item: ClaimItem, now: Date) -> Admission {
        switch phase {
        case .deposed(let error):
            return .refused(error)
        case .recovering, .stale:
            guard hasRoom(for: item) else { return .answered(Self.overloaded(item.kind)) }
            let ticket = takeTicket()
            undecided.append(Waiting(ticket: ticket, item: item, decidedByMemory: false))
            guard case .stale = phase else { return .queued(ticket, []) }
            phase = .recovering
            return .queued(ticket, [.recover])
        case .running:
            noteOverdue(now: now)
            let decision = decide(item, now: now)
            if case .answer(let answer) = decision { return .answered(answer) }
            // A full line turns away only the claims that would join it.
            guard hasRoom(for: item) else { return .answered(Self.overloaded(item.kind)) }
            let ticket = takeTicket()
            _ = place(ticket, item, decision)
            if case .wait = decision { return .queued(ticket, []) }
            return .queued(ticket, inFlight.isEmpty ? gatherIfReady() : startBatchIfReady(now: now))
        }
    }

    /// Whether a batch may be sent now: none in flight; or fewer than the bound, the store
    /// holding the lock for the last one sent (a batch sent before that could take the lock
    /// first), and a full batch waiting. A smaller one waits for the batch in flight to land
    /// and leaves with what joins it meanwhile: the database, busy anyway, commits more per
    /// transaction, and a batch of 1,000 callers keeps to cohorts that alternate rather than
    /// merging into one that leaves the database idle while it comes back.
    private var maySendBatch: Bool {
        guard case .running = phase, inFlight.count < maxBatchesInFlight else { return false }
        guard let last = inFlight.last else { return true }
        return last.locked && queue.count + settling.count >= maxBatchClaims
    }

    /// Claims wait at a drop with no batch in flight: open a gather window, unless one is open.
    private mutating func gatherIfReady() -> [Effect] {
        guard !isGathering, maySendBatch, !queue.isEmpty || !settling.isEmpty else { return [] }
        isGathering = true
        return [.gather]
    }

    /// The store holds the drop's lock for batch `number` (a late word about a batch that
    /// has landed since changes nothing): a full batch waiting may go behind it.
    mutating func batchLocked(_ number: Int, now: Date) -> [Effect] {
        guard let index = inFlight.firstIndex(where: { $0.number == number }) else { return [] }
        precondition(inFlight[index].asksForLock, "word of a lock the machine did not ask for")
        inFlight[index].locked = true
        return startBatchIfReady(now: now)
    }

    /// A reserve joins the line only within the latency bound. A purchase or cancel of a hold
    /// memory knows always joins (there is at most one per hold, and refusing it could cost
    /// the buyer the unit); one memory must ask the store about (a key it does not know, an
    /// ending it did not see) joins within memory's backstop, however many reserves wait.
    private func hasRoom(for item: ClaimItem) -> Bool {
        switch item.kind {
        case .reserve: queuedCount < reserveQueueBound
        case .purchase, .cancel: holds[item.userID] != nil || settling.count + undecided.count < maxQueuedClaims
        }
    }

    /// The timer fired (or a simulation stepped the clock): sweep if a hold is due.
    mutating func tick(now: Date) -> [Effect] {
        armedAt = nil
        switch phase {
        case .recovering, .deposed: return []
        case .stale:
            // Holds may be due and only a fresh memory can sweep them: reload now.
            phase = .recovering
            return [.recover]
        case .running: break
        }
        noteOverdue(now: now)
        // A batch in flight sweeps too; if its clock reading came before a deadline, the
        // retry timer armed after it commits brings the machine back here.
        if !overdue.isEmpty, !isCommitting { sweepDue = true }
        let parked = decideParked(now: now)
        // An open gather window sends the claims when it closes.
        return parked + (isGathering ? [] : startBatchIfReady(now: now)) + rearm(now: now)
    }

    /// The gather window closed: the claims queued meanwhile form one batch.
    mutating func flush(now: Date) -> [Effect] {
        guard isGathering else { return [] }
        isGathering = false
        return startBatchIfReady(now: now)
    }

    /// The engine renewed the lease with a request sent at `sentAt`.
    mutating func leaseRenewed(sentAt: Date) {
        guard let owner = tenure?.owner else { return }
        tenure!.trustedUntil = max(tenure!.trustedUntil, owner.trustedUntil(sentAt: sentAt))
    }

    /// The epoch to renew, while memory still trusts the lease. A lease memory stopped
    /// trusting is left to the next batch, whose epoch check confirms it or fences it.
    func renewableEpoch(now: Date) -> Int64? {
        guard let tenure, !isDeposed, memoryTrusted(now: now) else { return nil }
        return tenure.epoch
    }

    /// What the store said of a renewal of `epoch` sent at `sentAt`; returns whether the lease
    /// was lost. A lease in neither set was busy (its batch in flight renews it), and a renewal
    /// of an epoch a reload has moved past since says nothing of the current one: nothing
    /// changes.
    mutating func renewal(_ renewal: LeaseRenewal, epoch: Int64, sentAt: Date) -> Bool {
        guard epoch == tenure?.epoch else { return false }
        if renewal.renewed.contains(drop.id) {
            leaseRenewed(sentAt: sentAt)
        } else if renewal.lost.contains(drop.id) {
            leaseLost()
            return true
        }
        return false
    }

    /// The engine's renewal found the lease gone. Memory stops answering at once; the next
    /// batch (every claim now makes one) is fenced, and that steps the machine down.
    mutating func leaseLost() {
        tenure?.trustedUntil = .distantPast
    }

    // MARK: - Store results

    mutating func committed(_ outcome: BatchOutcome, now: Date) -> [Effect] {
        guard let landed = inFlight.popFirst() else {
            preconditionFailure("a batch committed while none was in flight")
        }
        let batch = landed.claims
        precondition(outcome.results.count == batch.count, "one result per claim")
        // A batch sent behind another started its work when that one landed.
        let startedAt = max(landed.sentAt, lastLandedAt ?? landed.sentAt)
        lastLandedAt = now
        drop.sold = outcome.sold
        drop.reserved = outcome.reserved
        precondition(drop.sold + drop.reserved <= drop.spec.totalStock, "store reported oversold counters")
        let (answers, disagreed) = applyVerdicts(outcome, to: batch)
        guard case .running = phase else {
            // An earlier batch failed or was fenced: these verdicts are the store's, so their
            // callers hear them; memory is about to be reloaded or dropped.
            return answers + afterLastLanding()
        }
        leaseRenewed(sentAt: landed.sentAt)
        let seconds = now.timeIntervalSince(startedAt)
        // Only a batch that was full, or while which claims queued, shows what the store
        // takes; a half-empty one shows how fast claims came.
        let saturated = batch.count >= maxBatchClaims || !queue.isEmpty || !settling.isEmpty || !inFlight.isEmpty
        if seconds > 0, !batch.isEmpty, saturated { claimRate.add(Double(batch.count) / seconds) }
        // Memory must now equal the store: the same live holds, the same purchases. Anything
        // else means someone else wrote this drop, or memory has a bug; either way, reload
        // (once the batches still in flight have landed).
        if disagreed || holds.count != drop.reserved || purchaseCount != drop.sold {
            phase = .recovering
            return answers + afterLastLanding()
        }
        noteOverdue(now: now)
        let parked = decideParked(now: now)
        return answers + parked + startBatchIfReady(now: now) + rearm(now: now)
    }

    /// The store's verdicts on a batch, applied to memory in the store's order, and whether
    /// one contradicted memory.
    private mutating func applyVerdicts(_ outcome: BatchOutcome, to batch: [Waiting]) -> ([Effect], Bool) {
        for expired in outcome.expired where holds[expired.userID]?.id == expired.reservationID {
            endHold(of: expired.userID, .expired)
        }
        // The store applies a batch's purchases and cancels before its reserves (steps 2 and
        // 3 of stockdrop_apply_batch): memory reads the verdicts in the same order, or a user's
        // reserve and cancel in one batch would look like a disagreement.
        var answers = [Answer?](repeating: nil, count: batch.count)
        var disagreed = false
        for reserves in [false, true] {
            for index in batch.indices where (batch[index].item.kind == .reserve) == reserves {
                let (answer, disagrees) = apply(outcome.results[index], to: batch[index])
                disagreed = disagreed || disagrees
                answers[index] = answer
            }
        }
        return (zip(batch, answers).map { .answer($0.ticket, $1!) }, disagreed)
    }

    /// What a machine that stopped running does once no batch is in flight any more: reload,
    /// or step down.
    private func afterLastLanding() -> [Effect] {
        guard inFlight.isEmpty else { return [] }
        switch phase {
        case .recovering: return [.recover]
        case .deposed: return [.stepDown]
        case .running, .stale: return []
        }
    }

    /// The batch failed as a whole: each of its callers hears the error (which says whether
    /// the batch may have committed), and memory is reloaded before anything else is decided,
    /// once the batches sent after it have landed (they may have committed).
    mutating func failed(_ error: EngineError) -> [Effect] {
        guard let landed = inFlight.popFirst() else {
            preconditionFailure("a batch failed while none was in flight")
        }
        lastLandedAt = nil
        for waiting in landed.claims where waiting.item.kind == .reserve { reservesPending.remove(waiting.item.userID) }
        let failure: [Effect] = [.fail(landed.claims.map(\.ticket), error)]
        if case .deposed = phase { return failure + afterLastLanding() }
        if error.code == .fenced { return failure + stepDown(error) }
        phase = .recovering
        return failure + afterLastLanding()
    }

    /// Fresh memory: every request still waiting is decided again from it.
    mutating func recovered(_ recovery: DropRecovery, now: Date) -> [Effect] {
        guard case .recovering = phase, inFlight.isEmpty else {
            preconditionFailure("recovered while no reload was in flight")
        }
        if let epoch = recovery.epoch { tenure?.epoch = epoch }
        drop = recovery.drop
        load(recovery)
        phase = .running
        isGathering = false
        let waiting = (Array(queue) + Array(settling) + Array(parked) + Array(undecided)).sorted {
            $0.ticket < $1.ticket
        }
        queue.removeAll()
        settling.removeAll()
        parked.removeAll()
        undecided.removeAll()
        noteOverdue(now: now)
        let effects = waiting.compactMap { place($0.ticket, $0.item, decide($0.item, now: now)) }
        if !overdue.isEmpty { sweepDue = true }
        return effects + startBatchIfReady(now: now) + rearm(now: now)
    }

    /// The reload failed (the store is down): everyone waiting hears it, and the next request
    /// tries again.
    mutating func recoveryFailed(_ error: EngineError) -> [Effect] {
        guard case .recovering = phase, inFlight.isEmpty else {
            preconditionFailure("a reload failed while none was in flight")
        }
        if error.code == .fenced { return stepDown(error) }
        let tickets = takeEveryWaitingTicket()
        phase = .stale
        return tickets.isEmpty ? [] : [.fail(tickets, error)]
    }

    // MARK: - Private

    /// Every caller waiting in a line here (not the batch in flight), the lines emptied: they
    /// are about to hear an error, and nothing they asked for is still to be done.
    private mutating func takeEveryWaitingTicket() -> [Ticket] {
        let tickets = (Array(queue) + Array(settling) + Array(parked) + Array(undecided)).map(\.ticket)
        queue.removeAll()
        settling.removeAll()
        parked.removeAll()
        undecided.removeAll()
        reservesPending.removeAll()
        sweepDue = false
        isGathering = false
        return tickets
    }

    /// The lease is another instance's: every caller still waiting here hears the error
    /// (the store applied nothing of a fenced batch), which names the owner when known. The
    /// batches still in flight land first (each is fenced too, or committed before the lease
    /// moved: their callers hear the store), then the machine steps down.
    mutating func stepDown(_ error: EngineError) -> [Effect] {
        let tickets = takeEveryWaitingTicket()
        tenure?.trustedUntil = .distantPast
        phase = .deposed(error)
        return (tickets.isEmpty ? [] : [.fail(tickets, error)]) + afterLastLanding()
    }

    private mutating func takeTicket() -> Ticket {
        defer { nextTicket += 1 }
        return nextTicket
    }

    mutating func append(_ ticket: Ticket, _ item: ClaimItem, decidedByMemory: Bool) {
        let waiting = Waiting(ticket: ticket, item: item, decidedByMemory: decidedByMemory)
        if item.kind == .reserve {
            queue.append(waiting)
            reservesPending.insert(item.userID)
        } else {
            settling.append(waiting)
        }
    }

    private mutating func startBatchIfReady(now: Date) -> [Effect] {
        guard maySendBatch, !queue.isEmpty || !settling.isEmpty || sweepDue else { return [] }
        let settlingCount = min(settling.count, maxBatchClaims)
        let reserveCount = min(queue.count, maxBatchClaims - settlingCount)
        let batch = Array(settling.prefix(settlingCount)) + Array(queue.prefix(reserveCount))
        settling.removeFirst(settlingCount)
        queue.removeFirst(reserveCount)
        sweepDue = false
        batchesSent += 1
        // Only a full batch asks for the lock's word: a full batch waiting is what may go behind
        // another, and one that waits behind a smaller batch (the first of a burst) costs it
        // that batch's round trip once, after which the batches are full. A smaller batch, the
        // common case over HTTP, goes as the batch function alone: no lock statement, no
        // word to take on the actor.
        let asksForLock = maxBatchesInFlight > 1 && batch.count >= maxBatchClaims
        inFlight.append(
            InFlight(number: batchesSent, claims: batch, sentAt: now, asksForLock: asksForLock, locked: false))
        let lease = tenure.map { BatchLease(epoch: $0.epoch, milliseconds: $0.owner.leaseMilliseconds) }
        let items = batch.map { $0.item.vouched(vouches(for: $0, now: now)) }
        return [.commit(ClaimBatch(dropID: drop.id, items: items, lease: lease), asksForLock: asksForLock)]
    }

    /// Whether a reserve goes out vouched for, so the store skips its per-user check (see
    /// `ClaimItem.vouched`): only one memory admitted, under a lease memory trusts (the epoch
    /// fences the batch if the drop changed hands, and every reload moves it on, so a batch
    /// whose answer was lost cannot land after newer ones), for a user with no hold here at
    /// all (an overdue hold the store's clock may not have reached yet would make the vouch
    /// wrong and fail the batch) and under the limit. Memory holds every live hold and
    /// purchase of the drop. A batch in flight changes them only for its own users: a user
    /// with a reserve in flight has none queued (`reservesPending` parks it), and one whose
    /// purchase, cancel or sweep is in flight still has a hold in memory, so is not vouched
    /// for; and should that batch fail, the store is as memory was. (Should its verdicts show
    /// memory wrong, the batch sent behind it carries vouches of that memory: the reload comes
    /// one batch later than with one in flight. docs/design.md §3.3.)
    private func vouches(for waiting: Waiting, now: Date) -> Bool {
        let user = waiting.item.userID
        return waiting.item.kind == .reserve && waiting.decidedByMemory && tenure != nil && memoryTrusted(now: now)
            && holds[user] == nil && (purchases[user]?.count ?? 0) < drop.spec.perUserLimit
    }

    /// Moves holds whose deadline has passed from the deadline heap to `overdue`.
    mutating func noteOverdue(now: Date) {
        while let first = deadlines.min, first.sweepAt <= now {
            deadlines.removeMin()
            if holds[first.userID]?.id == first.reservationID { overdue.insert(first.userID) }
        }
    }

    private mutating func rearm(now: Date) -> [Effect] {
        dropStaleDeadlines()
        // Overdue holds the store did not sweep yet (its clock may trail ours by a hair) are
        // retried shortly; never sooner than that, so the machine does not spin.
        var next = deadlines.min?.sweepAt
        if !overdue.isEmpty { next = now }
        guard let next else { return [] }
        let at = max(next, now.addingTimeInterval(Double(Defaults.sweepRetryMilliseconds) / 1000))
        if let armedAt, armedAt <= at { return [] }
        armedAt = at
        return [.armTimer(at)]
    }

    /// Deadlines of holds that were purchased, cancelled or expired leave lazily.
    private mutating func dropStaleDeadlines() {
        while let first = deadlines.min, holds[first.userID]?.id != first.reservationID {
            deadlines.removeMin()
        }
    }

    private func sweepAt(_ hold: Reservation) -> Date {
        Reservation.graceEnds(
            createdAt: hold.createdAt, expiresAt: hold.expiresAt, capMilliseconds: purchaseGraceMilliseconds)
    }

    mutating func setHold(_ reservation: Reservation, of user: UserID) {
        overdue.remove(user)
        holds[user] = Hold(id: reservation.id, createdAt: reservation.createdAt, expiresAt: reservation.expiresAt)
        deadlines.insert(Deadline(sweepAt: sweepAt(reservation), reservationID: reservation.id, userID: user))
        ended[user] = nil
    }

    mutating func endHold(of user: UserID, _ how: Ended) {
        holds[user] = nil
        overdue.remove(user)
        rememberEnded(user, how)
    }

    mutating func rememberEnded(_ user: UserID, _ how: Ended) {
        if ended.updateValue(how, forKey: user) == nil { endedOrder.append(user) }
        while ended.count > maxEndedRemembered, let oldest = endedOrder.popFirst() { ended[oldest] = nil }
        // Users who held again left stale places behind: drop them before they add up.
        if endedOrder.count > 2 * maxEndedRemembered {
            var seen = Set<UserID>()
            endedOrder = Deque(endedOrder.reversed().filter { ended[$0] != nil && seen.insert($0).inserted }.reversed())
        }
    }

    mutating func remember(_ purchase: Purchase) {
        guard !(purchases[purchase.userID]?.contains { $0.id == purchase.id } ?? false) else { return }
        purchases[purchase.userID, default: []].append(purchase)
        purchaseCount += 1
    }

    private mutating func load(_ recovery: DropRecovery) {
        holds = [:]
        holds.reserveCapacity(recovery.activeHolds.count)
        overdue = []
        ended = [:]
        endedOrder = []
        reservesPending = []
        sweepDue = false
        var entries: [Deadline] = []
        for hold in recovery.activeHolds {
            holds[hold.userID] = Hold(id: hold.id, createdAt: hold.createdAt, expiresAt: hold.expiresAt)
            entries.append(Deadline(sweepAt: sweepAt(hold), reservationID: hold.id, userID: hold.userID))
        }
        deadlines = Heap(entries)
        armedAt = nil
        purchases = Dictionary(grouping: recovery.purchases, by: \.userID)
        purchaseCount = recovery.purchases.count
    }

    func reservation(_ hold: Hold, user: UserID) -> Reservation {
        Reservation(
            id: hold.id, dropID: drop.id, userID: user, status: .active, createdAt: hold.createdAt,
            expiresAt: hold.expiresAt)
    }

    private static func overloaded(_ kind: ClaimItem.Kind) -> Answer {
        switch kind {
        case .reserve: .reserve(.overloaded)
        case .purchase: .purchase(.overloaded)
        case .cancel: .cancel(.overloaded)
        }
    }
}
