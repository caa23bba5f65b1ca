// Sends a claim on to the instance that owns its drop (docs/design.md "Scale-out") and returns
// the owner's answer unchanged. The caller's bearer token goes along (the owner verifies it
// itself), with the time the caller still waits and the sender's id, which is also the hop
// limit (`ClaimPath`). It also watches where an owner's claims come from, to hand a drop back
// to the instance the balancer sends its buyers to (`HandBackPolicy`).
import AsyncHTTPClient
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import Synchronization

final class ClaimForwarder: Sendable {
    private let directory: InstanceDirectory
    private let metrics: ServerMetrics
    /// The strategy's leases (nil for rowlock, which has no owners to forward to).
    let leases: (any DropLeases)?
    private let forwardedCount = Atomic<Int>(0)
    private let handBack = Mutex(HandBackPolicy())
    private let started = ContinuousClock.now
    /// Made on the first forward: a lone instance never opens one.
    private let clientBox = Mutex<HTTPClient?>(nil)

    init(directory: InstanceDirectory, metrics: ServerMetrics, leases: (any DropLeases)?) {
        self.directory = directory
        self.metrics = metrics
        self.leases = leases
    }

    /// This owner answered a claim on `drop`: perhaps the drop belongs where its claims come
    /// from (HandBackPolicy).
    func answered(_ drop: DropID, forwardedBy sender: String?) {
        guard let leases else { return }
        let now = (ContinuousClock.now - started).seconds
        guard handBack.withLock({ $0.answered(drop, forwardedBy: sender, now: now) }) != nil else { return }
        metrics.recordHandBack()
        Task { await leases.handBack(drop) }
    }

    private var client: HTTPClient {
        clientBox.withLock { client in
            if let client { return client }
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(
                idleTimeout: .seconds(60),
                concurrentHTTP1ConnectionsPerHostSoftLimit: ServerDefaults.forwardConnectionsPerInstance)
            // A connection that cannot be made in a second is to an instance that is gone.
            configuration.timeout = .init(connect: .seconds(1))
            // A refused connection fails the forward at once (503, nothing applied: the caller
            // retries). With AsyncHTTPClient's default backoff, forwards to an address where an
            // instance died kept failing for seconds after a new one started there.
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.redirectConfiguration = .disallow
            let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            client = made
            return made
        }
    }

    var instance: String { directory.instance }

    /// Claims this instance sent on to their owner.
    var forwarded: Int { forwardedCount.load(ordering: .relaxed) }

    func shutdown() async {
        let client = clientBox.withLock { client in
            defer { client = nil }
            return client
        }
        try? await client?.shutdown()
    }

    /// A claim this instance will not forward (the hop limit, or no owner to name): the caller
    /// hears `owner_changing`, which applied nothing.
    func refused() -> APIError {
        metrics.recordForward(result: "refused")
        return APIError(.ownerChanging, Self.changing)
    }

    /// The owner's answer to a claim on `drop`, and whether it said it no longer runs the drop
    /// (`owner_changing`).
    func forward(
        _ request: Request, on drop: DropID, to owner: String, context: StockdropContext
    ) async throws -> (response: Response, ownerMoved: Bool) {
        guard let address = try await directory.address(of: owner) else {
            metrics.recordForward(result: "unreachable")
            context.logger.warning("owner not in the directory", metadata: ["owner": "\(owner)"])
            throw APIError(.unavailable, unreachable)
        }
        let timeout = Self.timeoutMilliseconds(of: request)
        var outbound = HTTPClientRequest(url: address + request.uri.description)
        outbound.method = .init(rawValue: request.method.rawValue)
        for name in [HTTPField.Name.authorization, .idempotencyKey, .xRequestID, .contentType] {
            if let value = request.headers[name] { outbound.headers.add(name: name.rawName, value: value) }
        }
        outbound.headers.add(name: HTTPField.Name.stockdropForwardedBy.rawName, value: directory.instance)
        // The client's address, so the owner's per-address limit counts the client and not this
        // instance (the owner trusts it when the instances are among its --trusted-proxies).
        outbound.headers.add(name: HTTPField.Name.xForwardedFor.rawName, value: context.clientAddress)
        outbound.headers.add(name: HTTPField.Name.stockdropDeadline.rawName, value: String(timeout))
        forwardedCount.add(1, ordering: .relaxed)
        let answer: HTTPClientResponse
        let body: ByteBuffer
        do {
            answer = try await client.execute(outbound, timeout: .milliseconds(timeout))
            body = try await answer.body.collect(upTo: ServerDefaults.forwardedBodyMaxBytes)
        } catch  where Self.neverSent(error) {
            metrics.recordForward(result: "unreachable")
            context.logger.warning("owner unreachable", metadata: ["owner": "\(owner)", "error": "\(error)"])
            throw APIError(.unavailable, unreachable)
        } catch {
            // Sent, and then the answer was lost or late: the claim may have been applied.
            metrics.recordForward(result: "unknown")
            context.logger.warning("forwarded claim lost", metadata: ["owner": "\(owner)", "error": "\(error)"])
            throw APIError(.outcomeUnknown, APIError.Code.outcomeUnknown.meaning)
        }
        metrics.recordForward(result: "answered")
        var ownerMoved = false
        if answer.status.code == 503, String(buffer: body).contains(#""code":"owner_changing""#) {
            // That instance no longer runs the drop: the next claim asks the store.
            leases?.forgetOwner(of: drop)
            ownerMoved = true
        }
        var headers = HTTPFields()
        for (name, value) in answer.headers {
            guard let field = HTTPField.Name(name), Self.returnedHeaders.contains(field) else { continue }
            headers[field] = value
        }
        return (
            Response(status: .init(code: Int(answer.status.code)), headers: headers, body: .init(byteBuffer: body)),
            ownerMoved
        )
    }

    private static let returnedHeaders: Set<HTTPField.Name> = [
        .contentType, .retryAfter, .location, .idempotentReplayed, .wwwAuthenticate, .stockdropInstance,
    ]

    static let changing = "the drop's owner is changing between instances; nothing was applied, retry shortly"
    /// Names this instance's own lease (`--lease-ms`), which every instance of a cluster shares.
    var unreachable: String {
        let leaseMilliseconds = leases?.owner.leaseMilliseconds ?? Defaults.leaseMilliseconds
        return "the instance that owns this drop is unreachable; nothing was applied. Its lease lapses "
            + "within \(leaseMilliseconds) ms and another instance takes the drop over: retry shortly"
    }

    /// The caller's remaining wait in milliseconds: what the sender said, else the default.
    private static func timeoutMilliseconds(of request: Request) -> Int64 {
        let most = Int64(ServerDefaults.forwardTimeoutMilliseconds)
        return max(1, min(request.headers[.stockdropDeadline].flatMap { Int64($0) } ?? most, most))
    }

    /// Failures that happen before a byte of the request left: no connection could be made.
    /// Anything else may have reached the owner.
    static func neverSent(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError {
            return error == .connectTimeout || error == .getConnectionFromPoolTimeout
        }
        if error is NIOConnectionError { return true }
        if let error = error as? IOError { return error.errnoCode == ECONNREFUSED }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        return false
    }
}
