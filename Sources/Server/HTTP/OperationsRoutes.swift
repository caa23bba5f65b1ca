// What operators and load balancers call: liveness, readiness, metrics and the API document.
// Registered before the rate limits and authentication, so probes are never throttled.
import Engine
import Foundation
import HTTPTypes
import Hummingbird

struct OperationsRoutes: Sendable {
    let engine: EngineHost
    let metrics: ServerMetrics

    struct Health: ResponseCodable, Sendable { let status: String; let strategy: String }
    struct Readiness: ResponseCodable, Sendable {
        let ready: Bool
        let database: String
        let schemaVersion: Int?
        let expectedSchemaVersion: Int
        let problem: String?
        /// `local` (no REDIS_URL: events stay in this instance), `ok`, or `degraded`: claims
        /// work either way, so a degraded relay does not make the instance unready.
        let events: String
    }

    static func eventsStatus(_ status: RedisRelay.Status?) -> String {
        switch status {
        case nil: "local"
        case .connected: "ok"
        case .connecting, .degraded: "degraded"
        }
    }

    func add(to router: Router<StockdropContext>) {
        let strategy = engine.strategy.rawValue
        router.get("/health") { _, _ in Health(status: "ok", strategy: strategy) }
        router.get("/ready") { _, _ in
            let readiness = await engine.readiness()
            let body = Readiness(ready: readiness.ready, database: readiness.databaseReachable ? "ok" : "unreachable",
                                 schemaVersion: readiness.schemaVersion, expectedSchemaVersion: Migrations.latestVersion, problem: readiness.problem,
                                 events: Self.eventsStatus(engine.relay?.status))
            return EditedResponse(status: readiness.ready ? .ok : .serviceUnavailable, response: body)
        }
        router.get("/metrics") { _, _ in
            await engine.refreshGauges()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        let document = OpenAPIDocument.json
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: document)))
        }
    }
}
