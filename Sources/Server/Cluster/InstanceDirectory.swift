// Where each server instance can be reached: its advertised address and a heartbeat, in
// PostgreSQL (the one store every instance shares). An instance registers once it listens,
// beats every `heartbeatMilliseconds`, and leaves on graceful shutdown; a claim for a drop
// owned elsewhere looks the owner up here.
import Engine
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

final class InstanceDirectory: Service {
    let instance: String
    private let pool: PostgresPool
    private let logger: Logger
    private let advertised = Mutex<String?>(nil)
    private let cache = Mutex<[String: (address: String?, at: ContinuousClock.Instant)]>([:])

    init(instance: String, pool: PostgresPool, logger: Logger) {
        self.instance = instance
        self.pool = pool
        self.logger = logger
    }

    /// The address other instances use, known once the server listens (its port may be 0);
    /// written at once (within a bound, so a hung database cannot hold the start up).
    func advertise(_ address: String) async {
        advertised.withLock { $0 = address }
        await firstOf(timeout: .milliseconds(ServerDefaults.readinessTimeoutMilliseconds), orElse: ()) {
            await self.beat(address)
        }
    }

    var address: String? { advertised.withLock { $0 } }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                if let address = self.address { await self.beat(address) }
                try? await Task.sleep(for: .milliseconds(ServerDefaults.heartbeatMilliseconds))
            }
        }
        // Bounded: shutdown must not wait on a database that does not answer.
        let pool = self.pool
        let instance = self.instance
        await firstOf(timeout: .milliseconds(ServerDefaults.readinessTimeoutMilliseconds), orElse: ()) {
            _ = try? await pool.query("DELETE FROM stockdrop_instances WHERE id = $1", [.text(instance)])
        }
    }

    private func beat(_ address: String) async {
        do {
            try await pool.query(
                """
                INSERT INTO stockdrop_instances (id, address) VALUES ($1, $2)
                ON CONFLICT (id) DO UPDATE SET address = excluded.address, heartbeat_at = clock_timestamp()
                """, [.text(instance), .text(address)])
        } catch {
            logger.warning("instance heartbeat not written", metadata: ["error": "\(error)"])
        }
    }

    /// The address of a live instance (its heartbeat is recent), or nil. Answers are kept for
    /// one heartbeat, so a hot drop's forwarded claims cost no query each.
    func address(of other: String) async throws -> String? {
        let now = ContinuousClock.now
        let fresh = Duration.milliseconds(ServerDefaults.heartbeatMilliseconds)
        if let hit = cache.withLock({ $0[other] }), now - hit.at < fresh { return hit.address }
        let deadAfter = ServerDefaults.heartbeatMilliseconds * ServerDefaults.heartbeatsMissedBeforeDead
        let address = try await pool.query(
            """
            SELECT address FROM stockdrop_instances
            WHERE id = $1 AND heartbeat_at > clock_timestamp() - $2 * interval '1 millisecond'
            """, [.text(other), .int32(Int32(deadAfter))]
        ).first.map { try $0.string("address") }
        cache.withLock { $0[other] = (address, now) }
        return address
    }
}
