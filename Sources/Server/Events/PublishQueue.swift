// The relay's outgoing events: appended by the hub without blocking, taken by the publisher in
// batches it pipelines to Redis in one round trip. Bounded: when Redis is slower than the
// commits, the oldest events go and are counted (subscribers resynchronize from a snapshot
// when their relay recovers; stock values are superseded by later ones anyway).
import DequeModule
import Synchronization

final class PublishQueue: Sendable {
    private let capacity: Int
    private struct State {
        var events: Deque<LiveEvent> = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }
    private let state = Mutex(State())
    private let dropped = Atomic<Int>(0)

    init(capacity: Int) { self.capacity = capacity }

    /// Events dropped since start: the queue was full, or their publish failed.
    var droppedCount: Int { dropped.load(ordering: .relaxed) }

    func countDropped(_ count: Int) { dropped.add(count, ordering: .relaxed) }

    func push(_ event: LiveEvent) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            if state.events.count >= capacity {
                state.events.removeFirst()
                dropped.add(1, ordering: .relaxed)
            }
            state.events.append(event)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Up to `limit` events, waiting for the first; nil once finished.
    func take(limit: Int) async -> [LiveEvent]? {
        while true {
            let taken = state.withLock { state -> [LiveEvent]?? in
                if state.finished { return .some(nil) }
                guard !state.events.isEmpty else { return nil }
                let count = min(limit, state.events.count)
                let batch = Array(state.events.prefix(count))
                state.events.removeFirst(count)
                return .some(batch)
            }
            if let taken { return taken }
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.finished || !state.events.isEmpty { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
