// Shared by the test targets. Every suite gets a database of its own on the embedded
// cluster, the same launcher the commands use. DATABASE_URL is ignored here on purpose: tests drop and recreate databases.
import Engine
import Foundation

public enum TestDatabase {
    /// Starts the embedded cluster once per test process.
    private static let started = Task { () throws -> EmbeddedPostgres in
        let embedded = try EmbeddedPostgres()
        try embedded.start()
        return embedded
    }

    /// A freshly created, migrated database; returns its URL.
    public static func fresh(_ suite: String, migrated: Bool = true) async throws -> String {
        let embedded = try await started.value
        let url = try await embedded.freshDatabase("test_\(suite)")
        if migrated {
            let connection = try await PostgresConnection.connect(url)
            try await Migrator.migrate(connection)
            await connection.close()
        }
        return url
    }
}
