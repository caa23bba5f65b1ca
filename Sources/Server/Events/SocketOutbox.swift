// One subscriber's pending events. A slow socket never stalls the engine or the other
// sockets: publishing only appends here. Stock values are kept one per drop (a newer value
// replaces an unsent older one, so the socket always ends on the latest), other events in a
// bounded queue that drops its oldest when full (the socket is told how many it missed). A
// snapshot never competes for the queue: the hub's go first and keep what is pending
// (`initial`, they may be older than it); any other supersedes what is pending. Frames are
// encoded once by the hub; the outbox only orders them.
import DequeModule
import Engine
import Synchronization

final class SocketOutbox: Sendable {
    let userID: UserID
    private let capacity: Int
    private struct State {
        var snapshot: LiveFrame?
        var events: Deque<LiveFrame> = []
        var stock: [DropID: LiveFrame] = [:]
        var stockOrder: [DropID] = []
        var dropped = 0
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
        /// Closed because the server is shutting down: the socket says so (1001, going away).
        var goingAway = false
        var farewellSent = false
    }
    private let state = Mutex(State())

    init(userID: UserID, capacity: Int) {
        self.userID = userID
        self.capacity = capacity
    }

    /// Queues a frame; true when the queue was full and its oldest feed event was dropped.
    /// A socket's first snapshot (`initial`) goes first and keeps what is already pending: it
    /// may be up to a second old (cached), and what arrived since subscribing is newer.
    @discardableResult
    func push(_ frame: LiveFrame, initial: Bool = false) -> Bool {
        let event = frame.event
        let (waiter, dropped) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            guard !state.closed else { return (nil, false) }
            var dropped = false
            if event.type == .snapshot {
                state.snapshot = frame
                if !initial {
                    state.events.removeAll()
                    state.stock.removeAll()
                    state.stockOrder.removeAll()
                }
            } else if event.type == .stockChanged, let drop = event.dropId {
                if let pending = state.stock[drop] {
                    if (pending.event.version ?? 0) <= (event.version ?? 0) { state.stock[drop] = frame }
                } else {
                    state.stock[drop] = frame
                    state.stockOrder.append(drop)
                }
            } else {
                if state.events.count >= capacity {
                    state.events.removeFirst()
                    state.dropped += 1
                    dropped = true
                }
                state.events.append(frame)
            }
            defer { state.waiter = nil }
            return (state.waiter, dropped)
        }
        waiter?.resume()
        return dropped
    }

    /// Waits until something is pending (or the outbox closes, or the task is cancelled),
    /// then takes all of it: a snapshot, feed events, then the latest stock value of each
    /// drop; nil once closed.
    func take() async -> (frames: [LiveFrame], dropped: Int)? {
        await withTaskCancellationHandler {
            await waitAndTake()
        } onCancel: {
            close()
        }
    }

    private static func hasPending(_ state: State) -> Bool {
        state.snapshot != nil || !state.events.isEmpty || !state.stock.isEmpty
    }

    private func waitAndTake() async -> (frames: [LiveFrame], dropped: Int)? {
        while true {
            let taken = state.withLock { state -> (frames: [LiveFrame], dropped: Int)?? in
                if state.closed { return .some(nil) }
                guard Self.hasPending(state) else { return nil }
                let events =
                    (state.snapshot.map { [$0] } ?? []) + Array(state.events)
                    + state.stockOrder.compactMap { state.stock[$0] }
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
        close(goingAway: false)
    }

    /// The server is shutting down: `take` ends, and the socket's writer closes it with 1001
    /// (going away) rather than the 1000 (normal closure) a socket's end would get.
    func closeGoingAway() {
        close(goingAway: true)
    }

    /// Whether this outbox was closed by the shutdown (and not already closed before it).
    var isGoingAway: Bool { state.withLock { $0.goingAway } }

    /// The socket's writer has sent its close frame for the shutdown (or could not).
    func farewellSent() { state.withLock { $0.farewellSent = true } }

    /// Whether the shutdown still waits for this socket's close frame.
    var awaitsFarewell: Bool { state.withLock { $0.goingAway && !$0.farewellSent } }

    private func close(goingAway: Bool) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if goingAway && !state.closed { state.goingAway = true }
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
