// Errors from the database, carrying PostgreSQL's SQLSTATE so callers can tell a
// constraint violation (23xxx) from a lost connection (08xxx) without parsing messages.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case connection, server, decoding, closed
        /// No answer before the client's deadline; the connection was dropped.
        case timeout
        /// Answered, but the server warned that its commit stopped waiting for the synchronous
        /// standby: applied here, perhaps nowhere else (a failover may lose it). The connection
        /// was dropped; the statement's outcome is unknown to the caller.
        case inDoubt
    }

    public let kind: Kind
    /// Five-character SQLSTATE, e.g. 23514 check_violation; nil when the server sent none.
    public let sqlState: String?
    public let message: String
    public let detail: String?
    public let constraint: String?

    public init(kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, constraint: String? = nil)
    {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.constraint = constraint
    }

    static func decoding(_ message: String) -> PostgresError { PostgresError(kind: .decoding, message: message) }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isCheckViolation: Bool { sqlState == "23514" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    /// Class 08 (connection exception) or a client-side connection failure: retry on a new connection.
    public var isConnectionFailure: Bool {
        kind == .connection || kind == .closed || kind == .timeout || sqlState?.hasPrefix("08") == true
    }

    public var description: String {
        var text = "PostgreSQL \(kind.rawValue) error"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let constraint { text += " (constraint \(constraint))" }
        if let detail { text += " — \(detail)" }
        return text
    }
}
