// The engine as a long-lived service: on graceful shutdown (after the HTTP server has stopped
// accepting and answered its requests) it lets batches in flight commit, gives up its drops'
// leases, then closes the pool.
import Engine
import Logging
import ServiceLifecycle

final class EngineService: Service {
    let inventory: any Inventory
    let pool: PostgresPool
    let forwarder: ClaimForwarder
    let logger: Logger

    init(inventory: any Inventory, pool: PostgresPool, forwarder: ClaimForwarder, logger: Logger) {
        self.inventory = inventory
        self.pool = pool
        self.forwarder = forwarder
        self.logger = logger
    }

    func run() async throws {
        try? await gracefulShutdown()
        logger.notice("requests answered; engine draining: committing batches in flight")
        await inventory.shutdown()
        // Bounded: the forwarding client's shutdown waits on its connection pools, and in two
        // fresh-clone CI runs an instance that had just forwarded hundreds of claims to a
        // killed owner did not exit within 30 s of SIGTERM. Nothing acknowledged is at stake:
        // the HTTP server has answered every request by now.
        let forwarder = self.forwarder
        let closed = await firstOf(timeout: .milliseconds(ServerDefaults.forwarderShutdownMilliseconds), orElse: false)
        {
            await forwarder.shutdown()
            return true
        }
        if !closed { logger.warning("the forwarding client did not close in time; exiting without it") }
        logger.notice("engine drained; closing the database pool")
        await pool.close()
        logger.notice("engine stopped")
    }
}
