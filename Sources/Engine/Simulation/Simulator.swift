// Deterministic simulation, after TigerBeetle's VOPR: the real DropMachine and the real
// in-memory store, driven by one seeded generator and a ManualClock. The simulator plays the
// actors' part itself, so it decides when a batch commits (slow commits), whether it fails
// before or after committing (a lost acknowledgement), whether a reload fails, and when a
// drop's actor crashes and recovers. Two owners (server instances) share the store: each
// request reaches one of them, and one that does not hold the drop's lease takes it or
// forwards the request to the holder; an owner pauses (it stops renewing and answering), its
// leases lapse, the other takes its drops over, and when it resumes its batches are fenced.
// Every answer memory gives is held to what the store would answer at that instant (a dry run
// of the same claim), at most one owner's memory trusts its lease on a drop at any instant,
// and the invariants are checked after every step; a failure names its seed and step.
import Foundation

public struct SimulationFailure: Error, CustomStringConvertible, Sendable {
    public let seed: UInt64
    public let step: Int
    public let invariant: String
    public let detail: String
    public var description: String {
        "invariant \"\(invariant)\" broken at seed \(seed), step \(step): \(detail)\nreplay: stockdrop simulate --seed \(seed) --steps \(step)"
    }
}

public struct SimulationSummary: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var steps = 0
    public var requests = 0
    public var answeredFromMemory = 0
    public var batchesCommitted = 0
    public var batchesFailed = 0
    public var acknowledgementsLost = 0
    public var crashes = 0
    /// Reloads of a running machine (`DropMachine` decided to recover) that failed.
    public var recoveriesFailed = 0
    /// Activations (taking the lease and loading the drop) that failed: no machine ran.
    public var activationsFailed = 0
    public var forwarded = 0
    public var takeovers = 0
    public var fencedBatches = 0
    /// Batches sent while another of the drop's was in flight (behind its lock).
    public var batchesSentBehindAnother = 0
    /// Batches that landed after the machine stopped deciding (a batch before them failed, was
    /// fenced or contradicted memory): their verdicts reach their callers, then the machine
    /// reloads or steps down.
    public var landedWhileStopped = 0
    /// Requests answered with a retryable error while a drop's lease changed hands.
    public var refusedDuringHandover = 0
    public var reserved = 0
    public var purchased = 0
    public var expired = 0
    public var description: String {
        "seed \(seed): \(steps) steps, \(requests) requests (\(answeredFromMemory) answered from memory), "
            + "\(batchesCommitted) batches committed, \(batchesFailed) failed, \(acknowledgementsLost) acks lost, "
            + "\(recoveriesFailed) reloads failed, \(activationsFailed) activations failed, \(crashes) crashes, \(forwarded) forwarded, \(takeovers) takeovers, "
            + "\(fencedBatches) fenced, \(batchesSentBehindAnother) sent behind another, "
            + "\(landedWhileStopped) landed while stopped, \(refusedDuringHandover) refused in handover; "
            + "\(reserved) holds, \(purchased) purchases, \(expired) expiries"
    }
}

public actor Simulator {
    private struct Request {
        var drop: DropID
        var item: ClaimItem
    }
    private struct Node {
        var machine: DropMachine
        /// Batches sent and not yet at the store, oldest first (the store takes them in order,
        /// as the drop's row lock makes PostgreSQL do).
        var inFlight: [ClaimBatch] = []
    }
    /// One owner's actor of one drop.
    private struct Key: Hashable, Comparable {
        var owner: Int
        var drop: DropID
        static func < (a: Key, b: Key) -> Bool { (a.drop, a.owner) < (b.drop, b.owner) }
    }

    private let seed: UInt64
    private var random: SplitMix64
    private let clock = ManualClock()
    private let store: InMemoryStore
    private let owners = [LeaseOwner(instance: "sim-a"), LeaseOwner(instance: "sim-b")]
    private var paused: Int?
    private var dropIDs: [DropID] = []
    private var nodes: [Key: Node] = [:]
    private var waiting: [Key: [DropMachine.Ticket: Request]] = [:]
    private var toldReserved: [ReservationID] = []
    private var toldPurchased: [PurchaseID] = []
    private var summary: SimulationSummary
    private var step = 0
    private let users: Int
    private var faultsOn = true

    public init(seed: UInt64, users: Int = 24) {
        self.seed = seed
        random = SplitMix64(seed: seed)
        store = InMemoryStore(clock: clock, seed: seed ^ 0x5EED)
        summary = SimulationSummary(seed: seed)
        self.users = users
    }

    /// Runs `steps` steps, then drains past every TTL and checks that every hold expired.
    public func run(steps: Int) async throws -> SimulationSummary {
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let spec = DropSpec(
                name: "sim", priceCents: Int64.random(in: 0...50_000, using: &random),
                totalStock: Int.random(in: 0...8, using: &random), perUserLimit: Int.random(in: 1...2, using: &random),
                reserveTTLMilliseconds: Int.random(in: 1...5, using: &random) * 1_000)
            let record = try await store.createDrop(spec)
            dropIDs.append(record.id)
            _ = try await node(for: Key(owner: 0, drop: record.id))
        }
        while step < steps {
            step += 1
            try await randomEvent()
            try await checkInvariants()
        }
        try await drainPastEveryTTL()
        summary.steps = step
        return summary
    }

    // MARK: - Events

    private func randomEvent() async throws {
        let roll = Int.random(in: 0..<100, using: &random)
        let drop = dropIDs[Int.random(in: 0..<dropIDs.count, using: &random)]
        let running = owners.indices.filter { $0 != paused }
        let owner = running[Int.random(in: 0..<running.count, using: &random)]
        switch roll {
        case 0..<45: try await request(on: drop, reaching: owner)
        case 45..<62:
            let busy = nodes.keys.filter { $0.owner != paused }.sorted()
            if !busy.isEmpty { try await complete(busy[Int.random(in: 0..<busy.count, using: &random)]) }
        case 62..<68:
            let busy = nodes.keys.filter { $0.owner != paused }.sorted()
            if !busy.isEmpty { try await lockFirstBatch(busy[Int.random(in: 0..<busy.count, using: &random)]) }
        case 68..<80:
            clock.advance(by: Double(Int.random(in: 0...2_500, using: &random)) / 1000)
            try await tickRunningNodes()
        case 80..<86:
            try await renewLeases(of: owner)
        case 86..<89:
            // A pause (GC, SIGSTOP, partition) ends with the next such event.
            paused = paused == nil ? Int.random(in: 0..<owners.count, using: &random) : nil
        case 89..<91:
            try await sweepLapsedDrops()
        case 91..<97:
            await store.setFaults(randomFaults())
        default:
            try await crash(Key(owner: owner, drop: drop))
        }
    }

    private func tickRunningNodes() async throws {
        for key in nodes.keys.sorted() where key.owner != paused {
            guard nodes[key] != nil else { continue }  // stepped down while an earlier one ticked
            try await perform(nodes[key]!.machine.tick(now: clock.now()), on: key)
        }
    }

    /// What the engine's renewal loop does for one owner: one request for every lease its
    /// memory still trusts.
    private func renewLeases(of owner: Int) async throws {
        let now = clock.now()
        var epochs: [DropID: Int64] = [:]
        for (key, node) in nodes where key.owner == owner {
            if let epoch = node.machine.renewableEpoch(now: now) { epochs[key.drop] = epoch }
        }
        guard !epochs.isEmpty else { return }
        let renewal = await store.renewLeases(epochs, for: owners[owner])
        for (drop, epoch) in epochs {
            _ = nodes[Key(owner: owner, drop: drop)]!.machine.renewal(renewal, epoch: epoch, sentAt: now)
        }
    }

    /// The engines' idle sweep: drops with overdue holds whose lease lapsed are swept by a
    /// batch without a lease, which fences the lapsed owner.
    private func sweepLapsedDrops() async throws {
        for drop in await store.dropsWithOverdueHolds(sweptBy: nil) {
            do {
                let outcome = try await store.apply(ClaimBatch(dropID: drop, items: []))
                summary.expired += outcome.expired.count
            } catch is EngineError {
                continue  // leased meanwhile, or an injected fault
            }
        }
    }

    /// The owner's actor of the drop, activated (taking the lease) if it has none; nil when
    /// another owner holds the lease, or loading failed.
    private func node(for key: Key) async throws -> Node? {
        if let node = nodes[key] { return node }
        let grant: LeaseGrant?
        do { grant = try await store.acquireLease(on: key.drop, for: owners[key.owner]) } catch {
            summary.activationsFailed += 1
            return nil
        }
        guard case .granted(let recovery, let epoch, let previousOwner) = grant else { return nil }
        if previousOwner != nil { summary.takeovers += 1 }
        let now = clock.now()
        let tenure = DropMachine.Tenure(
            owner: owners[key.owner], epoch: epoch, trustedUntil: owners[key.owner].trustedUntil(sentAt: now))
        nodes[key] = Node(
            machine: DropMachine(
                recovery: recovery, now: now, tenure: tenure,
                // Small batches fill often, so full ones go behind others (only they may).
                maxBatchClaims: Int.random(in: 2...4, using: &random), maxQueuedClaims: 16,
                maxBatchesInFlight: Int.random(in: 1...2, using: &random)))
        try await perform(nodes[key]!.machine.tick(now: now), on: key)
        return nodes[key]
    }

    /// The owner the request reached runs the drop, or takes its lease, or forwards the
    /// request once to the owner holding it; with none of those (the holder is paused, or
    /// loading failed) the caller hears a retryable error.
    private func target(for drop: DropID, reaching owner: Int) async throws -> Key? {
        let here = Key(owner: owner, drop: drop)
        if try await node(for: here) != nil { return here }
        let there = Key(owner: 1 - owner, drop: drop)
        guard paused != there.owner, nodes[there] != nil else { return nil }
        summary.forwarded += 1
        return there
    }

    private func request(on drop: DropID, reaching owner: Int) async throws {
        summary.requests += 1
        guard let key = try await target(for: drop, reaching: owner) else {
            summary.refusedDuringHandover += 1
            return
        }
        let now = clock.now()
        let roll = Int.random(in: 0..<10, using: &random)
        // Most purchases and cancels come from users who hold something, as in real traffic.
        let holders = nodes[key]!.machine.holds.keys.sorted()
        let user =
            roll >= 5 && !holders.isEmpty && Int.random(in: 0..<10, using: &random) < 8
            ? holders[Int.random(in: 0..<holders.count, using: &random)]
            : UserID(Int.random(in: 1...users, using: &random))
        let item: ClaimItem
        let admission: DropMachine.Admission
        if roll < 5 {
            item = ClaimItem(.reserve, user: user)
            admission = nodes[key]!.machine.reserve(user: user, now: now)
        } else if roll < 8 {
            let idempotencyKey =
                Bool.random(using: &random) ? "key-\(user)-\(Int.random(in: 0...2, using: &random))" : nil
            // Asked now; slow commits and lost acknowledgements may decide it past the hold's
            // expiry, within the purchase grace or after it.
            item = ClaimItem(.purchase, user: user, idempotencyKey: idempotencyKey, askedAt: now)
            admission = nodes[key]!.machine.purchase(user: user, idempotencyKey: idempotencyKey, askedAt: now, now: now)
        } else {
            item = ClaimItem(.cancel, user: user)
            admission = nodes[key]!.machine.cancel(user: user, now: now)
        }
        switch admission {
        case .answered(let answer):
            summary.answeredFromMemory += 1
            try await checkMemoryAgreesWithStore(answer, for: Request(drop: drop, item: item))
            try await told(answer, for: Request(drop: drop, item: item))
        case .queued(let ticket, let effects):
            waiting[key, default: [:]][ticket] = Request(drop: drop, item: item)
            try await perform(effects, on: key)
        case .refused:
            summary.refusedDuringHandover += 1
        }
    }

    /// The drop's oldest batch in flight reaches the store now (a slow commit is one that
    /// waits for several steps before this event picks it). The store then holds the lock for
    /// the next one, and the machine may hear so before or after this batch's verdict.
    private func complete(_ key: Key) async throws {
        guard nodes[key] != nil else { return }
        try await perform(nodes[key]!.machine.flush(now: clock.now()), on: key)
        guard let batch = nodes[key]?.inFlight.first else { return }
        nodes[key]!.inFlight.removeFirst()
        let verdicts = Set(nodes[key]!.machine.inFlight.first?.claims.map(\.ticket) ?? [])
        let result: Result<BatchOutcome, EngineError>
        do {
            result = .success(try await store.apply(batch))
        } catch let error as EngineError {
            result = .failure(error)
        }
        if Bool.random(using: &random) { try await lockFirstBatch(key, behind: 1) }
        if case .running = nodes[key]!.machine.phase {} else { summary.landedWhileStopped += 1 }
        switch result {
        case .success(let outcome):
            summary.batchesCommitted += 1
            summary.expired += outcome.expired.count
            try await perform(
                nodes[key]!.machine.committed(outcome, now: clock.now()), on: key, storeVerdicts: verdicts)
        case .failure(let error):
            summary.batchesFailed += 1
            if error.code == .outcomeUnknown { summary.acknowledgementsLost += 1 }
            if error.code == .fenced { summary.fencedBatches += 1 }
            try await perform(nodes[key]!.machine.failed(error), on: key)
        }
    }

    /// The store holds the drop's lock for the oldest batch not yet at it (`behind` batches
    /// whose verdicts the machine has yet to hear come before it): the machine hears so.
    private func lockFirstBatch(_ key: Key, behind: Int = 0) async throws {
        guard let machine = nodes[key]?.machine, machine.inFlight.count > behind else { return }
        let batch = machine.inFlight[behind]
        guard batch.asksForLock, !batch.locked else { return }
        try await perform(nodes[key]!.machine.batchLocked(batch.number, now: clock.now()), on: key)
    }

    /// The owner's actor of the drop dies: its waiting callers never hear back (indeterminate),
    /// each batch in flight may or may not have committed, and the next request to that owner
    /// takes the lease again and recovers from the store.
    private func crash(_ key: Key) async throws {
        guard nodes[key] != nil else { return }
        summary.crashes += 1
        for batch in nodes[key]!.inFlight where Bool.random(using: &random) {
            _ = try? await store.apply(batch)
        }
        waiting[key] = [:]
        nodes[key] = nil
    }

    /// `storeVerdicts`: the tickets of the batch that just committed; every other answer in
    /// `effects` came from memory and must be the store's.
    private func perform(
        _ effects: [DropMachine.Effect], on key: Key, storeVerdicts: Set<DropMachine.Ticket> = []
    ) async throws {
        for effect in effects {
            switch effect {
            case .answer(let ticket, let answer):
                guard let request = waiting[key]?.removeValue(forKey: ticket) else { break }
                if !storeVerdicts.contains(ticket) { try await checkMemoryAgreesWithStore(answer, for: request) }
                try await told(answer, for: request)
            case .fail(let tickets, let error):
                for ticket in tickets { waiting[key]?.removeValue(forKey: ticket) }
                if error.code == .fenced { summary.refusedDuringHandover += tickets.count }
            case .commit(let batch, _):
                precondition(
                    nodes[key]!.inFlight.count < nodes[key]!.machine.maxBatchesInFlight,
                    "more batches in flight for one drop than the machine allows")
                if !nodes[key]!.inFlight.isEmpty { summary.batchesSentBehindAnother += 1 }
                nodes[key]!.inFlight.append(batch)
            case .armTimer, .gather:
                break  // the simulation ticks every drop when it moves the clock, and flushes in `complete`
            case .stepDown:
                precondition(waiting[key]?.isEmpty ?? true, "a machine stepped down with callers still waiting")
                nodes[key] = nil
                return
            case .recover:
                let recovery: DropRecovery?
                do {
                    recovery = try await store.recover(key.drop, epoch: nodes[key]!.machine.tenure?.epoch)
                } catch let error as EngineError {
                    if error.code != .fenced { summary.recoveriesFailed += 1 }
                    try await perform(nodes[key]!.machine.recoveryFailed(error), on: key)
                    continue
                }
                if let recovery {
                    try await perform(nodes[key]!.machine.recovered(recovery, now: clock.now()), on: key)
                } else {
                    try await perform(
                        nodes[key]!.machine.recoveryFailed(EngineError(.storeUnavailable, "drop vanished")), on: key)
                }
            }
        }
    }

    private func randomFaults() -> InMemoryStore.Faults {
        var faults = InMemoryStore.Faults()
        guard faultsOn else { return faults }
        faults.failBeforeCommit = [0, 0, 0.1, 0.3].randomElement(using: &random)!
        faults.failAfterCommit = [0, 0, 0.1, 0.2].randomElement(using: &random)!
        faults.failRecovery = [0, 0, 0.2, 0.5].randomElement(using: &random)!
        return faults
    }

    // MARK: - What clients were told, and the invariants

    private func told(_ answer: DropMachine.Answer, for request: Request) async throws {
        switch answer {
        case .reserve(.reserved(let reservation)):
            summary.reserved += 1
            toldReserved.append(reservation.id)
        case .purchase(.purchased(let purchase, let replayed)):
            if !replayed { summary.purchased += 1 }
            toldPurchased.append(purchase.id)
        default:
            break
        }
    }

    /// Every answer memory gives is the one the store would give at that instant: a dry run
    /// of the same claim on the store's tables. Invariant 6 (no "sold out" while a unit is
    /// free, an overdue hold counting as free) is the most important case of it.
    private func checkMemoryAgreesWithStore(_ answer: DropMachine.Answer, for request: Request) async throws {
        let verdict = try await store.dryRun(ClaimBatch(dropID: request.drop, items: [request.item])).results[0]
        guard !Self.agrees(answer, verdict) else { return }
        let invariant = if case .reserve(.soldOut) = answer { "6 no undersell" } else { "memory answers as the store" }
        throw failure(
            invariant,
            "drop \(request.drop), user \(request.item.userID): memory answered \(answer) where the store would answer \(verdict)"
        )
    }

    static func agrees(_ answer: DropMachine.Answer, _ verdict: ClaimResult) -> Bool {
        switch (answer, verdict) {
        case (.reserve(.overloaded), _), (.purchase(.overloaded), _), (.cancel(.overloaded), _):
            return true  // load shedding, not an answer about the drop
        case (.reserve(let outcome), _):
            return outcome.rejection.map { verdict == .rejected($0) } ?? false
        case (.purchase(.purchased(let mine, replayed: true)), .purchased(let theirs, replayed: true)):
            return mine.id == theirs.id
        case (.purchase(let outcome), _):
            return outcome.rejection.map { verdict == .rejected($0) } ?? false
        case (.cancel(.cancelled(let mine)), .cancelled(let theirs)):
            return mine.id == theirs.id
        case (.cancel(let outcome), _):
            return outcome.rejection.map { verdict == .rejected($0) } ?? false
        }
    }

    private func checkInvariants() async throws {
        // One owner per drop: at most one machine's memory trusts its lease at any instant.
        let now = clock.now()
        for drop in dropIDs {
            let trusting = owners.indices.filter { owner in
                guard let machine = nodes[Key(owner: owner, drop: drop)]?.machine else { return false }
                return !machine.isDeposed && machine.memoryTrusted(now: now)
            }
            guard trusting.count <= 1 else {
                throw failure(
                    "one owner per drop",
                    "drop \(drop): the memory of \(trusting.map { owners[$0].instance }) trusts its lease")
            }
        }
        let refusedVouches = await store.refusedVouches
        guard refusedVouches == 0 else {
            throw failure(
                "memory vouches only for what the store grants",
                "\(refusedVouches) batch(es) refused: a reserve vouched for a user who held a live unit")
        }
        let (drops, reservations, purchases) = await store.contents()
        let reservationsByID = Dictionary(uniqueKeysWithValues: reservations.map { ($0.id, $0) })
        for drop in drops {
            let mine = reservations.filter { $0.dropID == drop.id }
            let active = mine.filter { $0.status == .active }.count
            let sold = purchases.filter { $0.dropID == drop.id }.count
            guard drop.sold + drop.reserved <= drop.spec.totalStock else {
                throw failure(
                    "1 no oversell",
                    "drop \(drop.id): sold \(drop.sold) + reserved \(drop.reserved) > \(drop.spec.totalStock)")
            }
            guard drop.sold == sold, drop.reserved == active else {
                throw failure(
                    "1 counters match rows",
                    "drop \(drop.id): counters \(drop.sold)/\(drop.reserved), rows \(sold)/\(active)")
            }
            for (user, held) in Dictionary(grouping: mine, by: \.userID) {
                let activeCount = held.filter { $0.status == .active }.count
                let counted = held.filter { $0.status == .active || $0.status == .purchased }.count
                guard activeCount <= 1, counted <= drop.spec.perUserLimit else {
                    throw failure(
                        "3 per-user limit",
                        "drop \(drop.id) user \(user): \(activeCount) active, \(counted) held or bought")
                }
            }
        }
        var purchasedHolds = Set<ReservationID>()
        for purchase in purchases {
            guard let hold = reservationsByID[purchase.reservationID], hold.status == .purchased,
                hold.userID == purchase.userID, hold.dropID == purchase.dropID,
                purchase.createdAt < Reservation.graceEnds(createdAt: hold.createdAt, expiresAt: hold.expiresAt),
                purchasedHolds.insert(hold.id).inserted
            else {
                throw failure(
                    "2 purchase has one live hold", "purchase \(purchase.id) of reservation \(purchase.reservationID)")
            }
        }
        let purchaseIDs = Set(purchases.map(\.id))
        for id in toldReserved where reservationsByID[id] == nil {
            throw failure("5 no lost acknowledged write", "reservation \(id) was acknowledged but is not in the store")
        }
        for id in toldPurchased where !purchaseIDs.contains(id) {
            throw failure("5 no lost acknowledged write", "purchase \(id) was acknowledged but is not in the store")
        }
    }

    /// Invariant 4: with faults off and every batch completed past the longest TTL, no hold
    /// is ACTIVE past its expiry and every expired unit is available again.
    private func drainPastEveryTTL() async throws {
        faultsOn = false
        paused = nil
        await store.setFaults(InMemoryStore.Faults())
        clock.advance(by: Double(Defaults.maxReserveTTLMilliseconds) / 1000)
        for _ in 0..<8 {
            try await tickRunningNodes()
            for key in nodes.keys.sorted() {
                repeat {
                    try await lockFirstBatch(key)
                    try await complete(key)
                } while !(nodes[key]?.inFlight.isEmpty ?? true)
            }
            try await sweepLapsedDrops()
        }
        try await checkInvariants()
        // Units return: the counters-match-rows check above proves `reserved` counts only the
        // holds still ACTIVE, and none of those may be overdue.
        let (_, reservations, _) = await store.contents()
        if let overdue = reservations.first(where: {
            $0.status == .active
                && Reservation.graceEnds(createdAt: $0.createdAt, expiresAt: $0.expiresAt) <= clock.now()
        }) {
            throw failure("4 holds expire", "reservation \(overdue.id) is ACTIVE past its expiry")
        }
    }

    private func failure(_ invariant: String, _ detail: String) -> SimulationFailure {
        SimulationFailure(seed: seed, step: step, invariant: invariant, detail: detail)
    }
}
