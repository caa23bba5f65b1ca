// Says when a graceful shutdown began, before the HTTP server drains. With the engine's own
// notices after it, an instance's log then shows which step of the shutdown it was in when
// it did not exit (a cluster at `--log-level notice` logs these and no request lines).
import Logging
import ServiceLifecycle

public struct ShutdownNotice: Service {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func run() async throws {
        try? await gracefulShutdown()
        logger.notice(
            "shutting down: draining requests for at most \(ServerDefaults.gracefulShutdownMilliseconds) ms, then cancelling"
        )
    }
}
