// Every tunable number of the engine, in one place, each with its unit and its reason.
public enum Defaults {
    /// The database the embedded cluster serves to commands when DATABASE_URL is unset.
    public static let databaseName = "stockdrop"
    /// Enough for a server pool, a load run's rowlock pool (10), tests that open 20 at once,
    /// and several test suites in parallel, each with pools of their own.
    public static let embeddedMaxConnections = 300
}
