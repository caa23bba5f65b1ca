// A store whose batches wait for the test: it says when each one holds the drop's lock, when it
// commits (in the store's order) and when its caller hears back (in any order), so a test can
// put a drop's actor through orders a real database only sometimes produces.
import Engine
import Foundation
import Synchronization

final class GatedBatchStore: InMemoryForwarding {
    let base: InMemoryStore
    private struct Pending {
        var batch: ClaimBatch
        /// Nil: the actor asked for no word of the lock.
        var locked: (@Sendable () -> Void)?
        var outcome: Result<BatchOutcome, any Error>?
        var caller: CheckedContinuation<BatchOutcome, any Error>?
    }
    /// Every batch the actor sent, in the order it sent them.
    private let pending = Mutex<[Pending]>([])

    init(_ base: InMemoryStore) { self.base = base }

    var batchesSent: Int { pending.withLock { $0.count } }
    func batch(_ index: Int) -> ClaimBatch { pending.withLock { $0[index].batch } }

    /// Whether the actor asked to hear when the store holds the drop's lock for batch `index`.
    func asksForLock(_ index: Int) -> Bool { pending.withLock { $0[index].locked != nil } }

    /// The store holds the drop's lock for batch `index`.
    func lock(_ index: Int) {
        guard let locked = pending.withLock({ $0[index].locked }) else {
            preconditionFailure("batch \(index) asked for no word of the lock")
        }
        locked()
    }

    /// Batch `index` commits now (its caller has not heard yet).
    func commit(_ index: Int) async {
        let batch = self.batch(index)
        let outcome: Result<BatchOutcome, any Error>
        do { outcome = .success(try await base.apply(batch)) } catch { outcome = .failure(error) }
        pending.withLock { $0[index].outcome = outcome }
    }

    /// Batch `index` is refused: nothing applied.
    func refuse(_ index: Int, _ error: EngineError) {
        pending.withLock { $0[index].outcome = .failure(error) }
    }

    /// Batch `index`'s caller hears its outcome.
    func answer(_ index: Int) {
        let (caller, outcome) = pending.withLock { state in
            defer { state[index].caller = nil }
            return (state[index].caller, state[index].outcome)
        }
        guard let caller, let outcome else { preconditionFailure("batch \(index) unsent, answered or undecided") }
        caller.resume(with: outcome)
    }

    func apply(_ batch: ClaimBatch, locked: @escaping @Sendable () -> Void) async throws -> BatchOutcome {
        try await gate(batch, locked: locked)
    }

    func apply(_ batch: ClaimBatch) async throws -> BatchOutcome {
        try await gate(batch, locked: nil)
    }

    private func gate(_ batch: ClaimBatch, locked: (@Sendable () -> Void)?) async throws -> BatchOutcome {
        try await withCheckedThrowingContinuation { caller in
            pending.withLock { $0.append(Pending(batch: batch, locked: locked, outcome: nil, caller: caller)) }
        }
    }
}
