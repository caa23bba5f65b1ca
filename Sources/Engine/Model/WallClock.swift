// Time as a parameter. Holds expire by wall-clock instants that PostgreSQL also reads, so the
// engine's clock tells dates; tests and simulations drive a ManualClock instead.
import Foundation
import Synchronization

public protocol WallClock: Sendable {
    func now() -> Date
    /// Returns once `now() >= deadline`, or throws CancellationError.
    func sleep(until deadline: Date) async throws
}

public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .microseconds(Int64(seconds * 1_000_000))) }
    }
}

/// A clock that moves only when told to; sleepers wake when it passes their deadline.
public final class ManualClock: WallClock {
    private struct State {
        var now: Date
        var sleepers: [(deadline: Date, continuation: CheckedContinuation<Void, any Error>)] = []
    }
    private let state: Mutex<State>

    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        state = Mutex(State(now: start))
    }

    public func now() -> Date { state.withLock { $0.now } }

    public func advance(by interval: TimeInterval) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.now += interval
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }.map(\.continuation)
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for continuation in woken { continuation.resume() }
    }

    public func sleep(until deadline: Date) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready = state.withLock { state -> Bool in
                if state.now >= deadline { return true }
                state.sleepers.append((deadline, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
