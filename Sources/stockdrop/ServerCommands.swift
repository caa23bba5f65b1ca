// `stockdrop serve` and `stockdrop token`.
import ArgumentParser
import Engine
import Foundation
import LoadGen
import Logging
import Server
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The HTTP API on the engine (DATABASE_URL, or the embedded database).")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (default: PORT, else \(ServerDefaults.port)).") var port: Int?
    @Option(help: "actor | rowlock") var strategy: Strategy = .actor
    @Option(
        help:
            "PostgreSQL connections (default: \(ServerDefaults.actorPoolSize) for actor, \(Defaults.rowLockPoolSize) for rowlock)."
    ) var poolSize: Int?
    @Option(help: "Requests/s per user, 0 for no limit.") var userRate = ServerDefaults.userRequestsPerSecond
    @Option(help: "Burst per user.") var userBurst = ServerDefaults.userBurstRequests
    @Option(help: "Requests/s per client address, 0 for no limit.") var addressRate = ServerDefaults
        .addressRequestsPerSecond
    @Option(help: "Burst per client address.") var addressBurst = ServerDefaults.addressBurstRequests
    @Flag(help: "Turn both rate limits off (load tests from one address).") var noRateLimit = false
    @Option(help: "Proxies whose X-Forwarded-For is trusted: IPs or CIDR ranges, comma-separated.") var trustedProxies =
        ""
    @Option(help: "trace | debug | info | notice | warning | error | critical") var logLevel = "info"
    @Option(help: "NIO threads serving sockets (default: one per core).") var eventLoopThreads: Int?
    @Option(
        help:
            "Redis for live events across instances: redis://host:port or unix:///path (default: REDIS_URL; unset: events stay in this process)."
    ) var redisURL: String?
    @Option(help: "stock.changed events per drop per second at most (the last value is always sent).")
    var stockEventsPerSecond = ServerDefaults.stockEventsPerSecond
    @Flag(help: "Generate a JWT secret when STOCKDROP_JWT_SECRET is unset, and print it.") var dev = false
    @Option(
        help:
            "This instance's name in drop leases and the instance directory, to which each process adds a random incarnation (default: STOCKDROP_INSTANCE_ID, else host-pid)."
    ) var instanceID: String?
    @Option(help: "The URL other instances forward claims to (default: http://HOST:PORT as bound).") var advertiseURL:
        String?
    @Option(help: "How long a drop's lease lasts without renewal, in ms: the takeover time after an instance dies.")
    var leaseMs = Defaults.leaseMilliseconds
    @Option(help: "Open connections accepted at most (HTTP and WebSocket); more wait in the listen backlog.")
    var maxConnections = ServerDefaults.maxConnections
    @Option(help: "How long a request waits for a free database connection before 503 unavailable, in ms.")
    var dbAcquireTimeoutMs = ServerDefaults.databaseDeadlines.acquireMilliseconds ?? 2_000
    @Option(
        help:
            "How long a statement's answer may take before its connection is dropped, in ms (statement_timeout is 1 s less)."
    )
    var dbAnswerTimeoutMs = ServerDefaults.databaseDeadlines.answerMilliseconds
    @Option(
        help:
            "The share of successful requests (status < 400) that get a log line, in (0, 1]; error lines are always written."
    )
    var logSample = 1.0
    @Option(
        help: ArgumentHelp(
            "The latency a buyer should not wait past, in ms; past it new reserves are shed (503 overloaded with Retry-After). 0 turns shedding off.",
            discussion:
                "The server admits as many requests at once as it answers within this at the rate it measures, and sheds every new reserve while its event loops run later than this. Purchases and cancels are never shed."
        ))
    var latencyTargetMs = ServerDefaults.latencyTargetMilliseconds

    func validate() throws {
        if let port, !(0...65_535).contains(port) { throw ValidationError("--port must be 0…65535 (0: any free port)") }
        if let poolSize, !(1...200).contains(poolSize) { throw ValidationError("--pool-size must be 1…200") }
        guard userRate >= 0, addressRate >= 0, userBurst >= 1, addressBurst >= 1 else {
            throw ValidationError("rates must be ≥ 0 and bursts ≥ 1")
        }
        if let eventLoopThreads, !(1...64).contains(eventLoopThreads) {
            throw ValidationError("--event-loop-threads must be 1…64")
        }
        guard stockEventsPerSecond > 0, stockEventsPerSecond <= 1_000 else {
            throw ValidationError("--stock-events-per-second must be in (0, 1000]")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: unknown level \(logLevel)")
        }
        guard (4 * Defaults.leaseSafetyMarginMilliseconds...600_000).contains(leaseMs) else {
            throw ValidationError("--lease-ms must be \(4 * Defaults.leaseSafetyMarginMilliseconds)…600000")
        }
        if let instanceID, !(1...200).contains(instanceID.utf8.count) || instanceID.contains(where: \.isWhitespace) {
            throw ValidationError("--instance-id must be 1 to 200 characters without spaces")
        }
        if let advertiseURL, !(advertiseURL.hasPrefix("http://") || advertiseURL.hasPrefix("https://")) {
            throw ValidationError("--advertise-url must be an http:// or https:// URL")
        }
        if advertiseURL == nil, ["0.0.0.0", "::", "[::]"].contains(host) {
            throw ValidationError(
                "--host \(host) listens on every address: say which one other instances reach with --advertise-url")
        }
        guard (1...1_000_000).contains(maxConnections) else {
            throw ValidationError("--max-connections must be 1…1000000")
        }
        guard (1...600_000).contains(dbAcquireTimeoutMs), (2_000...600_000).contains(dbAnswerTimeoutMs) else {
            throw ValidationError("--db-acquire-timeout-ms must be 1…600000 and --db-answer-timeout-ms 2000…600000")
        }
        if let instanceID, instanceID.contains("~") { throw ValidationError("--instance-id must not contain ~") }
        guard logSample > 0, logSample <= 1 else { throw ValidationError("--log-sample must be in (0, 1]") }
        guard (0...600_000).contains(latencyTargetMs) else {
            throw ValidationError("--latency-target-ms must be 0…600000 (0: never shed)")
        }
    }

    func run() async throws {
        // Log lines leave through a buffer and a writer thread of their own, never written on
        // the event loop (`LogSink`).
        let sink = LogSink()
        LoggingSystem.bootstrap { label in BufferedLogHandler(label: label, sink: sink) }
        defer { sink.flush() }
        let environment = ProcessInfo.processInfo.environment
        var secret = environment["STOCKDROP_JWT_SECRET"] ?? ""
        if secret.isEmpty {
            guard dev else {
                throw ValidationError(
                    "STOCKDROP_JWT_SECRET is not set; set it (32+ bytes) or pass --dev to generate one")
            }
            secret = TokenAuthority.generateSecret()
            FileHandle.standardOutput.write(Data("dev mode: STOCKDROP_JWT_SECRET=\(secret)\n".utf8))
        }
        let listenPort =
            try port ?? environment["PORT"].map { value in
                guard let port = Int(value), (1...65_535).contains(port) else {
                    throw ValidationError("PORT=\(value) is not a port")
                }
                return port
            } ?? ServerDefaults.port
        if let problem = ListenProbe.whyCannotListen(host: host, port: listenPort) {
            FileHandle.standardError.write(
                Data("serve: cannot listen on \(HTTPAddress.url(host: host, port: listenPort)): \(problem)\n".utf8))
            throw ExitCode(ExitStatus.unavailable)
        }
        var configuration = ServerConfiguration(
            host: host, port: listenPort, strategy: strategy, databaseURL: try await Database.prepare(),
            jwtSecret: secret,
            userRateLimit: noRateLimit || userRate == 0
                ? nil : RateLimit(requestsPerSecond: userRate, burst: userBurst),
            addressRateLimit: noRateLimit || addressRate == 0
                ? nil : RateLimit(requestsPerSecond: addressRate, burst: addressBurst),
            trustedProxies: try TrustedProxies(trustedProxies), poolSize: poolSize,
            logLevel: Logger.Level(rawValue: logLevel) ?? .info,
            eventLoopThreads: eventLoopThreads,
            redisURL: redisURL ?? environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 },
            stockEventsPerSecond: stockEventsPerSecond,
            owner: (instanceID ?? environment["STOCKDROP_INSTANCE_ID"]).map {
                .incarnation(of: $0, leaseMilliseconds: leaseMs)
            }
                ?? .unique(leaseMilliseconds: leaseMs),
            advertiseURL: advertiseURL?.trimmingSuffix("/"))
        configuration.maxConnections = maxConnections
        configuration.latencyTargetMilliseconds = latencyTargetMs
        configuration.logSink = sink
        configuration.logSuccessSample = logSample
        configuration.databaseDeadlines.acquireMilliseconds = dbAcquireTimeoutMs
        configuration.databaseDeadlines.answerMilliseconds = dbAnswerTimeoutMs
        configuration.databaseDeadlines.statementMilliseconds = dbAnswerTimeoutMs - 1_000
        let (application, parts) = try await buildApplication(configuration) { [configuration] channel in
            // Scripts read the port from the end of the "serving" line: it stays last.
            FileHandle.standardOutput.write(
                Data(
                    """
                    stockdrop instance \(configuration.owner.instance)
                    stockdrop serving \(configuration.strategy.rawValue) on \(HTTPAddress.url(host: host, port: channel.localAddress?.port ?? listenPort))

                    """.utf8))
        }
        // Services stop in reverse order: the notice first, so the log says when the drain began.
        // SIGTERM drains in-flight requests for at most the graceful bound, then cancels what is
        // left, and a cancellation that does not finish either ends the process: an instance
        // that must go away does, whatever it was waiting for.
        var group = ServiceGroupConfiguration(
            services: [
                application,
                ShutdownNotice(logger: application.logger, draining: parts.draining, sockets: parts.events.sockets),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: application.logger)
        group.maximumGracefulShutdownDuration = .milliseconds(ServerDefaults.gracefulShutdownMilliseconds)
        group.maximumCancellationDuration = .milliseconds(ServerDefaults.shutdownCancellationMilliseconds)
        try await ServiceGroup(configuration: group).run()
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mint a bearer token with STOCKDROP_JWT_SECRET.")

    @Option(help: "The user id (a positive integer).") var user: Int64
    @Option(help: "Display name shown in the purchase feed.") var name: String?
    @Option(help: "user | admin") var role: String = "user"
    @Option(help: "Lifetime in seconds.") var lifetime = ServerDefaults.tokenLifetimeSeconds

    func validate() throws {
        guard user > 0 else { throw ValidationError("--user must be a positive integer") }
        guard Caller.Role(rawValue: role) != nil else { throw ValidationError("--role must be user or admin") }
        guard lifetime > 0 else { throw ValidationError("--lifetime must be positive") }
    }

    func run() async throws {
        guard let secret = ProcessInfo.processInfo.environment["STOCKDROP_JWT_SECRET"], !secret.isEmpty else {
            throw ValidationError("STOCKDROP_JWT_SECRET is not set")
        }
        guard secret.utf8.count >= TokenAuthority.minimumSecretBytes else {
            throw ValidationError("STOCKDROP_JWT_SECRET must be at least \(TokenAuthority.minimumSecretBytes) bytes")
        }
        let minter = await TokenMinter(secret: secret, lifetimeSeconds: TimeInterval(lifetime))
        print(try await minter.mint(user: user, name: name ?? "user \(user)", role: role))
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

/// `stockdrop bench-server`: the bare Hummingbird reference the HTTP bench measures the real
/// server against (scripts/http-bench.sh), nothing else.
struct BenchServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-server",
        abstract: "A bare Hummingbird 2 application (GET /health only): the HTTP bench's reference.")

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port).") var port = 0
    @Option(help: "NIO threads serving sockets (default: one per core, as `serve`).") var eventLoopThreads: Int?

    func run() async throws {
        let host = self.host
        let application = buildReferenceApplication(host: host, port: port, eventLoopThreads: eventLoopThreads) {
            channel in
            FileHandle.standardOutput.write(
                Data(
                    "reference serving on \(HTTPAddress.url(host: host, port: channel.localAddress?.port ?? 0))\n".utf8)
            )
        }
        try await application.runService()
    }
}
