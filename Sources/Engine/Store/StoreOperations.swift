// What a server asks of the store besides drops and claims: where the other instances are,
// whether the store is ready for this build, and the totals behind the gauges. The SQL stays
// in the store (`PostgresStore+Operations`); the server sees these calls and `EngineError`.
import Foundation

/// Where each server instance can be reached: its advertised address and a heartbeat.
public protocol InstanceRegistry: Sendable {
    /// Writes the instance's address and a fresh heartbeat (the store's clock).
    func heartbeat(instance: String, address: String) async throws
    /// The address of an instance whose heartbeat is younger than `heartbeatWithinMilliseconds`.
    func liveAddress(of instance: String, heartbeatWithinMilliseconds: Int) async throws -> String?
    /// Removes the instance (a graceful shutdown): no one forwards to it any more.
    func removeInstance(_ instance: String) async throws
}

/// The store's state as operators read it.
public protocol StoreStatus: Sendable {
    /// What a readiness probe asks, in one round trip (a balancer asks every half second).
    func readiness() async throws -> StoreReadiness
    /// Units held and sold over every drop.
    func stockTotals() async throws -> StockTotals
}

public struct StoreReadiness: Sendable, Equatable {
    /// The highest migration applied (0 when none).
    public var schemaVersion: Int
    /// Whether the database takes writes: false on a standby (or a session forced read-only),
    /// where every claim would be refused. After a failover the old primary's address may lead
    /// there until the balancer follows the new one.
    public var acceptsWrites: Bool

    public init(schemaVersion: Int, acceptsWrites: Bool) {
        self.schemaVersion = schemaVersion
        self.acceptsWrites = acceptsWrites
    }
}

public struct StockTotals: Sendable, Equatable {
    public var reserved: Int64
    public var sold: Int64

    public init(reserved: Int64, sold: Int64) {
        self.reserved = reserved
        self.sold = sold
    }
}
