// What operators and load balancers call: liveness, readiness, metrics and the API document.
// Registered before the rate limits and authentication, so probes are never throttled.
import Engine
import Foundation
import HTTPTypes
import Hummingbird

struct OperationsRoutes: Sendable {
    let parts: ServerParts

    struct Health: ResponseCodable, Sendable {
        let status: String
        let strategy: String
        /// The request limits in force (a member absent: that limit is off), so a load tool can
        /// tell its users before a run that one client address is throttled.
        let rateLimits: RateLimits
    }
    struct RateLimits: Codable, Sendable {
        let perClientAddress: Limit?
        let perUser: Limit?
    }
    struct Limit: Codable, Sendable {
        let requestsPerSecond: Double
        let burst: Double

        init(_ limit: RateLimit) {
            requestsPerSecond = limit.requestsPerSecond
            burst = limit.burst
        }
    }
    struct Readiness: ResponseCodable, Sendable {
        let ready: Bool
        let database: String
        let schemaVersion: Int?
        let expectedSchemaVersion: Int
        let problem: String?
        /// `local` (no REDIS_URL: events stay in this instance), `ok`, or `degraded`: claims
        /// work either way, so a degraded relay does not make the instance unready.
        let events: String
        /// This instance, and what it does for the cluster (docs/design.md "Scale-out").
        let instance: String
        let cluster: Cluster
    }
    struct Cluster: Codable, Sendable {
        /// Drops whose actor (and lease) is on this instance.
        let ownedDrops: Int
        /// Claims sent on to another instance that owns their drop.
        let forwardedClaims: Int
        /// Drops taken over from an instance whose lease lapsed.
        let leaseTakeovers: Int
        /// Batches refused because this instance's lease had changed hands.
        let fencedBatches: Int
        /// Drops given to the instance their claims kept coming from.
        let dropsHandedBack: Int
    }

    static func eventsStatus(_ status: RedisRelay.Status?) -> String {
        switch status {
        case nil: "local"
        case .connected: "ok"
        case .connecting, .degraded: "degraded"
        }
    }

    func add(to router: Router<StockdropContext>) {
        let parts = self.parts
        let metrics = parts.metrics
        let strategy = parts.strategy.rawValue
        // Encoded once: it never changes, and balancers and probes ask for it all the time
        // (a JSONEncoder per answer was 3% of what /health cost).
        let limits = RateLimits(
            perClientAddress: parts.addressLimiter.map { Limit($0.limit) },
            perUser: parts.userLimiter.map { Limit($0.limit) })
        let health = ByteBuffer(
            bytes: (try? JSONEncoder().encode(Health(status: "ok", strategy: strategy, rateLimits: limits))) ?? Data())
        router.get("/health") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: health))
        }
        router.get("/ready") { _, _ in
            let readiness = await parts.readiness.check()
            let leases = parts.inventory.leases?.leaseStatistics() ?? LeaseStatistics()
            let body = Readiness(
                ready: readiness.ready,
                database: !readiness.databaseReachable ? "unreachable" : readiness.acceptsWrites ? "ok" : "read_only",
                schemaVersion: readiness.schemaVersion, expectedSchemaVersion: Migrations.latestVersion,
                problem: readiness.problem,
                events: Self.eventsStatus(parts.relay?.status), instance: parts.instance,
                cluster: Cluster(
                    ownedDrops: leases.ownedDrops, forwardedClaims: parts.forwarder.forwarded,
                    leaseTakeovers: leases.takeovers, fencedBatches: leases.fencedBatches,
                    dropsHandedBack: leases.handedBack))
            return EditedResponse(status: readiness.ready ? .ok : .serviceUnavailable, response: body)
        }
        router.get("/metrics") { _, _ in
            await parts.gauges.refresh()
            if let sink = parts.logSink { metrics.recordLogLines(dropped: sink.dropped, written: sink.written) }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        let document = OpenAPIDocument.json
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: document)))
        }
    }
}
