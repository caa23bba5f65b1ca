// Where each server instance can be reached: its advertised address and a heartbeat, in the
// store every instance shares (`InstanceRegistry`). An instance registers once it listens,
// beats every `heartbeatMilliseconds`, and leaves on graceful shutdown; a claim for a drop
// owned elsewhere looks the owner up here.
import Engine
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

final class InstanceDirectory: Service {
    let instance: String
    private let registry: any InstanceRegistry
    private let logger: Logger
    private let advertised = Mutex<String?>(nil)
    private let cache = Mutex<[String: (address: String?, at: ContinuousClock.Instant)]>([:])

    init(instance: String, registry: any InstanceRegistry, logger: Logger) {
        self.instance = instance
        self.registry = registry
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
        let registry = self.registry
        let instance = self.instance
        await firstOf(timeout: .milliseconds(ServerDefaults.readinessTimeoutMilliseconds), orElse: ()) {
            try? await registry.removeInstance(instance)
        }
    }

    private func beat(_ address: String) async {
        do {
            try await registry.heartbeat(instance: instance, address: address)
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
        let address = try await registry.liveAddress(of: other, heartbeatWithinMilliseconds: deadAfter)
        cache.withLock { $0[other] = (address, now) }
        return address
    }
}
