// The heart of the actor strategy, as a value: commands in, next state and effects out. No
// I/O, no clock of its own, no concurrency; the DropActor feeds it and performs its effects.
// It answers from memory whatever needs no write, queues the rest, and keeps at most one
// batch in flight (group commit): claims arriving meanwhile form the next batch.
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
        case commit(ClaimBatch)
        /// Wake the machine (`tick`) at this instant.
        case armTimer(Date)
        /// Reload the drop from the store (`recovered`): memory may be stale.
        case recover
        /// Claims arrived at an idle drop: call `flush` after the gather window, so the
        /// claims arriving together travel in one batch.
        case gather
    }

    /// What a request turned into: an answer now, or a place in the next batch.
    enum Admission {
        case answered(Answer)
        case queued(Ticket, [Effect])
    }

    struct Hold: Equatable {
        var id: ReservationID
        var createdAt: Date
        var expiresAt: Date
    }

    struct Deadline: Comparable {
        var expiresAt: Date
        var reservationID: ReservationID
        var userID: UserID
        static func < (a: Deadline, b: Deadline) -> Bool { (a.expiresAt, a.reservationID) < (b.expiresAt, b.reservationID) }
    }

    struct Waiting {
        var ticket: Ticket
        var item: ClaimItem
    }

    enum Phase { case idle, gathering, committing([Waiting]), recovering }

    private(set) var drop: DropRecord
    private(set) var holds: [UserID: Hold] = [:]
    private(set) var purchases: [UserID: [Purchase]] = [:]
    /// Users whose last hold expired, so a late purchase hears `expired`, not "no reservation".
    private var expiredHolders: Set<UserID> = []
    private var deadlines = Heap<Deadline>()
    private var armedAt: Date?
    private var queue: Deque<Waiting> = []
    private var reservesPending: Set<UserID> = []
    /// Reserves that came while the last free units were promised to reserves not yet
    /// committed. "Sold out" would not be true yet (those claims may fail), so they wait for
    /// the store's verdict and are decided again after each commit, from memory.
    private var parked: Deque<Waiting> = []
    private var sweepWanted = false
    private(set) var phase: Phase = .idle
    private var nextTicket: Ticket = 1
    let maxBatchClaims: Int
    let maxQueuedClaims: Int

    init(recovery: DropRecovery, now: Date, maxBatchClaims: Int = Defaults.maxBatchClaims,
         maxQueuedClaims: Int = Defaults.maxQueuedClaimsPerDrop) {
        precondition(maxBatchClaims > 0 && maxQueuedClaims > 0)
        drop = recovery.drop
        self.maxBatchClaims = maxBatchClaims
        self.maxQueuedClaims = maxQueuedClaims
        load(recovery)
    }

    var dropID: DropID { drop.id }
    var queuedCount: Int { queue.count + parked.count }
    var activeHoldCount: Int { holds.count }
    /// Units a new reserve could still take, counting those promised to reserves in flight.
    var availableForNewClaims: Int { drop.spec.totalStock - drop.sold - drop.reserved - reservesPending.count }

    // MARK: - Requests

    mutating func reserve(user: UserID, now: Date) -> Admission {
        if case .recovering = phase { return enqueue(ClaimItem(.reserve, user: user), now: now) }
        switch decideReserve(user: user, now: now) {
        case .answer(let outcome):
            return .answered(.reserve(outcome))
        case .claim:
            return enqueue(ClaimItem(.reserve, user: user), now: now)
        case .wait:
            guard queue.count + parked.count < maxQueuedClaims else { return .answered(.reserve(.overloaded)) }
            let ticket = nextTicket
            nextTicket += 1
            parked.append(Waiting(ticket: ticket, item: ClaimItem(.reserve, user: user)))
            return .queued(ticket, [])
        }
    }

    private enum ReserveDecision {
        case answer(ReserveOutcome)
        /// A unit is free: the reserve joins the next batch.
        case claim
        /// The last free units are only promised to claims in flight: "sold out" would not be
        /// true yet (those claims may fail), so wait for their verdict.
        case wait
    }

    /// The one place a reserve is decided from memory, for new requests and parked ones alike.
    private func decideReserve(user: UserID, now: Date) -> ReserveDecision {
        if let startsAt = drop.spec.startsAt, startsAt > now { return .answer(.notStarted(until: startsAt)) }
        if let hold = holds[user] { return .answer(.alreadyHolding(reservation(hold, user: user, status: .active))) }
        if reservesPending.contains(user) { return .answer(.alreadyHolding(nil)) }
        if (purchases[user]?.count ?? 0) >= drop.spec.perUserLimit { return .answer(.limitReached) }
        if availableForNewClaims > 0 { return .claim }
        // Sold out only when every unit is committed as held or sold.
        return drop.available <= 0 ? .answer(.soldOut) : .wait
    }

    /// Decides the parked reserves again now that a batch's verdict is in: an answer (sold out
    /// once every unit is committed), a claim for the next batch (a promised unit came back),
    /// or wait on.
    private mutating func decideParked(now: Date) -> [Effect] {
        var effects: [Effect] = []
        var still: Deque<Waiting> = []
        while let waiting = parked.popFirst() {
            switch decideReserve(user: waiting.item.userID, now: now) {
            case .answer(let outcome):
                effects.append(.answer(waiting.ticket, .reserve(outcome)))
            case .claim:
                queue.append(waiting)
                reservesPending.insert(waiting.item.userID)
            case .wait:
                still.append(waiting)
            }
        }
        parked = still
        return effects
    }

    mutating func purchase(user: UserID, idempotencyKey: String?, now: Date) -> Admission {
        if case .recovering = phase {
            return enqueue(ClaimItem(.purchase, user: user, idempotencyKey: idempotencyKey), now: now)
        }
        let bought = purchases[user] ?? []
        if let idempotencyKey, let earlier = bought.last(where: { $0.idempotencyKey == idempotencyKey }) {
            return .answered(.purchase(.purchased(earlier, replayed: true)))
        }
        if holds[user] != nil {
            return enqueue(ClaimItem(.purchase, user: user, idempotencyKey: idempotencyKey), now: now)
        }
        // A retry of a purchase that succeeded: the same purchase again, never a second one.
        if idempotencyKey == nil, let earlier = bought.last { return .answered(.purchase(.purchased(earlier, replayed: true))) }
        if expiredHolders.contains(user) { return .answered(.purchase(.expired)) }
        return .answered(.purchase(.noActiveReservation))
    }

    mutating func cancel(user: UserID, now: Date) -> Admission {
        if case .recovering = phase { return enqueue(ClaimItem(.cancel, user: user), now: now) }
        guard holds[user] != nil else { return .answered(.cancel(.noActiveReservation)) }
        return enqueue(ClaimItem(.cancel, user: user), now: now)
    }

    /// The timer fired (or a simulation stepped the clock): sweep if a hold is due.
    mutating func tick(now: Date) -> [Effect] {
        armedAt = nil
        dropStaleDeadlines()
        if let first = deadlines.min, first.expiresAt <= now { sweepWanted = true }
        return startBatchIfIdle(now: now) + rearm(now: now)
    }

    // MARK: - Store results

    mutating func committed(_ outcome: BatchOutcome, now: Date) -> [Effect] {
        guard case .committing(let batch) = phase else { preconditionFailure("a batch committed while none was in flight") }
        precondition(outcome.results.count == batch.count, "one result per claim")
        phase = .idle
        drop.sold = outcome.sold
        drop.reserved = outcome.reserved
        for expired in outcome.expired where holds[expired.userID]?.id == expired.reservationID {
            holds[expired.userID] = nil
            expiredHolders.insert(expired.userID)
        }
        var effects: [Effect] = []
        effects.reserveCapacity(batch.count + 2)
        var stale = false
        for (waiting, result) in zip(batch, outcome.results) {
            let (answer, disagreed) = apply(result, to: waiting.item)
            stale = stale || disagreed
            effects.append(.answer(waiting.ticket, answer))
        }
        precondition(drop.sold + drop.reserved <= drop.spec.totalStock, "store reported oversold counters")
        if stale {
            // The store refused what memory allowed: another engine touched this drop.
            phase = .recovering
            effects.append(.recover)
            return effects
        }
        return effects + decideParked(now: now) + startBatchIfIdle(now: now) + rearm(now: now)
    }

    /// The batch failed as a whole: each of its callers hears the error, nothing is half
    /// applied, and memory is reloaded since the commit may have happened (a lost ack).
    mutating func failed(_ error: EngineError) -> [Effect] {
        guard case .committing(let batch) = phase else { preconditionFailure("a batch failed while none was in flight") }
        for waiting in batch where waiting.item.kind == .reserve { reservesPending.remove(waiting.item.userID) }
        phase = .recovering
        return [.fail(batch.map(\.ticket), error), .recover]
    }

    mutating func recovered(_ recovery: DropRecovery, now: Date) -> [Effect] {
        drop = recovery.drop
        load(recovery)
        phase = .idle
        return decideParked(now: now) + tick(now: now)
    }

    /// Recovery failed (the store is down): everyone waiting hears it; the next request
    /// tries again.
    mutating func recoveryFailed(_ error: EngineError) -> [Effect] {
        let tickets = queue.map(\.ticket) + parked.map(\.ticket)
        queue.removeAll()
        parked.removeAll()
        reservesPending.removeAll()
        sweepWanted = false
        return tickets.isEmpty ? [] : [.fail(tickets, error)]
    }

    var needsRecovery: Bool {
        if case .recovering = phase { return true }
        return false
    }

    // MARK: - Private

    private mutating func enqueue(_ item: ClaimItem, now: Date) -> Admission {
        guard queue.count + parked.count < maxQueuedClaims else { return .answered(Self.overloaded(item.kind)) }
        let ticket = nextTicket
        nextTicket += 1
        queue.append(Waiting(ticket: ticket, item: item))
        if item.kind == .reserve { reservesPending.insert(item.userID) }
        if case .idle = phase {
            phase = .gathering
            return .queued(ticket, [.gather])
        }
        return .queued(ticket, [])
    }

    /// The gather window closed: the claims queued meanwhile form one batch.
    mutating func flush(now: Date) -> [Effect] {
        guard case .gathering = phase else { return [] }
        phase = .idle
        return startBatchIfIdle(now: now)
    }

    private mutating func startBatchIfIdle(now: Date) -> [Effect] {
        guard case .idle = phase, !queue.isEmpty || sweepWanted else { return [] }
        let count = min(queue.count, maxBatchClaims)
        let batch = Array(queue.prefix(count))
        queue.removeFirst(count)
        sweepWanted = false
        phase = .committing(batch)
        return [.commit(ClaimBatch(dropID: drop.id, items: batch.map(\.item)))]
    }

    /// Applies one store result to memory; `disagreed` when memory had allowed what the store refused.
    private mutating func apply(_ result: ClaimResult, to item: ClaimItem) -> (Answer, disagreed: Bool) {
        let user = item.userID
        switch (item.kind, result) {
        case (.reserve, .reserved(let reservation)):
            reservesPending.remove(user)
            expiredHolders.remove(user)
            holds[user] = Hold(id: reservation.id, createdAt: reservation.createdAt, expiresAt: reservation.expiresAt)
            deadlines.insert(Deadline(expiresAt: reservation.expiresAt, reservationID: reservation.id, userID: user))
            return (.reserve(.reserved(reservation)), false)
        case (.reserve, .rejected(let code)):
            reservesPending.remove(user)
            return (.reserve(reserveRejection(code, user: user)), code != .notStarted)
        case (.purchase, .purchased(let purchase, let replayed)):
            if !replayed, holds[user]?.id == purchase.reservationID {
                holds[user] = nil
            }
            if !(purchases[user]?.contains { $0.id == purchase.id } ?? false) { purchases[user, default: []].append(purchase) }
            return (.purchase(.purchased(purchase, replayed: replayed)), false)
        case (.purchase, .rejected(let code)):
            holds[user] = nil
            if code == .expired { expiredHolders.insert(user) }
            return (.purchase(code == .expired ? .expired : code == .unknownDrop ? .unknownDrop : .noActiveReservation), false)
        case (.cancel, .cancelled(let reservation)):
            holds[user] = nil
            return (.cancel(.cancelled(reservation)), false)
        case (.cancel, .rejected(let code)):
            holds[user] = nil
            return (.cancel(code == .unknownDrop ? .unknownDrop : .noActiveReservation), false)
        default:
            preconditionFailure("store answered \(result) to a \(item.kind) claim")
        }
    }

    private func reserveRejection(_ code: RejectionCode, user: UserID) -> ReserveOutcome {
        switch code {
        case .soldOut: .soldOut
        case .alreadyHolding: .alreadyHolding(holds[user].map { reservation($0, user: user, status: .active) })
        case .limitReached: .limitReached
        case .notStarted: .notStarted(until: drop.spec.startsAt ?? .distantPast)
        case .unknownDrop: .unknownDrop
        default: .soldOut
        }
    }

    private mutating func rearm(now: Date) -> [Effect] {
        dropStaleDeadlines()
        guard let first = deadlines.min else { return [] }
        // Never sooner than a short retry: the store's clock may trail ours by a hair.
        let at = max(first.expiresAt, now.addingTimeInterval(Double(Defaults.sweepRetryMilliseconds) / 1000))
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

    private mutating func load(_ recovery: DropRecovery) {
        holds = [:]
        holds.reserveCapacity(recovery.activeHolds.count)
        var entries: [Deadline] = []
        for hold in recovery.activeHolds {
            holds[hold.userID] = Hold(id: hold.id, createdAt: hold.createdAt, expiresAt: hold.expiresAt)
            entries.append(Deadline(expiresAt: hold.expiresAt, reservationID: hold.id, userID: hold.userID))
        }
        deadlines = Heap(entries)
        armedAt = nil
        purchases = Dictionary(grouping: recovery.purchases, by: \.userID)
        reservesPending = Set(queue.filter { $0.item.kind == .reserve }.map(\.item.userID))
    }

    private func reservation(_ hold: Hold, user: UserID, status: ReservationStatus) -> Reservation {
        Reservation(id: hold.id, dropID: drop.id, userID: user, status: status, createdAt: hold.createdAt, expiresAt: hold.expiresAt)
    }

    private static func overloaded(_ kind: ClaimItem.Kind) -> Answer {
        switch kind {
        case .reserve: .reserve(.overloaded)
        case .purchase: .purchase(.overloaded)
        case .cancel: .cancel(.overloaded)
        }
    }
}
