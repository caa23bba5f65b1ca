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
        logger.info("engine draining: committing batches in flight")
        await inventory.shutdown()
        await forwarder.shutdown()
        await pool.close()
        logger.info("engine stopped")
    }
}
