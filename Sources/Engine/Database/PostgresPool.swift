// A fixed-size pool of connections. Callers beyond the size wait in FIFO order, at most
// `DatabaseDeadlines.acquireMilliseconds` when it is set; a connection that broke is closed
// and replaced on its next lease rather than handed out again.
import DequeModule

public actor PostgresPool {
    public nonisolated let url: String
    public nonisolated let size: Int
    public nonisolated let deadlines: DatabaseDeadlines
    private var idle: [PostgresConnection] = []
    private var opened = 0
    private var waiters: Deque<Waiter> = []
    private var nextWaiterID = 0
    private var closed = false

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<PostgresConnection?, any Error>
    }

    public init(url: String, size: Int, deadlines: DatabaseDeadlines = .standard) {
        precondition(size > 0, "a pool needs at least one connection")
        self.url = url
        self.size = size
        self.deadlines = deadlines
    }

    /// Leases a connection for the duration of `body`.
    public nonisolated func withConnection<T: Sendable>(
        _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let connection = try await lease()
        do {
            let value = try await body(connection)
            await release(connection)
            return value
        } catch {
            await release(connection)
            throw error
        }
    }

    /// One hop to a pooled connection's thread with its synchronous session.
    public nonisolated func withSession<T: Sendable>(
        _ body: @escaping @Sendable (PostgresSession) throws -> T
    ) async throws -> T {
        try await withConnection { try await $0.withSession(body) }
    }

    @discardableResult
    public nonisolated func query(_ sql: String, _ parameters: [PostgresValue] = []) async throws -> PostgresRows {
        try await withSession { try $0.query(sql, parameters) }
    }

    public func close() async {
        closed = true
        let connections = idle
        idle.removeAll()
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(kind: .closed, message: "pool is closed"))
        }
        waiters.removeAll()
        for connection in connections { await connection.close() }
    }

    private func lease() async throws -> PostgresConnection {
        guard !closed else { throw PostgresError(kind: .closed, message: "pool is closed") }
        if let connection = idle.popLast() { return connection }
        if opened < size {
            opened += 1
            return try await openInReservedSlot()
        }
        // A nil wake-up hands over a freed slot, already counted in `opened`: open a new
        // connection in it.
        nextWaiterID += 1
        let id = nextWaiterID
        if let milliseconds = deadlines.acquireMilliseconds {
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(milliseconds))
                await self?.giveUp(waiter: id, after: milliseconds)
            }
        }
        // (A served waiter's timer finds nothing to do; the scan it makes is over the waiters
        // still queued, which the acquire deadline keeps short.)
        if let connection = try await withCheckedThrowingContinuation({
            waiters.append(Waiter(id: id, continuation: $0))
        }) {
            return connection
        }
        return try await openInReservedSlot()
    }

    /// A waiter still queued at its deadline leaves the queue with an error: nothing was sent.
    private func giveUp(waiter id: Int, after milliseconds: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(
            throwing: PostgresError(kind: .timeout, message: "no free database connection within \(milliseconds) ms"))
    }

    private func openInReservedSlot() async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(url, deadlines: deadlines)
        } catch {
            opened -= 1
            wakeOneForFreedSlot()
            throw error
        }
    }

    private func release(_ connection: PostgresConnection) async {
        if !closed, await connection.isHealthy {
            if waiters.isEmpty {
                idle.append(connection)
            } else {
                waiters.removeFirst().continuation.resume(returning: connection)
            }
            return
        }
        // The freed slot is given away before the close suspends this actor: otherwise a new
        // caller could take it meanwhile and the waiter woken after would make size + 1.
        if !closed, !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: nil)
        } else {
            opened -= 1
        }
        await connection.close()
    }

    private func wakeOneForFreedSlot() {
        guard !waiters.isEmpty else { return }
        opened += 1
        waiters.removeFirst().continuation.resume(returning: nil)
    }
}
