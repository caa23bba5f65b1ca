// The harness's own reads through a database failing over: connection failures and a server
// shutting down are read again, within the bound; an error about the query itself is not.
import Engine
import Synchronization
import Testing

@testable import LoadGen

@Suite struct RetriedReadTests {
    @Test func aLostConnectionIsReadAgainUntilTheReadSucceeds() async throws {
        let attempts = Mutex(0)
        let failures: [PostgresError] = [
            PostgresError(kind: .connection, message: "server closed the connection unexpectedly"),
            PostgresError(
                kind: .server, sqlState: "57P01", message: "terminating connection due to administrator command"),
            PostgresError(kind: .timeout, message: "no answer"),
        ]
        // A bound far past what three retries take, even on a pool every other suite keeps busy
        // (a full run once took 13 s over them): this test is about what is retried.
        let value = try await RetriedRead.run(seconds: 600) {
            let attempt = attempts.withLock { count in
                count += 1
                return count
            }
            if attempt <= failures.count { throw failures[attempt - 1] }
            return 42
        }
        #expect(value == 42)
        #expect(attempts.withLock { $0 } == 4)
    }

    @Test func anErrorAboutTheQueryIsNotReadAgain() async throws {
        let attempts = await Self.attempts(
            failingWith: PostgresError(kind: .server, sqlState: "42P01", message: "relation does not exist"),
            seconds: 600)
        #expect(attempts == 1)
    }

    @Test func aDatabaseGoneLongerThanTheBoundFailsTheRead() async throws {
        let attempts = await Self.attempts(
            failingWith: PostgresError(kind: .connection, message: "connection refused"), seconds: 1)
        #expect(attempts > 1)
    }

    /// How many times a read that always fails with `error` was tried before the error
    /// reached the caller (which it must).
    static func attempts(failingWith error: PostgresError, seconds: Int) async -> Int {
        let attempts = Mutex(0)
        await #expect(throws: PostgresError.self) {
            try await RetriedRead.run(seconds: seconds) {
                attempts.withLock { $0 += 1 }
                throw error
            }
        }
        return attempts.withLock { $0 }
    }
}
