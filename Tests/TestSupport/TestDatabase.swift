// Shared by the test targets. Every suite gets a database of its own on the embedded
// cluster, the same launcher the commands use. DATABASE_URL is ignored here on purpose: tests drop and recreate databases.
import Engine
import Foundation

public enum TestDatabase {
    /// Starts the embedded cluster once per test process.
    private static let started = Task { () throws -> EmbeddedPostgres in
        let embedded = try EmbeddedPostgres(purpose: .tests)
        try await embedded.start()
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

    /// The socket file of a test database's URL (the embedded cluster listens only there).
    public static func socketPath(of url: String) throws -> String {
        guard let components = URLComponents(string: url),
            let host = components.queryItems?.first(where: { $0.name == "host" })?.value
        else { throw TestDatabaseError(description: "no socket directory in \(url)") }
        let port = components.queryItems?.first { $0.name == "port" }?.value ?? "5432"
        return "\(host)/.s.PGSQL.\(port)"
    }

    /// The same database reached over TCP on a loopback port (a proxy in front of the socket).
    public static func url(_ url: String, throughPort port: Int) throws -> String {
        guard let components = URLComponents(string: url) else {
            throw TestDatabaseError(description: "bad URL \(url)")
        }
        return "postgresql://postgres@127.0.0.1:\(port)\(components.path)"
    }
}

public struct TestDatabaseError: Error, CustomStringConvertible {
    public let description: String
}
