// Counters every virtual user bumps as it goes, read once a second for the progress line.
// Atomics, not a lock: 100,000 users must not queue behind one another to count.
import Synchronization

public final class LiveCounters: Sendable {
    let sent = Atomic<Int>(0)
    let ok = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let reserved = Atomic<Int>(0)
    let arrived = Atomic<Int>(0)

    public init() {}

    func record(_ result: OperationRecord.Result, _ operation: OperationKind) {
        switch result {
        case .ok:
            ok.add(1, ordering: .relaxed)
            if operation == .reserve { reserved.add(1, ordering: .relaxed) }
        case .rejected: rejected.add(1, ordering: .relaxed)
        case .failed, .error, .timeout: errors.add(1, ordering: .relaxed)
        }
    }

    public var snapshot: LiveSnapshot {
        LiveSnapshot(
            arrived: arrived.load(ordering: .relaxed), sent: sent.load(ordering: .relaxed),
            ok: ok.load(ordering: .relaxed),
            rejected: rejected.load(ordering: .relaxed), errors: errors.load(ordering: .relaxed),
            reserved: reserved.load(ordering: .relaxed))
    }
}

public struct LiveSnapshot: Sendable, Equatable {
    public var arrived, sent, ok, rejected, errors, reserved: Int
}
