// Says when a graceful shutdown began, before the HTTP server drains, and closes the live
// sockets saying the server is going away (1001), so their clients reconnect (to another
// instance) rather than read it as the end of the feed. With the engine's own notices after
// it, an instance's log then shows which step of the shutdown it was in when it did not exit
// (a cluster at `--log-level notice` logs these and no request lines).
import Logging
import ServiceLifecycle

public struct ShutdownNotice: Service {
    let logger: Logger
    let draining: DrainingFlag
    /// Closed with 1001 (going away) before the HTTP server drains (nil: no live sockets).
    let sockets: SocketRegistry?

    public init(logger: Logger, draining: DrainingFlag, sockets: SocketRegistry?) {
        self.logger = logger
        self.draining = draining
        self.sockets = sockets
    }

    public func run() async throws {
        let graceful = (try? await gracefulShutdown()) != nil
        draining.begin()
        logger.notice(
            "shutting down: draining requests for at most \(ServerDefaults.gracefulShutdownMilliseconds) ms, then cancelling"
        )
        // Cancelled instead (a service failed): nothing waits for farewells.
        guard graceful, !Task.isCancelled else { return }
        await sockets?.closeAllGoingAway(within: .milliseconds(ServerDefaults.liveFarewellMilliseconds))
    }
}
