// `stockdrop migrate` and `stockdrop db start|stop|url`.
import ArgumentParser
import Engine
import Foundation

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply missing schema migrations (DATABASE_URL, or the embedded database).")

    func run() async throws {
        let url = try await Database.prepare()
        let connection = try await PostgresConnection.connect(url)
        let version = try await Migrator.currentVersion(connection)
        await connection.close()
        print("schema at version \(version) (latest \(Migrations.latestVersion))")
    }
}

struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "The embedded throwaway PostgreSQL used when DATABASE_URL is unset.",
        subcommands: [Start.self, Stop.self, URLCommand.self])

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start (or reuse) the embedded cluster and migrate it.")
        func run() async throws {
            let embedded = try EmbeddedPostgres()
            try await embedded.start()
            try await embedded.ensureDatabase(Defaults.databaseName)
            let connection = try await PostgresConnection.connect(embedded.url())
            try await Migrator.migrate(connection)
            await connection.close()
            if let note = embedded.relocationNote { print("note: \(note)") }
            print(embedded.url())
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the embedded cluster (its files stay for reuse).")
        func run() async throws {
            try await EmbeddedPostgres().stop()
        }
    }

    struct URLCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "url", abstract: "Print the embedded cluster's DATABASE_URL.")
        func run() async throws {
            let embedded = try EmbeddedPostgres()
            var notes = embedded.relocationNote.map { [$0] } ?? []
            // The URL is printed either way (a script may start the cluster after), but a
            // cluster that `run` started holds only its runs' databases, not this one.
            if !embedded.isRunning {
                notes.append("the embedded cluster is not running: `stockdrop db start` starts and migrates it")
            } else {
                do {
                    try await PostgresConnection.connect(embedded.url()).close()
                } catch {
                    notes.append(
                        "\(error)".contains("does not exist")
                            ? "the embedded cluster has no \(Defaults.databaseName) database yet: `stockdrop db start` makes and migrates it"
                            : "the embedded cluster did not take a connection: \(error)")
                }
            }
            for note in notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
            print(embedded.url())
        }
    }
}
