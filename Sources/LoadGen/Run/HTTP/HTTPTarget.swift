// A running `stockdrop serve` as the load target: the same operations over the HTTP API,
// answered by status and stable error code. A refusal known to have applied nothing (a rate
// limit's 429, `unavailable`) is a failure; anything else that is not a clear answer (a 5xx
// other than `overloaded`, a dropped connection) is recorded as an error, and a missed
// deadline as a timeout: both indeterminate for the checker, as in Jepsen. Each keeps its cause.
import Engine
import Foundation
import NIOCore
import NIOHTTP1

public struct HTTPTargetOptions: Sendable {
    public var secret: String
    /// The most connections the run's buyers may have open to each server at once (nil: as
    /// many as the process's descriptor limit allows, `LoadDefaults.httpConnections` at most).
    public var connections: Int?
    public var timeoutMilliseconds: Int

    public init(
        secret: String, connections: Int? = nil,
        timeoutMilliseconds: Int = LoadDefaults.httpRequestTimeoutMilliseconds
    ) {
        self.secret = secret
        self.connections = connections
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

public final class HTTPTarget: LoadTarget {
    public let strategy: Strategy
    public let databaseURL: String
    public let urls: [URL]
    /// One per URL, for the harness's own requests (probes, drops, /metrics); a user's
    /// requests all go to the same URL (`pool(for:)`).
    private let pools: [HTTPConnectionPool]
    let tokens: TokenMinter
    let options: HTTPTargetOptions
    /// What the servers' `/health` said that the run's user should hear first (a rate limit).
    public let notes: [String]

    /// Connects to every URL (each with `options.connections`), and checks that they run one
    /// strategy and answer ready.
    public static func connect(
        _ urls: [URL], databaseURL: String, options: HTTPTargetOptions
    ) async throws -> HTTPTarget {
        precondition(!urls.isEmpty, "a server target has at least one URL")
        var pools: [HTTPConnectionPool] = []
        var strategies: Set<Strategy> = []
        var notes: [String] = []
        var instances: [(url: URL, instance: String)] = []
        do {
            for url in urls {
                let (pool, health, instance) = try await probe(url, options: options)
                pools.append(pool)
                strategies.insert(health.strategy)
                if let note = health.rateLimits?.note(url) { notes.append(note) }
                if let instance { instances.append((url, instance)) }
            }
            try await ServerDatabaseCheck.verify(instances, databaseURL: databaseURL)
        } catch {
            for pool in pools { await pool.close() }
            throw error
        }
        guard strategies.count == 1, let strategy = strategies.first else {
            for pool in pools { await pool.close() }
            throw RunError.usage(
                "the servers at \(TargetChoice.servers(urls)) run different strategies: \(strategies.map(\.rawValue).sorted())"
            )
        }
        let tokens = await TokenMinter(secret: options.secret, lifetimeSeconds: LoadDefaults.tokenLifetimeSeconds)
        return HTTPTarget(
            urls: urls, strategy: strategy, databaseURL: databaseURL, pools: pools, tokens: tokens, options: options,
            notes: notes)
    }

    /// What a server's `/health` tells a load run.
    struct Health: Decodable {
        let strategy: Strategy
        /// nil: a server from before it said.
        let rateLimits: RateLimits?
    }

    struct RateLimits: Decodable {
        struct Limit: Decodable {
            let requestsPerSecond: Double
            let burst: Double
        }
        let perClientAddress: Limit?
        let perUser: Limit?

        /// A warning when a limit will throttle the run: every buyer comes from this machine's
        /// address, and a busy buyer may pass its own limit.
        func note(_ url: URL) -> String? {
            let limits = [("each client address", perClientAddress), ("each user", perUser)].compactMap { name, limit in
                limit.map {
                    "\(name) to \(String(format: "%g", $0.requestsPerSecond)) requests/s (burst \(String(format: "%g", $0.burst)))"
                }
            }
            guard !limits.isEmpty else { return nil }
            return "note: \(url.absoluteString) limits \(limits.joined(separator: " and ")); every buyer of this run "
                + "comes from this machine, so past that its answers are 429 rate_limited (counted as errors, nothing "
                + "applied): start the server with --no-rate-limit to load-test it"
        }
    }

    /// Asks the server which strategy it runs (`/health`), that it is ready, and that it
    /// accepts this run's tokens.
    private static func probe(
        _ url: URL, options: HTTPTargetOptions
    ) async throws -> (HTTPConnectionPool, Health, instance: String?) {
        guard url.scheme == "http", let host = url.host else {
            throw RunError.usage(
                "--target \(url.absoluteString): only http:// URLs are supported (put TLS in front with a proxy)")
        }
        // The harness calls /v1/… and /health at the server's root: a path it would drop silently.
        guard url.path.isEmpty || url.path == "/", url.query == nil else {
            throw RunError.usage(
                "--target \(url.absoluteString): a server's URL is its root (http://HOST:PORT); the harness calls /v1/… and /health there, so it cannot honour the path \(url.path)\(url.query.map { "?" + $0 } ?? "")"
            )
        }
        let pool = HTTPConnectionPool(
            host: host, port: url.port ?? 80, connections: LoadDefaults.httpControlConnections,
            timeoutMilliseconds: options.timeoutMilliseconds, eventLoopThreads: 1)
        do {
            let reply = try await pool.send(method: .GET, path: "/health")
            guard reply.status == 200,
                let health = try? JSONDecoder().decode(Health.self, from: Data(reply.body.readableBytesView))
            else {
                throw RunError.unavailable(
                    "\(url.absoluteString)/health answered \(reply.status); is it a stockdrop server?")
            }
            let ready = try await pool.send(method: .GET, path: "/ready")
            guard ready.status == 200 else {
                throw RunError.unavailable(
                    "\(url.absoluteString)/ready answered \(ready.status): \(String(buffer: ready.body))")
            }
            // The instance that answered, to find in the checker's database.
            struct Ready: Decodable { let instance: String? }
            let instance = (try? JSONDecoder().decode(Ready.self, from: Data(ready.body.readableBytesView)))?.instance
            let tokens = await TokenMinter(secret: options.secret, lifetimeSeconds: LoadDefaults.tokenLifetimeSeconds)
            // A wrong secret would turn every request into a 401, recorded as errors: refuse now.
            let probe = try await pool.send(
                method: .GET, path: "/v1/reservations/me",
                headers: [("Authorization", "Bearer \(try await tokens.adminToken(for: adminUser))")])
            guard probe.status == 200 else {
                throw RunError.usage(
                    "\(url.absoluteString) refused this run's token (\(probe.status)): is STOCKDROP_JWT_SECRET the server's?"
                )
            }
            return (pool, health, instance)
        } catch let error as HTTPClientError {
            await pool.close()
            throw RunError.unavailable("\(url.absoluteString): \(error)")
        } catch {
            await pool.close()
            throw error
        }
    }

    private init(
        urls: [URL], strategy: Strategy, databaseURL: String, pools: [HTTPConnectionPool], tokens: TokenMinter,
        options: HTTPTargetOptions, notes: [String]
    ) {
        self.notes = notes
        self.urls = urls
        self.strategy = strategy
        self.databaseURL = databaseURL
        self.pools = pools
        self.tokens = tokens
        self.options = options
    }

    /// Where each URL listens, in URL order (users are spread over them by id).
    var servers: [(host: String, port: Int)] { pools.map { ($0.host, $0.port) } }

    /// The pool of the first URL: where the run's drops are created and watchers connect.
    private var pool: HTTPConnectionPool { pools[0] }

    /// Users are spread over the URLs by id, so a user's claims always reach one instance.
    private func pool(for user: UserID) -> HTTPConnectionPool {
        pools[Int(UInt64(bitPattern: user) % UInt64(pools.count))]
    }

    /// The admin that creates the run's drops (an id far from virtual users').
    static let adminUser: UserID = 9_000_000_000_000

    public func createDrop(_ spec: DropSpec) async throws -> DropID {
        struct Body: Encodable {
            let name: String
            let priceCents: Int64
            let totalStock: Int
            let startsAt: String?
            let perUserLimit: Int
            let reserveTTLMilliseconds: Int
        }
        let body = Body(
            name: spec.name, priceCents: spec.priceCents, totalStock: spec.totalStock,
            startsAt: spec.startsAt.map { $0.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) },
            perUserLimit: spec.perUserLimit, reserveTTLMilliseconds: spec.reserveTTLMilliseconds)
        let token = try await tokens.adminToken(for: Self.adminUser)
        let reply = try await pool.send(
            method: .POST, path: "/v1/drops",
            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: ByteBuffer(bytes: try JSONEncoder().encode(body)))
        struct Created: Decodable { let id: DropID }
        guard reply.status == 201,
            let created = try? JSONDecoder().decode(Created.self, from: Data(reply.body.readableBytesView))
        else {
            let answer = "creating drop \(spec.name) answered \(reply.status): \(String(buffer: reply.body))"
            // 422: the drop is valid to the scenario's rules but not to this server's (a server
            // refuses a drop of 0 units, which runs in process): the scenario must change.
            if reply.status == 422 {
                throw RunError.refusedScenario("the server refused a drop of the scenario: \(answer)")
            }
            throw RunError.unavailable(answer)
        }
        return created.id
    }

    public func reserve(drop: DropID, user: UserID) async -> Answer {
        await call(.reserve, drop: drop, user: user)
    }

    public func purchase(drop: DropID, user: UserID, idempotencyKey: String) async -> Answer {
        await call(.purchase, drop: drop, user: user, idempotencyKey: idempotencyKey)
    }

    public func cancel(drop: DropID, user: UserID) async -> Answer {
        await call(.cancel, drop: drop, user: user)
    }

    /// Mints every user's token up front, so signing (~25 µs each through jwt-kit) is not
    /// part of the measured run.
    public func prepare(users: [UserID]) async throws {
        for user in users { _ = try await tokens.token(for: user) }
    }

    /// Watchers' user ids sit far from virtual users' and the admin's.
    static let firstWatcherUser: UserID = 8_000_000_000_000

    func watch(count: Int) async throws -> LiveWatchers {
        var tokens: [String] = []
        for index in 0..<count {
            tokens.append(try await self.tokens.token(for: Self.firstWatcherUser + UserID(index)))
        }
        return await LiveWatchers.connect(host: pool.host, port: pool.port, tokens: tokens)
    }

    public func close() async {
        for pool in pools { await pool.close() }
    }

    /// `process_cpu_seconds_total` from every instance's /metrics, summed; nil if one has none.
    public func cpuMicroseconds() async -> Int64? {
        var total: Int64 = 0
        for text in await metricsTexts() {
            guard let text, let seconds = Self.metric("process_cpu_seconds_total", in: text) else { return nil }
            total += Int64(seconds * 1_000_000)
        }
        return total
    }

    /// Whether any server answers `/health` (one that is up sweeps every drop's overdue holds,
    /// its own and those of instances gone), all asked at once every 250 ms until `seconds`
    /// have passed (a frozen one costs its own deadline, not the others' turn).
    public func answers(withinSeconds seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1_000)))
        while true {
            let up = await withTaskGroup(of: Bool.self) { group in
                for pool in pools {
                    group.addTask { (try? await pool.send(method: .GET, path: "/health"))?.status == 200 }
                }
                for await answered in group where answered {
                    group.cancelAll()
                    return true
                }
                return false
            }
            if up { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// The claim routes' latency histograms from every instance's /metrics, summed; nil if an
    /// instance did not answer.
    func serverHistogram() async -> ServerHistogram? {
        var total = ServerHistogram()
        for text in await metricsTexts() {
            guard let text else { return nil }
            total = total.adding(ServerHistogram.parse(text))
        }
        return total
    }

    private func metricsTexts() async -> [String?] {
        var texts: [String?] = []
        for pool in pools {
            let reply = try? await pool.send(method: .GET, path: "/metrics")
            texts.append(reply.flatMap { $0.status == 200 ? String(buffer: $0.body) : nil })
        }
        return texts
    }

    /// A metric's value in Prometheus's text format, summed over its series (labelled or not);
    /// nil when it has none.
    static func metric(_ name: String, in text: String) -> Double? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            total = (total ?? 0) + value
        }
        return total
    }

    /// What a success body carries that the history needs: a reservation's or a purchase's ids.
    struct Reply: Decodable {
        let id: Int64
        let reservationId: Int64?
    }

    /// The code of the server's error body, which it writes in one fixed shape
    /// (`{"error":{"code":"…",`): most answers in a drop are rejections, and a JSONDecoder
    /// per rejection was the generator's largest cost after its sockets. Anything else falls
    /// back to decoding.
    static func errorCode(_ body: ByteBuffer) -> String? {
        let prefix = #"{"error":{"code":""#.utf8
        return body.withUnsafeReadableBytes { bytes -> String? in
            guard bytes.starts(with: prefix) else { return nil }
            let rest = bytes[prefix.count...]
            guard let end = rest.firstIndex(of: UInt8(ascii: "\"")) else { return nil }
            return String(decoding: rest[..<end], as: UTF8.self)
        }
    }

    /// The server's failure codes that promise nothing was applied (docs/server.md, error table).
    static let nothingApplied: Set<String> = ["unavailable", "shutting_down", "owner_changing"]

    struct ErrorReply: Decodable {
        struct Detail: Decodable {
            let code: String
            let message: String?
        }
        let error: Detail
    }

    /// `already_holding` carries the caller's live hold.
    struct HoldingReply: Decodable {
        struct Hold: Decodable { let id: Int64 }
        let reservation: Hold?
    }

    /// One claim through the control connections (tests and one-off calls; a run's users go
    /// through the lanes, `HTTPTarget+Lanes`), as the same bytes.
    private func call(
        _ operation: OperationKind, drop: DropID, user: UserID, idempotencyKey: String = ""
    ) async -> Answer {
        do {
            let token = try await tokens.token(for: user)
            let pool = pool(for: user)
            var request = ByteBuffer()
            ClaimRequestBytes.write(
                operation, drop: drop, idempotencyKey: idempotencyKey, host: "\(pool.host):\(pool.port)", token: token,
                into: &request)
            let reply = try await pool.send(raw: request)
            return Self.answer(
                operation, status: reply.status, body: reply.body, retryAfterSeconds: reply.retryAfterSeconds)
        } catch let error as HTTPClientError where error.kind == .timeout {
            return .failure(.timeout, ErrorCause("timeout", "\(error)"))
        } catch {
            return .failure(.error, ErrorCause("connection lost", "\(error)"))
        }
    }

    /// What a claim's HTTP answer means for the history: a success with its ids, a rejection
    /// by its stable code (a shed request with the server's Retry-After), a failure that
    /// applied nothing, or, for anything else, an unknown outcome.
    static func answer(_ operation: OperationKind, status: Int, body: ByteBuffer, retryAfterSeconds: Int?) -> Answer {
        let success: Bool
        switch operation {
        case .reserve: success = status == 201
        case .purchase: success = status == 201 || status == 200
        case .cancel: success = status == 200
        }
        if success {
            guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(body.readableBytesView)) else {
                return .failure(
                    .error, ErrorCause("unreadable \(status)", "\(operation.rawValue) answered without its JSON"))
            }
            switch operation {
            case .reserve, .cancel: return Answer(.ok, reservationID: reply.id)
            case .purchase: return Answer(.ok, reservationID: reply.reservationId, purchaseID: reply.id)
            }
        }
        // Only the codes a claim's outcome has are answers; `unavailable`, `shutting_down`,
        // `owner_changing` and a rate limit's 429 (answered before any route) say nothing was
        // applied; the rest (`outcome_unknown`, internal) leave the outcome unknown.
        let claimStatus = [404, 409, 503].contains(status)
        let fastCode = errorCode(body)
        func reply() -> ErrorReply.Detail? {
            try? JSONDecoder().decode(ErrorReply.self, from: Data(body.readableBytesView)).error
        }
        guard claimStatus, let rejection = (fastCode ?? reply()?.code).flatMap(RejectionCode.init(rawValue:)) else {
            let detail = reply()
            let code = fastCode ?? detail?.code
            let cause = ErrorCause.http(status: status, code: code, message: detail?.message)
            return .failure(status == 429 || code.map(nothingApplied.contains) == true ? .failed : .error, cause)
        }
        switch rejection {
        case .alreadyHolding:
            // The body names the hold: the history ties the answer to its row.
            let held = try? JSONDecoder().decode(HoldingReply.self, from: Data(body.readableBytesView))
                .reservation?.id
            return Answer(.rejected(.alreadyHolding), reservationID: held)
        case .overloaded:
            return Answer(.rejected(.overloaded), retryAfterMilliseconds: retryAfterSeconds.map { $0 * 1_000 })
        default:
            return Answer(.rejected(rejection))
        }
    }
}
