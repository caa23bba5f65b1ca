// The instance directory and the operators' reads, in SQL (`StoreOperations`).
import Foundation

extension PostgresStore: InstanceRegistry, StoreStatus {
    public func heartbeat(instance: String, address: String) async throws {
        try await write(
            """
            INSERT INTO stockdrop_instances (id, address) VALUES ($1, $2)
            ON CONFLICT (id) DO UPDATE SET address = excluded.address, heartbeat_at = clock_timestamp()
            """, [.text(instance), .text(address)])
    }

    public func liveAddress(of instance: String, heartbeatWithinMilliseconds: Int) async throws -> String? {
        try await Self.reading {
            try await pool.query(
                """
                SELECT address FROM stockdrop_instances
                WHERE id = $1 AND heartbeat_at > clock_timestamp() - $2 * interval '1 millisecond'
                """, [.text(instance), .int32(Int32(clamping: heartbeatWithinMilliseconds))]
            ).first.map { try $0.string("address") }
        }
    }

    public func removeInstance(_ instance: String) async throws {
        try await write("DELETE FROM stockdrop_instances WHERE id = $1", [.text(instance)])
    }

    public func readiness() async throws -> StoreReadiness {
        try await Self.reading {
            let row = try await pool.query(
                """
                SELECT (SELECT coalesce(max(version), 0) FROM schema_migrations) AS version,
                       current_setting('transaction_read_only') AS read_only
                """
            ).first
            return StoreReadiness(
                schemaVersion: try row?.int("version") ?? 0, acceptsWrites: try row?.string("read_only") == "off")
        }
    }

    public func stockTotals() async throws -> StockTotals {
        try await Self.reading {
            guard
                let row = try await pool.query(
                    "SELECT coalesce(sum(reserved), 0) AS reserved, coalesce(sum(sold), 0) AS sold FROM drops"
                ).first
            else { return StockTotals(reserved: 0, sold: 0) }
            return StockTotals(reserved: try row.int64("reserved"), sold: try row.int64("sold"))
        }
    }
}
