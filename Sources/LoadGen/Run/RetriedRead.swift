// A read of the harness's own (the clock offset, the checker, the watchers' last counters)
// through a database that may be failing over or restarting: a connection lost or refused, or
// a server shutting down (SQLSTATE class 57P), is tried again on a new connection (the pool
// replaces a broken one) until the bound; an error the server answered for the query itself
// is not, nor is one past the bound. Reads only: nothing here may be applied twice.
import Engine

enum RetriedRead {
    static func run<T: Sendable>(
        seconds: Int = LoadDefaults.databaseRecoverySeconds, _ read: () async throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now.advanced(by: .seconds(seconds))
        while true {
            do {
                return try await read()
            } catch let error as PostgresError where Self.isTransient(error) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    static func isTransient(_ error: PostgresError) -> Bool {
        error.isConnectionFailure || error.sqlState?.hasPrefix("57P") == true
    }
}
