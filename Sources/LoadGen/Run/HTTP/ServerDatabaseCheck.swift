// The checker must read the database the servers write. A run whose DATABASE_URL named another
// database (a second database on the same cluster, the embedded one of an earlier run) was
// judged against rows no one of this run wrote: drop 1 there was an older run's, and the
// verdict said "invariant 5 BROKEN: 8780 acknowledged writes missing" of a server that lost
// nothing. Each server names its instance on /ready and registers it in the database it writes
// (`stockdrop_instances`, an incarnation id unique to the process, written when it starts
// listening and every second after): every instance must be in the checker's database.
import Engine
import Foundation

enum ServerDatabaseCheck {
    /// How long an instance may take to appear (its first registration is bounded by the
    /// readiness timeout, and it beats every second after; `LocalCluster` allows as long). A
    /// run on the right database finds it at once: only a refusal waits this long.
    static let waitSeconds = 10.0

    /// Throws unless every (url, instance) is registered in `databaseURL`'s database.
    static func verify(_ instances: [(url: URL, instance: String)], databaseURL: String) async throws {
        guard !instances.isEmpty else { return }
        let pool = PostgresPool(url: databaseURL, size: 1)
        defer { Task { await pool.close() } }
        let deadline = Date().addingTimeInterval(waitSeconds)
        let checkerDatabase = RedactedURL.database(databaseURL)
        while true {
            let found: Set<String>
            do {
                let rows = try await pool.query(
                    "SELECT id FROM stockdrop_instances WHERE id = ANY($1)", [.textArray(instances.map(\.instance))])
                found = Set(try rows.rows.map { try $0.string("id") })
            } catch {
                throw RunError.unavailable("cannot read the checker's database (\(checkerDatabase)): \(error)")
            }
            guard let missing = instances.first(where: { !found.contains($0.instance) }) else { return }
            if Date() >= deadline {
                throw RunError.usage(
                    "the server at \(missing.url.absoluteString) (instance \(missing.instance)) is not registered in the database the checker reads (\(checkerDatabase)) after \(Int(waitSeconds)) s: it writes another database (or cannot write its heartbeat there), and the checker would judge rows this run never wrote; set DATABASE_URL to the server's database"
                )
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
