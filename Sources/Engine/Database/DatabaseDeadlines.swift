// How long anything waits on PostgreSQL. The server-side limits (connect_timeout,
// statement_timeout, keepalives) catch a database that is slow or gone; none of them fires
// behind a network path that accepts packets and never answers (a paused proxy, a frozen VM),
// so every statement also has a client-side answer deadline, after which the connection is
// dropped and the statement's outcome is unknown.
public struct DatabaseDeadlines: Sendable, Equatable {
    /// libpq `connect_timeout` (whole seconds, libpq's floor is 2).
    public var connectSeconds: Int
    /// `statement_timeout`: the server cancels a statement that runs this long, cleanly (the
    /// transaction rolls back, the connection stays usable).
    public var statementMilliseconds: Int
    /// The client's own limit for one statement's answer, above `statementMilliseconds` so a
    /// slow but live server answers with its cancel first; past it nothing came back at all.
    public var answerMilliseconds: Int
    /// How long a caller waits for a pooled connection; nil waits its turn however long
    /// (load runs and tools, whose queues are the experiment).
    public var acquireMilliseconds: Int?

    public init(connectSeconds: Int, statementMilliseconds: Int, answerMilliseconds: Int, acquireMilliseconds: Int?) {
        self.connectSeconds = max(2, connectSeconds)
        self.statementMilliseconds = statementMilliseconds
        self.answerMilliseconds = answerMilliseconds
        self.acquireMilliseconds = acquireMilliseconds
    }

    /// Tools, migrations, the checker and in-process load runs: a statement runs at most
    /// 30 s (a batch takes tens of ms, reloading a drop of 100,000 holds about a second).
    public static let standard = DatabaseDeadlines(
        connectSeconds: 5, statementMilliseconds: 30_000, answerMilliseconds: 35_000, acquireMilliseconds: nil)

    /// libpq parameters every connection gets unless its URL sets them. Besides the deadlines:
    /// an idle TCP connection is probed after 10 s, every 5 s, 3 times; unacknowledged data
    /// for 15 s drops it (`tcp_user_timeout`); a transaction left idle 60 s is ended by the
    /// server.
    public var connectionParameters: [(String, String)] {
        [
            ("connect_timeout", String(connectSeconds)), ("keepalives", "1"), ("keepalives_idle", "10"),
            ("keepalives_interval", "5"), ("keepalives_count", "3"), ("tcp_user_timeout", "15000"),
            ("options", "-c statement_timeout=\(statementMilliseconds) -c idle_in_transaction_session_timeout=60000"),
        ]
    }
}
