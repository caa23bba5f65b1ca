// The only file that touches libpq. A connection owns a thread of its own; every libpq call
// runs there, so a slow query blocks that thread alone and never Swift's cooperative pool.
// Statements are sent in libpq's non-blocking mode and their answers awaited with poll(2)
// under a deadline (`DatabaseDeadlines.answerMilliseconds`): a database behind a path that
// swallows packets costs a bounded wait and the connection, never a thread for ever.
import CLibPQ
import Foundation

/// Synchronous access to one open connection, handed to closures that run on the
/// connection's own thread (`PostgresConnection.withSession`). Several statements in one
/// closure cost one thread hop, which is how a batch transaction stays cheap.
public final class PostgresSession {
    fileprivate var handle: OpaquePointer?
    /// How long one statement's answer may take before the connection is dropped.
    public var answerTimeout: Duration
    /// Set by the notice receiver when the server warns that a commit stopped waiting for its
    /// synchronous standby (a cancel, `statement_timeout`, a shutdown): committed here, perhaps
    /// on no standby, so lost at the next failover. The statement then fails as `inDoubt`.
    fileprivate var unreplicatedCommit: String?

    fileprivate init(handle: OpaquePointer, answerTimeout: Duration) {
        self.handle = handle
        self.answerTimeout = answerTimeout
    }

    /// A session dropped without `finish` (its connect failed half way) still closes its link.
    deinit { finish() }

    /// True while the server link is usable; false after the connection broke or was closed.
    public var isHealthy: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// A parameterized statement (extended protocol: one statement, `$1`… placeholders).
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) throws -> PostgresRows {
        let handle = try open()
        return try awaitAnswer(sent: Self.send(sql, parameters, on: handle), on: handle)
    }

    /// Queues one parameterized statement on the connection (libpq sends it at the next flush).
    private static func send(_ sql: String, _ parameters: [PostgresValue], on handle: OpaquePointer) -> Bool {
        let encoded = parameters.map(\.encoded)
        let types = encoded.map(\.typeOID)
        let lengths = encoded.map { Int32($0.bytes?.count ?? 0) }
        let formats = encoded.map(\.format)
        // Copy each parameter into a buffer of its own that stays valid for the call. Text
        // parameters are read up to a NUL (libpq ignores their length), so every buffer ends in one.
        let buffers: [UnsafeMutablePointer<CChar>?] = encoded.map { value in
            guard let bytes = value.bytes else { return nil }
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
            bytes.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { source in
                    if let base = source.baseAddress { buffer.update(from: base, count: bytes.count) }
                }
            }
            buffer[bytes.count] = 0
            return buffer
        }
        defer { buffers.forEach { $0?.deallocate() } }
        let sent = buffers.withUnsafeBufferPointer { values in
            values.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                PQsendQueryParams(handle, sql, Int32(parameters.count), types, values.baseAddress, lengths, formats, 0)
            }
        }
        return sent == 1
    }

    /// Parameterized statements sent at once in libpq's pipeline mode, as one implicit
    /// transaction that commits after the last of them (a failure of any applies none): the
    /// server runs them back to back without waiting on this client. `completed(i)` is called
    /// as statement `i`'s answer arrives, before the next ones' (while none has failed).
    /// Returns each statement's rows once the transaction has committed. Failures are those of
    /// `query`: a server's refusal applied nothing; a lost link leaves the commit unknown.
    public func pipeline(
        _ statements: [(sql: String, parameters: [PostgresValue])], completed: (Int) -> Void
    ) throws -> [PostgresRows] {
        let handle = try open()
        return try exchange {
            guard PQenterPipelineMode(handle) == 1 else {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
            var sent = true
            for (index, statement) in statements.enumerated() where sent {
                sent = Self.send(statement.sql, statement.parameters, on: handle)
                // The server holds a pipeline's answers until the sync (or a full buffer) unless
                // asked to flush: each statement's answer is then sent as soon as it is ready.
                if sent, index < statements.count - 1 { sent = PQsendFlushRequest(handle) == 1 }
            }
            guard sent, PQpipelineSync(handle) == 1 else {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
            unreplicatedCommit = nil
            var deadline = ContinuousClock.now.advanced(by: answerTimeout)
            try flush(handle, until: deadline)
            var rows = [PostgresRows](
                repeating: PostgresRows(columns: [], cells: [], affectedRows: 0), count: statements.count)
            var firstError: PostgresError?
            var index = 0
            // Each statement's results end with a null result; the sync's result ends the pipeline.
            while true {
                try awaitResult(handle, until: deadline)
                guard let result = PQgetResult(handle) else {
                    // A link the server closed, or more ends of answers than statements and a
                    // commit's refusal: never wait for a sync that cannot come.
                    guard PQstatus(handle) == CONNECTION_OK, index <= statements.count else {
                        throw PostgresError(
                            kind: .connection, sqlState: "08006",
                            message: "the pipeline ended without its sync: \(Self.errorMessage(handle))")
                    }
                    if firstError == nil, index < statements.count { completed(index) }
                    index += 1
                    continue
                }
                deadline = ContinuousClock.now.advanced(by: answerTimeout)
                let status = PQresultStatus(result)
                if status == PGRES_PIPELINE_SYNC {
                    PQclear(result)
                    break
                }
                if status == PGRES_PIPELINE_ABORTED {
                    PQclear(result)
                    continue
                }
                do {
                    let answer = try Self.consume(result, on: handle)
                    if index < statements.count { rows[index] = answer }
                } catch let error as PostgresError {
                    firstError = firstError ?? error
                }
            }
            guard PQexitPipelineMode(handle) == 1 else {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
            return try outcome(rows, firstError: firstError)
        }
    }

    /// Statements without parameters, possibly several separated by semicolons (simple
    /// protocol): migrations and session settings.
    public func execute(_ sql: String) throws {
        let handle = try open()
        _ = try awaitAnswer(sent: PQsendQuery(handle, sql) == 1, on: handle)
    }

    public enum IsolationLevel: String, Sendable {
        case readCommitted = "READ COMMITTED"
        case repeatableRead = "REPEATABLE READ"
        case serializable = "SERIALIZABLE"
    }

    /// Runs `body` inside BEGIN … COMMIT; any error rolls back and is rethrown. With an
    /// isolation level the transaction sets it itself instead of taking the server's default
    /// (an operator may have set `default_transaction_isolation`).
    public func transaction<T>(isolation: IsolationLevel? = nil, _ body: () throws -> T) throws -> T {
        try execute(isolation.map { "BEGIN ISOLATION LEVEL \($0.rawValue)" } ?? "BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            if isHealthy { try? execute("ROLLBACK") }
            throw error
        }
    }

    fileprivate func finish() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    private func open() throws -> OpaquePointer {
        guard let handle else { throw PostgresError(kind: .closed, message: "connection is closed") }
        return handle
    }

    /// PostgreSQL's words for a commit that stopped waiting for its synchronous standby
    /// (syncrep.c: "canceling wait for synchronous replication due to user request" or "… and
    /// terminating connection due to administrator command"), sent as a WARNING with the detail
    /// "The transaction has already committed locally, but might not have been replicated to
    /// the standby." The client would otherwise read the commit as a success.
    /// Told by its SQLSTATE (query_canceled or admin_shutdown at WARNING level: the message
    /// is translated by the server's lc_messages, the severity field V and the code are not),
    /// or by its English words.
    public static func isUnreplicatedCommit(severity: String?, sqlState: String?, message: String) -> Bool {
        guard severity == "WARNING" else { return false }
        return sqlState == "57014" || sqlState == "57P01"
            || message.hasPrefix("canceling wait for synchronous replication")
            || message.hasPrefix("canceling the wait for synchronous replication")
    }

    /// libpq's own receiver (it prints notices on stderr), which every other notice still goes to.
    fileprivate var defaultReceiver: PQnoticeReceiver?

    /// Installs the notice receiver (once per connection, on its thread).
    fileprivate func receiveNotices() {
        guard let handle else { return }
        let receiver: PQnoticeReceiver = { argument, result in
            guard let argument, let result else { return }
            let session = Unmanaged<PostgresSession>.fromOpaque(argument).takeUnretainedValue()
            func field(_ code: UInt8) -> String? { PQresultErrorField(result, Int32(code)).map { String(cString: $0) } }
            let message = field(UInt8(ascii: "M")) ?? ""
            if PostgresSession.isUnreplicatedCommit(
                severity: field(UInt8(ascii: "V")), sqlState: field(UInt8(ascii: "C")), message: message)
            {
                session.unreplicatedCommit = message
            } else {
                // libpq's default receiver ignores its argument (it reads the result's hooks).
                session.defaultReceiver?(nil, result)
            }
        }
        // Notices arrive only inside libpq calls on this connection's thread, while the session
        // (which owns the handle and finishes it in `finish` or `deinit`) is alive.
        defaultReceiver = PQsetNoticeReceiver(handle, receiver, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Flushes what was queued, then reads every result of the statement(s), each within the
    /// answer deadline (it restarts with every result, as `statement_timeout` does per
    /// statement). The rows are the last result's; the error is the first one (the server stops
    /// at it). A COPY (which this wrapper does not speak) finishes the connection, as a failure
    /// of the link does (`exchange`).
    private func awaitAnswer(sent: Bool, on handle: OpaquePointer) throws -> PostgresRows {
        try exchange {
            guard sent else {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
            unreplicatedCommit = nil
            var deadline = ContinuousClock.now.advanced(by: answerTimeout)
            try flush(handle, until: deadline)
            var rows = PostgresRows(columns: [], cells: [], affectedRows: 0)
            var firstError: PostgresError?
            while true {
                try awaitResult(handle, until: deadline)
                guard let result = PQgetResult(handle) else { break }
                let status = PQresultStatus(result)
                if status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH {
                    PQclear(result)
                    throw PostgresError(kind: .connection, message: "COPY is not supported on this connection")
                }
                deadline = ContinuousClock.now.advanced(by: answerTimeout)
                do {
                    rows = try Self.consume(result, on: handle)
                } catch let error as PostgresError {
                    firstError = firstError ?? error
                }
            }
            return try outcome(rows, firstError: firstError)
        }
    }

    /// One exchange with the server. A failure of the link itself, a deadline passed or a COPY
    /// finishes the connection: half-read results must never be read as the next statement's,
    /// so the pool sees it closed and replaces it.
    private func exchange<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PostgresError where error.kind != .server {
            finish()
            throw error
        }
    }

    /// An exchange's answer once every result is read. First a commit in doubt (followed by a
    /// refusal in the same call it is still in doubt): not a success, the connection goes too
    /// (its standby link is suspect), and the caller treats it as a lost answer. Then the first
    /// refusal (the server stops at it).
    private func outcome<T>(_ answer: T, firstError: PostgresError?) throws -> T {
        if let warning = unreplicatedCommit { throw Self.unreplicated(warning) }
        if let firstError { throw firstError }
        return answer
    }

    private static func unreplicated(_ warning: String) -> PostgresError {
        PostgresError(
            kind: .inDoubt, sqlState: "57014",
            message:
                "the commit stopped waiting for its synchronous standby (\(warning)): applied on this server, perhaps on no standby"
        )
    }

    /// Sends everything queued on the connection, reading meanwhile.
    private func flush(_ handle: OpaquePointer, until deadline: ContinuousClock.Instant) throws {
        while true {
            let pending = PQflush(handle)
            if pending == 0 { return }
            if pending < 0 {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
            try wait(for: Int16(POLLIN | POLLOUT), on: handle, until: deadline)
            // Reading while the send buffer is full lets the server's answers (notices) through.
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
        }
    }

    /// Reads until the next result can be taken without blocking.
    private func awaitResult(_ handle: OpaquePointer, until deadline: ContinuousClock.Instant) throws {
        while PQisBusy(handle) == 1 {
            try wait(for: Int16(POLLIN), on: handle, until: deadline)
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
            }
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes; then the
    /// connection is finished and the statement's fate is unknown to the caller.
    private func wait(for events: Int16, on handle: OpaquePointer, until deadline: ContinuousClock.Instant) throws {
        let socket = PQsocket(handle)
        guard socket >= 0 else {
            throw PostgresError(kind: .connection, sqlState: "08006", message: Self.errorMessage(handle))
        }
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            let milliseconds =
                remaining <= .zero
                ? 0
                : Int32(
                    clamping: remaining.components.seconds * 1_000 + remaining.components.attoseconds
                        / 1_000_000_000_000_000 + 1)
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 {
                throw PostgresError(kind: .connection, sqlState: "08006", message: String(cString: strerror(errno)))
            }
            finish()
            throw PostgresError(
                kind: .timeout, sqlState: "08006",
                message: "no answer from the database within \(answerTimeout); the connection was dropped")
        }
    }

    private static func consume(_ result: OpaquePointer, on handle: OpaquePointer) throws -> PostgresRows {
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columns: [], cells: [], affectedRows: affected(result))
        case PGRES_TUPLES_OK:
            return rows(of: result)
        default:
            throw error(of: result, on: handle)
        }
    }

    private static func rows(of result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var cells: [String?] = []
        cells.reserveCapacity(rowCount * columnCount)
        for row in 0..<rowCount {
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    cells.append(nil)
                } else {
                    cells.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
        }
        return PostgresRows(columns: columns, cells: cells, affectedRows: affected(result))
    }

    private static func affected(_ result: OpaquePointer) -> Int {
        Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    private static func error(of result: OpaquePointer, on handle: OpaquePointer) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let pointer = PQresultErrorField(result, code) else { return nil }
            return String(cString: pointer)
        }
        let sqlState = field(Int32(UInt8(ascii: "C")))
        let message = field(Int32(UInt8(ascii: "M"))) ?? errorMessage(handle)
        let broken = PQstatus(handle) != CONNECTION_OK
        return PostgresError(
            kind: broken ? .connection : .server,
            sqlState: sqlState ?? (broken ? "08006" : nil),
            message: message,
            detail: field(Int32(UInt8(ascii: "D"))),
            constraint: field(Int32(UInt8(ascii: "n"))))
    }

    fileprivate static func errorMessage(_ handle: OpaquePointer) -> String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One PostgreSQL connection with an async face. Not shared between concurrent users: a pool
/// (`PostgresPool`) hands it to one caller at a time; calls that do overlap simply queue on
/// the connection's thread.
public final class PostgresConnection: @unchecked Sendable {
    // Touched only on `thread`, which serializes every use.
    private let session: PostgresSession
    private let thread: BlockingThread

    private init(session: PostgresSession, thread: BlockingThread) {
        self.session = session
        self.thread = thread
    }

    /// Opens a connection from a libpq URL or key=value string, then pins the session to UTC
    /// and ISO dates so timestamps parse the same everywhere. Bounded waits unless the URL says
    /// otherwise (`DatabaseDeadlines.connectionParameters`): a database that hangs rather than
    /// refuses must not hold a connection's thread for ever.
    public static func connect(
        _ url: String, applicationName: String = "stockdrop", deadlines: DatabaseDeadlines = .standard
    ) async throws -> PostgresConnection {
        let thread = BlockingThread(name: "postgres")
        do {
            let session = try await thread.run { () throws -> UncheckedBox<PostgresSession> in
                guard let handle = Self.open(url, parameters: deadlines.connectionParameters) else {
                    throw PostgresError(kind: .connection, message: "out of memory opening a connection")
                }
                guard PQstatus(handle) == CONNECTION_OK else {
                    let message = PostgresSession.errorMessage(handle)
                    PQfinish(handle)
                    throw PostgresError(kind: .connection, sqlState: "08001", message: message)
                }
                PQsetnonblocking(handle, 1)
                let session = PostgresSession(
                    handle: handle, answerTimeout: .milliseconds(deadlines.answerMilliseconds))
                session.receiveNotices()
                let name = applicationName.replacingOccurrences(of: "'", with: "")
                try session.execute(
                    "SET client_min_messages = warning; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET application_name = '\(name)'"
                )
                return UncheckedBox(session)
            }
            return PostgresConnection(session: session.value, thread: thread)
        } catch {
            thread.stop()
            throw error
        }
    }

    /// `PQconnectdbParams` with the defaults first and the URL last (`expand_dbname`): what the
    /// URL sets wins.
    private static func open(_ url: String, parameters: [(String, String)]) -> OpaquePointer? {
        let pairs = parameters + [("dbname", url)]
        let keywords = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer { (keywords + values).forEach { free($0) } }
        let keywordPointers = keywords.map { UnsafePointer<CChar>($0) } + [nil]
        let valuePointers = values.map { UnsafePointer<CChar>($0) } + [nil]
        return keywordPointers.withUnsafeBufferPointer { keys in
            valuePointers.withUnsafeBufferPointer { values in PQconnectdbParams(keys.baseAddress, values.baseAddress, 1)
            }
        }
    }

    /// Runs `body` with the session on the connection's thread: the way to run several
    /// statements (a transaction) for the price of one hop.
    @discardableResult
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws -> T {
        let session = UncheckedBox(self.session)
        return try await thread.run { try body(session.value) }
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) async throws -> PostgresRows {
        try await withSession { try $0.query(sql, parameters) }
    }

    public func execute(_ sql: String) async throws {
        try await withSession { try $0.execute(sql) }
    }

    public var isHealthy: Bool {
        get async { (try? await withSession { $0.isHealthy }) ?? false }
    }

    /// Closes the server link and ends the thread once queued work is done.
    public func close() async {
        _ = try? await withSession { $0.finish() }
        thread.stop()
    }
}

/// Carries a non-Sendable value across the hop to a connection's thread, where only one
/// closure at a time touches it.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
