// Finding the database a command should use: DATABASE_URL when set, otherwise the embedded
// cluster (started or reused). Either way the schema is brought up to date before use.
import Foundation

public enum Database {
    /// The URL of a migrated database, starting the embedded cluster if DATABASE_URL is unset.
    public static func prepare(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> String {
        let url: String
        if let configured = environment["DATABASE_URL"], !configured.isEmpty {
            url = configured
        } else {
            let embedded = try EmbeddedPostgres()
            try await embedded.start()
            try await embedded.ensureDatabase(Defaults.databaseName)
            url = embedded.url()
        }
        let connection = try await PostgresConnection.connect(url)
        do {
            try await Migrator.migrate(connection)
            await connection.close()
        } catch {
            await connection.close()
            throw error
        }
        return url
    }
}
