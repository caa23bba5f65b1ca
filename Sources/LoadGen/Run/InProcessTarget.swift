// The engine itself, either strategy, on a database of its own.
import Engine
import Foundation

public final class InProcessTarget: LoadTarget {
    public let inventory: any Inventory
    public let databaseURL: String
    private let pool: PostgresPool

    public var strategy: Strategy { inventory.strategy }

    public init(strategy: Strategy, databaseURL: String, rowLockPoolSize: Int = Defaults.rowLockPoolSize) {
        self.databaseURL = databaseURL
        pool = PostgresPool(
            url: databaseURL, size: strategy == .actor ? Defaults.actorBatchConnections : rowLockPoolSize)
        let store = PostgresStore(pool: pool)
        inventory = strategy == .actor ? ActorEngine(store: store) : RowLockEngine(store: store)
    }

    /// The whole process: the engine and the harness driving it share it.
    public func cpuMicroseconds() async -> Int64? { ProcessUsage.now().cpuMicroseconds }

    public func createDrop(_ spec: DropSpec) async throws -> DropID {
        try await inventory.createDrop(spec).id
    }

    public func reserve(drop: DropID, user: UserID) async -> Answer {
        do {
            switch try await inventory.reserve(drop: drop, user: user) {
            case .reserved(let reservation): return Answer(.ok, reservationID: reservation.id)
            case .alreadyHolding(let reservation):
                return Answer(.rejected(.alreadyHolding), reservationID: reservation?.id)
            case let outcome: return Answer(.rejected(outcome.rejection ?? .overloaded))
            }
        } catch {
            return Self.failure(error)
        }
    }

    public func purchase(drop: DropID, user: UserID, idempotencyKey: String) async -> Answer {
        do {
            switch try await inventory.purchase(drop: drop, user: user, idempotencyKey: idempotencyKey) {
            case .purchased(let purchase, _):
                return Answer(.ok, reservationID: purchase.reservationID, purchaseID: purchase.id)
            case let outcome: return Answer(.rejected(outcome.rejection ?? .overloaded))
            }
        } catch {
            return Self.failure(error)
        }
    }

    public func cancel(drop: DropID, user: UserID) async -> Answer {
        do {
            switch try await inventory.cancel(drop: drop, user: user) {
            case .cancelled(let reservation): return Answer(.ok, reservationID: reservation.id)
            case let outcome: return Answer(.rejected(outcome.rejection ?? .overloaded))
            }
        } catch {
            return Self.failure(error)
        }
    }

    /// Whether a failure left the claim's effect unknown or is known to have applied nothing.
    static func failure(_ error: any Error) -> Answer {
        guard let error = error as? EngineError else {
            return .failure(.error, ErrorCause("\(type(of: error))", "\(error)"))
        }
        return .failure(error.code.appliedNothing ? .failed : .error, ErrorCause(error.code.rawValue, error.message))
    }

    public func close() async {
        await inventory.shutdown()
        await pool.close()
    }
}
