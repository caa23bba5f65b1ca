// Deterministic simulation, after TigerBeetle's VOPR: the real DropMachine and the real
// in-memory store, driven by one seeded generator and a ManualClock. The simulator plays the
// actor's part itself, so it decides when a batch commits (slow commits), whether it fails
// before or after committing (a lost acknowledgement), whether a reload fails, and when a
// drop's actor crashes and recovers. Every answer memory gives is held to what the store would
// answer at that instant (a dry run of the same claim), and the invariants are checked after
// every step; a failure names its seed and step.
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
    public var recoveriesFailed = 0
    public var reserved = 0
    public var purchased = 0
    public var expired = 0
    public var description: String {
        "seed \(seed): \(steps) steps, \(requests) requests (\(answeredFromMemory) answered from memory), "
            + "\(batchesCommitted) batches committed, \(batchesFailed) failed, \(acknowledgementsLost) acks lost, "
            + "\(recoveriesFailed) reloads failed, \(crashes) crashes; \(reserved) holds, \(purchased) purchases, \(expired) expiries"
    }
}

public actor Simulator {
    private struct Request {
        var drop: DropID
        var item: ClaimItem
    }
    private struct Node {
        var machine: DropMachine
        var inFlight: ClaimBatch?
    }

    private let seed: UInt64
    private var random: SplitMix64
    private let clock = ManualClock()
    private let store: InMemoryStore
    private var nodes: [DropID: Node] = [:]
    private var waiting: [DropID: [DropMachine.Ticket: Request]] = [:]
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
            try await activate(record.id)
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
        let dropIDs = nodes.keys.sorted()
        let drop = dropIDs[Int.random(in: 0..<dropIDs.count, using: &random)]
        switch roll {
        case 0..<50: try await request(on: drop)
        case 50..<75: try await complete(drop)
        case 75..<90:
            clock.advance(by: Double(Int.random(in: 0...2_500, using: &random)) / 1000)
            for id in dropIDs { try await perform(nodes[id]!.machine.tick(now: clock.now()), on: id) }
        case 90..<97:
            await store.setFaults(randomFaults())
        default:
            try await crash(drop)
        }
    }

    private func request(on drop: DropID) async throws {
        summary.requests += 1
        let now = clock.now()
        let roll = Int.random(in: 0..<10, using: &random)
        // Most purchases and cancels come from users who hold something, as in real traffic.
        let holders = nodes[drop]!.machine.holds.keys.sorted()
        let user = roll >= 5 && !holders.isEmpty && Int.random(in: 0..<10, using: &random) < 8
            ? holders[Int.random(in: 0..<holders.count, using: &random)]
            : UserID(Int.random(in: 1...users, using: &random))
        let item: ClaimItem
        let admission: DropMachine.Admission
        if roll < 5 {
            item = ClaimItem(.reserve, user: user)
            admission = nodes[drop]!.machine.reserve(user: user, now: now)
        } else if roll < 8 {
            let key = Bool.random(using: &random) ? "key-\(user)-\(Int.random(in: 0...2, using: &random))" : nil
            item = ClaimItem(.purchase, user: user, idempotencyKey: key)
            admission = nodes[drop]!.machine.purchase(user: user, idempotencyKey: key, now: now)
        } else {
            item = ClaimItem(.cancel, user: user)
            admission = nodes[drop]!.machine.cancel(user: user, now: now)
        }
        switch admission {
        case .answered(let answer):
            summary.answeredFromMemory += 1
            try await checkMemoryAgreesWithStore(answer, for: Request(drop: drop, item: item))
            try await told(answer, for: Request(drop: drop, item: item))
        case .queued(let ticket, let effects):
            waiting[drop, default: [:]][ticket] = Request(drop: drop, item: item)
            try await perform(effects, on: drop)
        }
    }

    /// The drop's batch in flight reaches the store now (a slow commit is one that waits
    /// for several steps before this event picks it).
    private func complete(_ drop: DropID) async throws {
        try await perform(nodes[drop]!.machine.flush(now: clock.now()), on: drop)
        guard let batch = nodes[drop]?.inFlight else { return }
        nodes[drop]!.inFlight = nil
        let verdicts = Set(nodes[drop]!.machine.inFlightTickets)
        do {
            let outcome = try await store.apply(batch)
            summary.batchesCommitted += 1
            summary.expired += outcome.expired.count
            try await perform(
                nodes[drop]!.machine.committed(outcome, now: clock.now()), on: drop, storeVerdicts: verdicts)
        } catch let error as EngineError {
            summary.batchesFailed += 1
            if error.code == .outcomeUnknown { summary.acknowledgementsLost += 1 }
            try await perform(nodes[drop]!.machine.failed(error), on: drop)
        }
    }

    /// The drop's actor dies: its waiting callers never hear back (indeterminate), a batch in
    /// flight may or may not have committed, and a new actor recovers from the store.
    private func crash(_ drop: DropID) async throws {
        summary.crashes += 1
        if let batch = nodes[drop]?.inFlight, Bool.random(using: &random) {
            _ = try? await store.apply(batch)
        }
        waiting[drop] = [:]
        try await activate(drop)
    }

    /// A new actor for the drop; loading it may fail (injected), and is tried until it works.
    private func activate(_ drop: DropID) async throws {
        var loaded: DropRecovery??
        while loaded == nil {
            do { loaded = .some(try await store.recover(drop)) } catch { summary.recoveriesFailed += 1 }
        }
        guard let recovery = loaded ?? nil else { return }
        nodes[drop] = Node(machine: DropMachine(recovery: recovery, now: clock.now(), maxBatchClaims: 4, maxQueuedClaims: 16))
        try await perform(nodes[drop]!.machine.tick(now: clock.now()), on: drop)
    }

    /// `storeVerdicts`: the tickets of the batch that just committed; every other answer in
    /// `effects` came from memory and must be the store's.
    private func perform(
        _ effects: [DropMachine.Effect], on drop: DropID, storeVerdicts: Set<DropMachine.Ticket> = []
    ) async throws {
        for effect in effects {
            switch effect {
            case .answer(let ticket, let answer):
                guard let request = waiting[drop]?.removeValue(forKey: ticket) else { break }
                if !storeVerdicts.contains(ticket) { try await checkMemoryAgreesWithStore(answer, for: request) }
                try await told(answer, for: request)
            case .fail(let tickets, _):
                for ticket in tickets { waiting[drop]?.removeValue(forKey: ticket) }
            case .commit(let batch):
                precondition(nodes[drop]!.inFlight == nil, "two batches in flight for one drop")
                nodes[drop]!.inFlight = batch
            case .armTimer, .gather:
                break  // the simulation ticks every drop when it moves the clock, and flushes in `complete`
            case .recover:
                let recovery: DropRecovery?
                do { recovery = try await store.recover(drop) } catch let error as EngineError {
                    summary.recoveriesFailed += 1
                    try await perform(nodes[drop]!.machine.recoveryFailed(error), on: drop)
                    continue
                }
                if let recovery {
                    try await perform(nodes[drop]!.machine.recovered(recovery, now: clock.now()), on: drop)
                } else {
                    try await perform(
                        nodes[drop]!.machine.recoveryFailed(EngineError(.storeUnavailable, "drop vanished")), on: drop)
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
        let verdict = await store.dryRun(ClaimBatch(dropID: request.drop, items: [request.item])).results[0]
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
        let (drops, reservations, purchases) = await store.contents()
        let reservationsByID = Dictionary(uniqueKeysWithValues: reservations.map { ($0.id, $0) })
        for drop in drops {
            let mine = reservations.filter { $0.dropID == drop.id }
            let active = mine.filter { $0.status == .active }.count
            let sold = purchases.filter { $0.dropID == drop.id }.count
            guard drop.sold + drop.reserved <= drop.spec.totalStock else {
                throw failure("1 no oversell", "drop \(drop.id): sold \(drop.sold) + reserved \(drop.reserved) > \(drop.spec.totalStock)")
            }
            guard drop.sold == sold, drop.reserved == active else {
                throw failure("1 counters match rows", "drop \(drop.id): counters \(drop.sold)/\(drop.reserved), rows \(sold)/\(active)")
            }
            for (user, held) in Dictionary(grouping: mine, by: \.userID) {
                let activeCount = held.filter { $0.status == .active }.count
                let counted = held.filter { $0.status == .active || $0.status == .purchased }.count
                guard activeCount <= 1, counted <= drop.spec.perUserLimit else {
                    throw failure("3 per-user limit", "drop \(drop.id) user \(user): \(activeCount) active, \(counted) held or bought")
                }
            }
        }
        var purchasedHolds = Set<ReservationID>()
        for purchase in purchases {
            guard let hold = reservationsByID[purchase.reservationID], hold.status == .purchased,
                  hold.userID == purchase.userID, hold.dropID == purchase.dropID, purchase.createdAt < hold.expiresAt,
                  purchasedHolds.insert(hold.id).inserted else {
                throw failure("2 purchase has one live hold", "purchase \(purchase.id) of reservation \(purchase.reservationID)")
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
        await store.setFaults(InMemoryStore.Faults())
        clock.advance(by: Double(Defaults.maxReserveTTLMilliseconds) / 1000)
        for _ in 0..<8 {
            for drop in nodes.keys.sorted() {
                try await perform(nodes[drop]!.machine.tick(now: clock.now()), on: drop)
                repeat { try await complete(drop) } while nodes[drop]!.inFlight != nil
            }
        }
        try await checkInvariants()
        // Units return: the counters-match-rows check above proves `reserved` counts only the
        // holds still ACTIVE, and none of those may be overdue.
        let (_, reservations, _) = await store.contents()
        if let overdue = reservations.first(where: { $0.status == .active && $0.expiresAt <= clock.now() }) {
            throw failure("4 holds expire", "reservation \(overdue.id) is ACTIVE past its expiry")
        }
    }

    private func failure(_ invariant: String, _ detail: String) -> SimulationFailure {
        SimulationFailure(seed: seed, step: step, invariant: invariant, detail: detail)
    }
}
