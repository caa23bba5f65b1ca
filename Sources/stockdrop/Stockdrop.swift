// The `stockdrop` command: argument parsing only; the work lives in the library targets.
import ArgumentParser
import Engine

@main
struct Stockdrop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stockdrop",
        abstract: "Limited-stock drops without oversell: engine, load harness and server.",
        version: Self.version,
        subcommands: [
            RunCommand.self, ServeCommand.self, CheckCommand.self, BenchCommand.self, SimulateCommand.self,
            MigrateCommand.self, DatabaseCommand.self, TokenCommand.self, ReportCommand.self, BenchServerCommand.self,
            ClusterCommand.self, FailoverDatabaseCommand.self,
        ])

    /// The release (`stockdrop --version`, the image's tag and its version label).
    static let version = "0.1.0"
}
