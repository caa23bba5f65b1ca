// A store whose lease grants wait until the test opens the gate: claims then arrive at a drop
// whose actor is still being activated, as they do at a sale's first instant, when thousands
// of buyers come while the drop is loaded.
import Engine
import Foundation
import Synchronization

final class GatedLeaseStore: InMemoryForwarding {
    let base: InMemoryStore
    private let gate = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))
    /// What a lease grant throws once the gate opens (nil: it asks the base store).
    let failure: EngineError?

    init(_ base: InMemoryStore, failing failure: EngineError? = nil) {
        self.base = base
        self.failure = failure
    }

    /// Lets every lease grant asked for so far, and every later one, go ahead.
    func open() {
        let waiting = gate.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func acquireLease(on drop: DropID, for owner: LeaseOwner) async throws -> LeaseGrant? {
        await withCheckedContinuation { continuation in
            let open = gate.withLock { state in
                if !state.open { state.waiting.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
        if let failure { throw failure }
        return try await base.acquireLease(on: drop, for: owner)
    }
}
