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

    /// Sends batch 0 (user 1) and then, on its lock word, batch 1 (users 2, 3, 4).
    func twoInFlight(
        _ engine: ActorEngine, _ drop: DropID
    ) async throws -> (Task<ReserveOutcome, any Error>, [Task<ReserveOutcome, any Error>]) {
        let first = Task { try await engine.reserve(drop: drop, user: 1) }
        try await ActivationOrderTests.waitUntil("the first batch is sent") { store.batchesSent == 1 }
        let behind = (2...4).map { user in Task { try await engine.reserve(drop: drop, user: UserID(user)) } }
        try await ActivationOrderTests.waitUntil("a full batch waits") { await engine.queuedClaims() == 3 }
        #expect(store.batchesSent == 1, "nothing goes behind a batch the store has not said holds the lock")
        store.lock(0)
        try await ActivationOrderTests.waitUntil("the full batch goes behind the first") { store.batchesSent == 2 }
        #expect(store.batch(1).items.map(\.userID) == [2, 3, 4])
        return (first, behind)
    }

    static func holder(_ outcome: ReserveOutcome) -> UserID? {
        if case .reserved(let hold) = outcome { hold.userID } else { nil }
    }

    @Test func verdictsAreTakenInTheOrderTheBatchesWereSent() async throws {
        let engine = engine()
        let drop = try await engine.createDrop(DropSpec(name: "pipelined", priceCents: 1, totalStock: 100))
        let (first, behind) = try await twoInFlight(engine, drop.id)
        await store.commit(0)
        await store.commit(1)
        // The second batch's answer comes back first: the actor keeps it for after the first's.
        store.answer(1)
        store.answer(0)
        #expect(Self.holder(try await first.value) == 1)
        for (task, user) in zip(behind, 2...4) { #expect(Self.holder(try await task.value) == UserID(user)) }
        // The drop goes on, and shutdown drains a batch in flight.
        let next = Task { try await engine.reserve(drop: drop.id, user: 5) }
        try await ActivationOrderTests.waitUntil("the next batch is sent") { store.batchesSent == 3 }
        let down = Task { await engine.shutdown() }
        await store.commit(2)
        store.answer(2)
        #expect(Self.holder(try await next.value) == 5)
        await down.value
    }

    @Test func aBatchBehindAFailedOneIsAnsweredByTheStoreAndThenMemoryReloads() async throws {
        let engine = engine()
        let drop = try await engine.createDrop(DropSpec(name: "pipelined", priceCents: 1, totalStock: 4))
        let (first, behind) = try await twoInFlight(engine, drop.id)
        store.refuse(0, EngineError(.batchFailed, "refused by the test"))
        await store.commit(1)
        store.answer(1)
        store.answer(0)
        await #expect(throws: EngineError.self) { try await first.value }
        for (task, user) in zip(behind, 2...4) { #expect(Self.holder(try await task.value) == UserID(user)) }
        // Memory reloaded from the store: one unit is left, and the next buyer gets it.
        let next = Task { try await engine.reserve(drop: drop.id, user: 6) }
        try await ActivationOrderTests.waitUntil("the next batch is sent") { store.batchesSent == 3 }
        await store.commit(2)
        store.answer(2)
        #expect(Self.holder(try await next.value) == 6)
        #expect(try await engine.reserve(drop: drop.id, user: 7) == .soldOut, "memory knows the drop sold out")
        await engine.shutdown()
    }
}
