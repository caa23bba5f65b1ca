// Waits for `work` or a timeout, whichever comes first. Unlike a task group, it does not wait
// for the loser: a database call stuck in a blocking libpq read must not hang a probe.
import Synchronization

func firstOf<T: Sendable>(timeout: Duration, orElse fallback: T, _ work: @escaping @Sendable () async -> T) async -> T {
    let slot = Mutex<CheckedContinuation<T, Never>?>(nil)
    return await withCheckedContinuation { continuation in
        slot.withLock { $0 = continuation }
        let finish: @Sendable (T) -> Void = { value in
            slot.withLock { $0.take() }?.resume(returning: value)
        }
        Task { finish(await work()) }
        Task {
            try? await Task.sleep(for: timeout)
            finish(fallback)
        }
    }
}
