// Claims that reach a drop while its actor is being activated keep the order they came in:
// the first buyers of a sale are the ones who come during the drop's load, and they must not
// lose to buyers who came after it (they did: 14,244 of them heard `sold_out` at a 50,000-buyer
// sale's first instant while later buyers took every unit). The load is held open by a store
// whose lease grant waits for the test, so the order is the test's, not the machine's timing.
import Engine
import Foundation
import Testing

@Suite struct ActivationOrderTests {
    /// Waits until `condition` holds; a test whose condition never comes fails after 30 s
    /// instead of hanging the suite.
    static func waitUntil(_ what: String, _ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while await !condition() {
            guard ContinuousClock.now < deadline else { throw WaitedTooLong(what: what) }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    struct WaitedTooLong: Error { let what: String }

    /// Starts a reserve for each user in turn, each once the one before is waiting in line.
    private static func reserveInLine(
        _ engine: ActorEngine, _ drop: DropID, _ users: ClosedRange<Int>
    ) async throws -> [Task<ReserveOutcome, any Error>] {
        var tasks: [Task<ReserveOutcome, any Error>] = []
        for (index, user) in users.enumerated() {
            tasks.append(Task { try await engine.reserve(drop: drop, user: UserID(user)) })
            try await waitUntil("\(index + 1) claims in line") { await engine.queuedClaims() >= index + 1 }
        }
        return tasks
    }

    private static func winners(_ tasks: [Task<ReserveOutcome, any Error>], _ users: [Int]) async throws -> [Int] {
        var winners: [Int] = []
        for (task, user) in zip(tasks, users) {
            if case .reserved = try await task.value { winners.append(user) }
        }
        return winners
    }

    @Test func buyersWhoCameDuringTheLoadGoFirstInTheOrderTheyCame() async throws {
        let store = GatedLeaseStore(InMemoryStore(clock: SystemClock()))
        let engine = ActorEngine(store: store, drivesTimers: false)
        let drop = try await engine.createDrop(DropSpec(name: "Gated", priceCents: 100, totalStock: 10))
        let early = try await Self.reserveInLine(engine, drop.id, 1...100)
        #expect(await engine.queuedClaims() == 100, "the gauge counts the claims waiting for the load")
        store.open()
        // Buyers who come as the load ends: every one of them is behind the line.
        let late = (1_001...1_100).map { user in Task { try await engine.reserve(drop: drop.id, user: UserID(user)) } }
        let won = try await Self.winners(early + late, Array(1...100) + Array(1_001...1_100))
        #expect(won == Array(1...10))
        for task in late { #expect(try await task.value == .soldOut) }
        await engine.shutdown()
    }

    /// After a restart the first claims of a drop are often its holders' purchases and cancels:
    /// in line, they are decided on the drop as loaded, as any other claim.
    @Test func purchasesAndCancelsInLineSettleTheHoldsTheLoadFound() async throws {
        let memory = InMemoryStore(clock: SystemClock())
        let before = ActorEngine(store: memory)
        let drop = try await before.createDrop(DropSpec(name: "Restarted", priceCents: 100, totalStock: 2))
        for user in [1, 2] {
            guard case .reserved = try await before.reserve(drop: drop.id, user: UserID(user)) else {
                Issue.record("user \(user) did not get a unit")
                return
            }
        }
        await before.shutdown()  // lets the lease go
        let store = GatedLeaseStore(memory)
        let after = ActorEngine(store: store, drivesTimers: false)
        let purchase = Task { try await after.purchase(drop: drop.id, user: 1, idempotencyKey: "k1") }
        try await Self.waitUntil("the purchase in line") { await after.queuedClaims() >= 1 }
        let cancel = Task { try await after.cancel(drop: drop.id, user: 2) }
        try await Self.waitUntil("the cancel in line") { await after.queuedClaims() >= 2 }
        store.open()
        guard case .purchased(_, replayed: false) = try await purchase.value else {
            Issue.record("the purchase in line did not buy the loaded hold")
            return
        }
        guard case .cancelled = try await cancel.value else {
            Issue.record("the cancel in line did not find the loaded hold")
            return
        }
        guard case .reserved = try await after.reserve(drop: drop.id, user: 3) else {
            Issue.record("the unit the cancel freed was not the next buyer's")
            return
        }
        await after.shutdown()
    }

    /// An engine told to shut down while a drop's lease is being asked for starts no actor
    /// after it: the claims in line hear `shutting_down` (nothing applied) and the lease goes
    /// back at once, so another instance takes the drop without waiting for it to lapse.
    @Test func aLoadThatEndsAfterShutdownStartsNoActorAndGivesTheLeaseBack() async throws {
        let memory = InMemoryStore(clock: SystemClock())
        let store = GatedLeaseStore(memory)
        let engine = ActorEngine(store: store, owner: LeaseOwner(instance: "a", leaseMilliseconds: 60_000))
        let drop = try await engine.createDrop(DropSpec(name: "Gated", priceCents: 100, totalStock: 5))
        let line = try await Self.reserveInLine(engine, drop.id, 1...3)
        await engine.shutdown()
        store.open()
        for task in line {
            do {
                _ = try await task.value
                Issue.record("a claim was decided by an engine that had shut down")
            } catch let error as EngineError {
                #expect(error.code == .shuttingDown, "\(error)")
            }
        }
        #expect(await memory.contents().reservations.isEmpty)
        let other = LeaseOwner(instance: "b", leaseMilliseconds: 60_000)
        guard case .granted = try await memory.acquireLease(on: drop.id, for: other) else {
            Issue.record("the lease was kept by an engine that had shut down")
            return
        }
    }

    @Test func aLineForADropThatDoesNotExistIsAnsweredUnknown() async throws {
        let store = GatedLeaseStore(InMemoryStore(clock: SystemClock()))
        let engine = ActorEngine(store: store, drivesTimers: false)
        let line = try await Self.reserveInLine(engine, 404, 1...3)
        store.open()
        for task in line { #expect(try await task.value == .unknownDrop) }
        #expect(await engine.queuedClaims() == 0)
        await engine.shutdown()
    }

    @Test func aLineForADropAnotherInstanceOwnsIsToldTheOwner() async throws {
        let memory = InMemoryStore(clock: SystemClock())
        let owner = ActorEngine(store: memory, owner: LeaseOwner(instance: "a", leaseMilliseconds: 60_000))
        let drop = try await owner.createDrop(DropSpec(name: "Owned", priceCents: 100, totalStock: 5))
        guard case .reserved = try await owner.reserve(drop: drop.id, user: 1) else {
            Issue.record("the owner did not take the drop")
            return
        }
        let store = GatedLeaseStore(memory)
        let other = ActorEngine(
            store: store, owner: LeaseOwner(instance: "b", leaseMilliseconds: 60_000), drivesTimers: false)
        let line = try await Self.reserveInLine(other, drop.id, 2...4)
        store.open()
        for task in line {
            do {
                _ = try await task.value
                Issue.record("a claim in line was decided by an instance that does not own the drop")
            } catch let error as EngineError {
                #expect(error.code == .notOwner && error.owner == "a", "\(error)")
            }
        }
        #expect(await memory.contents().reservations.count == 1, "nothing was applied for the refused claims")
        await other.shutdown()
        await owner.shutdown()
    }

    @Test func aLineWhoseLoadFailedHearsTheFailure() async throws {
        let store = GatedLeaseStore(
            InMemoryStore(clock: SystemClock()), failing: EngineError(.storeUnavailable, "planted"))
        let engine = ActorEngine(store: store, drivesTimers: false)
        let drop = try await engine.createDrop(DropSpec(name: "Gated", priceCents: 100, totalStock: 5))
        let line = try await Self.reserveInLine(engine, drop.id, 1...3)
        store.open()
        for task in line {
            await #expect(throws: EngineError.self) { try await task.value }
        }
        #expect(await store.base.contents().reservations.isEmpty)
        await engine.shutdown()
    }
}
