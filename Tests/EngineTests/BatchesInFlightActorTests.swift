// A drop's actor with two batches in flight, against a store whose lock words, commits and
// answers the test orders: the second batch goes only on the first's lock word, the machine
// takes verdicts in the order the batches were sent though their answers come back reversed,
// a failure waits for the batch behind it, and shutdown drains both.
import Engine
import Foundation
import Testing

@Suite struct BatchesInFlightActorTests {
    let store = GatedBatchStore(InMemoryStore(clock: SystemClock()))

    func engine() -> ActorEngine { ActorEngine(store: store, drivesTimers: false, maxBatchClaims: 3) }

    /// Sends batch 0 (user 1, less than a full batch, so it asks for no word of the lock),
    /// then batch 1 (users 2, 3, 4) once batch 0 has landed, and, on batch 1's lock word,
    /// batch 2 (users 5, 6, 7) behind it.
    func twoInFlight(
        _ engine: ActorEngine, _ drop: DropID
    ) async throws -> (lead: [Task<ReserveOutcome, any Error>], behind: [Task<ReserveOutcome, any Error>]) {
        let first = Task { try await engine.reserve(drop: drop, user: 1) }
        try await ActivationOrderTests.waitUntil("the first batch is sent") { store.batchesSent == 1 }
        #expect(!store.asksForLock(0), "a batch of one claim asks for no word of the lock")
        let lead = (2...4).map { user in Task { try await engine.reserve(drop: drop, user: UserID(user)) } }
        try await ActivationOrderTests.waitUntil("a full batch waits") { await engine.queuedClaims() == 3 }
        #expect(store.batchesSent == 1, "nothing goes behind a batch that asked for no word")
        await store.commit(0)
        store.answer(0)
        #expect(Self.holder(try await first.value) == 1)
        try await ActivationOrderTests.waitUntil("the full batch goes") { store.batchesSent == 2 }
        #expect(store.batch(1).items.map(\.userID) == [2, 3, 4] && store.asksForLock(1))
        let behind = (5...7).map { user in Task { try await engine.reserve(drop: drop, user: UserID(user)) } }
        try await ActivationOrderTests.waitUntil("a full batch waits") { await engine.queuedClaims() == 3 }
        #expect(store.batchesSent == 2, "nothing goes behind a batch the store has not said holds the lock")
        store.lock(1)
        try await ActivationOrderTests.waitUntil("the full batch goes behind the first") { store.batchesSent == 3 }
        #expect(store.batch(2).items.map(\.userID) == [5, 6, 7])
        return (lead, behind)
    }

    static func holder(_ outcome: ReserveOutcome) -> UserID? {
        if case .reserved(let hold) = outcome { hold.userID } else { nil }
    }

    @Test func verdictsAreTakenInTheOrderTheBatchesWereSent() async throws {
        let engine = engine()
        let drop = try await engine.createDrop(DropSpec(name: "pipelined", priceCents: 1, totalStock: 100))
        let (lead, behind) = try await twoInFlight(engine, drop.id)
        await store.commit(1)
        await store.commit(2)
        // The second batch's answer comes back first: the actor keeps it for after the first's.
        store.answer(2)
        store.answer(1)
        for (task, user) in zip(lead, 2...4) { #expect(Self.holder(try await task.value) == UserID(user)) }
        for (task, user) in zip(behind, 5...7) { #expect(Self.holder(try await task.value) == UserID(user)) }
        // The drop goes on, and shutdown drains a batch in flight.
        let next = Task { try await engine.reserve(drop: drop.id, user: 8) }
        try await ActivationOrderTests.waitUntil("the next batch is sent") { store.batchesSent == 4 }
        let down = Task { await engine.shutdown() }
        await store.commit(3)
        store.answer(3)
        #expect(Self.holder(try await next.value) == 8)
        await down.value
    }

    @Test func aBatchBehindAFailedOneIsAnsweredByTheStoreAndThenMemoryReloads() async throws {
        let engine = engine()
        // Stock for all seven: none of them waits on the batches before it to be decided.
        let drop = try await engine.createDrop(DropSpec(name: "pipelined", priceCents: 1, totalStock: 7))
        let (lead, behind) = try await twoInFlight(engine, drop.id)
        store.refuse(1, EngineError(.batchFailed, "refused by the test"))
        await store.commit(2)
        store.answer(2)
        store.answer(1)
        for task in lead { await #expect(throws: EngineError.self) { try await task.value } }
        for (task, user) in zip(behind, 5...7) { #expect(Self.holder(try await task.value) == UserID(user)) }
        // Memory reloaded from the store, where users 1, 5, 6 and 7 hold units; the next
        // buyer is decided from it.
        let next = Task { try await engine.reserve(drop: drop.id, user: 8) }
        try await ActivationOrderTests.waitUntil("the next batch is sent") { store.batchesSent == 4 }
        await store.commit(3)
        store.answer(3)
        #expect(Self.holder(try await next.value) == 8)
        #expect(await engine.activeHoldCount(of: drop.id) == 5)
        await engine.shutdown()
    }
}
