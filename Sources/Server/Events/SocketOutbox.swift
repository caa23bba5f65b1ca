// One subscriber's pending events. A slow socket never stalls the engine or the other
// sockets: publishing only appends here. Stock values are kept one per drop (a newer value
// replaces an unsent older one, so the socket always ends on the latest), other events in a
// bounded queue that drops its oldest when full (the socket is told how many it missed).
import DequeModule
import Engine
import Synchronization

final class SocketOutbox: Sendable {
    let userID: UserID
    private let capacity: Int
    private struct State {
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
            if event.type == .stockChanged, let drop = event.dropId {
                if state.stock.updateValue(event, forKey: drop) == nil { state.stockOrder.append(drop) }
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

    /// Waits until something is pending (or the outbox closes), then takes all of it:
    /// feed events first, then the latest stock value of each drop; nil once closed.
    func take() async -> (events: [LiveEvent], dropped: Int)? {
        while true {
            let taken = state.withLock { state -> (events: [LiveEvent], dropped: Int)?? in
                if state.closed { return .some(nil) }
                guard !state.events.isEmpty || !state.stock.isEmpty else { return nil }
                let events = Array(state.events) + state.stockOrder.compactMap { state.stock[$0] }
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
                    if state.closed || !state.events.isEmpty || !state.stock.isEmpty { return true }
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
