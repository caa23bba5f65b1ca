// Blocking work (waiting for a child process, pg_ctl, a file lock) on a thread of its own.
// Swift's cooperative pool has as many threads as cores, two here: one blocked wait there
// halves every task's progress in the process, two stop it.
import Foundation

public enum OffPool {
    /// Runs `work` on a new thread and resumes the caller with its result.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    /// The same for work that cannot fail.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: work()) }
        }
    }
}
