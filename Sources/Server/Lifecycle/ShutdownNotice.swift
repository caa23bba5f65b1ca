// Says when a graceful shutdown began, before the HTTP server drains. With the engine's own
// notices after it, an instance's log then shows which step of the shutdown it was in when
// it did not exit (a cluster at `--log-level notice` logs these and no request lines).
import Logging
import ServiceLifecycle

public struct ShutdownNotice: Service {
    let logger: Logger
    let draining: DrainingFlag

    public init(logger: Logger, draining: DrainingFlag) {
        self.logger = logger
        self.draining = draining
    }

    public func run() async throws {
        try? await gracefulShutdown()
        draining.begin()
        logger.notice(
            "shutting down: draining requests for at most \(ServerDefaults.gracefulShutdownMilliseconds) ms, then cancelling"
        )
    }
}
