// Where finished virtual users leave their traces, and where the run waits for the last one.
import Engine
import Synchronization

final class TraceCollector: Sendable {
    private struct State {
        var traces: [(DropID, VirtualUser.Trace)] = []
        var waiter: CheckedContinuation<[(DropID, VirtualUser.Trace)], Never>?
    }

    private let expected: Int
    private let state = Mutex(State())

    init(expected: Int) {
        self.expected = expected
        state.withLock { $0.traces.reserveCapacity(expected) }
    }

    func add(_ trace: (DropID, VirtualUser.Trace)) {
        let finished: (CheckedContinuation<[(DropID, VirtualUser.Trace)], Never>, [(DropID, VirtualUser.Trace)])? = state.withLock { state in
            state.traces.append(trace)
            guard state.traces.count == expected, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter, state.traces)
        }
        if let (waiter, traces) = finished { waiter.resume(returning: traces) }
    }

    /// Every trace, once all `expected` users have finished.
    func all() async -> [(DropID, VirtualUser.Trace)] {
        await withCheckedContinuation { continuation in
            let ready: [(DropID, VirtualUser.Trace)]? = state.withLock { state in
                if state.traces.count == expected { return state.traces }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
