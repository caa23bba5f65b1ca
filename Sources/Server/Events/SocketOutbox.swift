// One subscriber's pending events. A slow socket never stalls the engine or the other
// sockets: publishing only appends here. Stock values are kept one per drop (a newer value
// replaces an unsent older one, so the socket always ends on the latest), other events in a
// bounded queue that drops its oldest when full (the socket is told how many it missed). A
// snapshot supersedes everything pending before it and never competes for the queue.
import DequeModule
import Engine
import Synchronization

final class SocketOutbox: Sendable {
    let userID: UserID
    private let capacity: Int
    private struct State {
        var snapshot: LiveEvent?
        var events: Deque<LiveEvent> = []
        var stock: [DropID: LiveEvent] = [:]
        var stockOrder: [DropID] = []
        var dropped = 0
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
    }
    private let state = Mutex(State())

    init(userID: UserID, capacity: Int) {
        self.userID = userID
        self.capacity = capacity
    }

    func push(_ event: LiveEvent) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.closed else { return nil }
            if event.type == .snapshot {
                state.snapshot = event
                state.events.removeAll()
                state.stock.removeAll()
                state.stockOrder.removeAll()
            } else if event.type == .stockChanged, let drop = event.dropId {
                if let pending = state.stock[drop] {
                    if (pending.version ?? 0) <= (event.version ?? 0) { state.stock[drop] = event }
                } else {
                    state.stock[drop] = event
                    state.stockOrder.append(drop)
                }
            } else {
                if state.events.count >= capacity {
                    state.events.removeFirst()
                    state.dropped += 1
                }
                state.events.append(event)
            }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until something is pending (or the outbox closes, or the task is cancelled),
    /// then takes all of it: a snapshot, feed events, then the latest stock value of each
    /// drop; nil once closed.
    func take() async -> (events: [LiveEvent], dropped: Int)? {
        await withTaskCancellationHandler {
            await waitAndTake()
        } onCancel: {
            close()
        }
    }

    private static func hasPending(_ state: State) -> Bool {
        state.snapshot != nil || !state.events.isEmpty || !state.stock.isEmpty
    }

    private func waitAndTake() async -> (events: [LiveEvent], dropped: Int)? {
        while true {
            let taken = state.withLock { state -> (events: [LiveEvent], dropped: Int)?? in
                if state.closed { return .some(nil) }
                guard Self.hasPending(state) else { return nil }
                let events = (state.snapshot.map { [$0] } ?? []) + Array(state.events) + state.stockOrder.compactMap { state.stock[$0] }
                state.snapshot = nil
                let dropped = state.dropped
                state.events.removeAll()
                state.stock.removeAll()
                state.stockOrder.removeAll()
                state.dropped = 0
                return .some((events, dropped))
            }
            if let taken { return taken }
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Bool in
                    if state.closed || Self.hasPending(state) { return true }
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
