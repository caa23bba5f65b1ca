// A database per strategy, so runs never see each other's rows.
import Engine

enum FreshDatabase {
    /// With DATABASE_URL, that database, migrated (new drops keep the rows apart). Otherwise a
    /// dropped-and-recreated `stockdrop_<purpose>_<strategy>` on the embedded cluster.
    static func url(for purpose: String, _ strategy: Strategy, configured: String?) async throws -> String {
        try await url(for: purpose, named: strategy.rawValue, configured: configured)
    }

    static func url(for purpose: String, named name: String, configured: String?) async throws -> String {
        if let configured, !configured.isEmpty {
            return try await Database.prepare(environment: ["DATABASE_URL": configured])
        }
        let embedded = try EmbeddedPostgres()
        try await embedded.start()
        let url = try await embedded.freshDatabase("stockdrop_\(purpose)_\(name)")
        return try await Database.prepare(environment: ["DATABASE_URL": url])
    }
}
