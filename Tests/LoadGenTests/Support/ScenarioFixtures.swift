// Small scenarios and a target that is never called, for tests.
import Engine
import Foundation

@testable import LoadGen

enum ScenarioFixtures {
    static func scenario(
        users: Int, stock: Int, drops: Int = 1, ttlMilliseconds: Int = 300,
        after: AfterReserve = AfterReserve(purchase: 0.5, cancel: 0.2, abandon: 0.3)
    ) -> Scenario {
        Scenario(
            name: "fixture", description: nil, seed: 99, target: .inProcess, strategies: [.actor],
            drops: (0..<drops).map {
                DropPlan(
                    name: "Fixture \($0)", priceCents: 100, stock: stock, perUserLimit: 1,
                    reserveTTLMilliseconds: ttlMilliseconds, startsInMilliseconds: 0)
            },
            populations: [
                Population(
                    count: users, drop: drops == 1 ? .one(0) : .any, arrival: .burst,
                    thinkTime: .uniform(minMilliseconds: 1, maxMilliseconds: 20),
                    afterReserve: after, onRejected: RetryPolicy(retries: 1, backoffMilliseconds: 20), onError: .none)
            ],
            limits: RunLimits(maxDurationSeconds: 10, clockToleranceMilliseconds: 100),
            thresholds: [])
    }
}

struct NeverTarget: LoadTarget {
    var strategy: Strategy { .actor }
    var databaseURL: String { "" }
    func createDrop(_ spec: DropSpec) async throws -> DropID { fatalError("unused") }
    func reserve(drop: DropID, user: UserID) async -> Answer { fatalError("unused") }
    func purchase(drop: DropID, user: UserID, idempotencyKey: String) async -> Answer { fatalError("unused") }
    func cancel(drop: DropID, user: UserID) async -> Answer { fatalError("unused") }
    func close() async {}
}
