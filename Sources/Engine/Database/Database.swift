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

    /// `url` with another database named in it (a URI's path; nil for a key=value string).
    public static func url(_ url: String, database: String) -> String? {
        guard var components = URLComponents(string: url), components.scheme?.hasPrefix("postgres") == true else {
            return nil
        }
        components.path = "/" + database
        return components.string
    }

    /// An empty database `name` on the server `url` leads to (dropped first if it exists:
    /// throwaway databases only), and its URL.
    public static func fresh(_ name: String, onServerOf url: String) async throws -> String {
        guard let admin = Self.url(url, database: "postgres"), let fresh = Self.url(url, database: name) else {
            throw PostgresError(
                kind: .connection, message: "not a postgresql:// URL: cannot name another database in it")
        }
        let connection = try await PostgresConnection.connect(admin)
        do {
            try await connection.execute("DROP DATABASE IF EXISTS \(EmbeddedPostgres.quoted(name)) WITH (FORCE)")
            try await connection.execute("CREATE DATABASE \(EmbeddedPostgres.quoted(name))")
            await connection.close()
        } catch {
            await connection.close()
            throw error
        }
        return fresh
    }
}
