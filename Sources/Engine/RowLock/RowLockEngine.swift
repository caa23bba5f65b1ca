// The baseline, kept on purpose: the seed's strategy. Every request is its own transaction
// that takes the drop row's lock (`SELECT … FOR UPDATE` inside stockdrop_apply_batch, a
// batch of one) over a fixed pool of connections; a periodic sweeper expires overdue holds.
// Same operations, same outcomes, same SQL as the actor strategy: only the batching differs.
import Foundation
import Synchronization

public final class RowLockEngine: StoreBackedInventory {
    public let strategy = Strategy.rowlock
    public let store: any DropStore
    private let sweeper: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let accepting = Atomic<Bool>(true)

    /// `sweepInterval: nil` disables the sweeper (simulations sweep through requests).
    public init(store: any DropStore, clock: any WallClock = SystemClock(),
                sweepInterval: TimeInterval? = Double(Defaults.sweepIntervalMilliseconds) / 1000) {
        self.store = store
        if let sweepInterval {
            sweeper.withLock {
                $0 = Task { [store] in
                    while !Task.isCancelled {
                        do { try await clock.sleep(until: clock.now().addingTimeInterval(sweepInterval)) } catch { return }
                        try? await Self.sweep(store)
                    }
                }
            }
        }
    }

    /// Expires overdue holds on every drop that has some, one transaction per drop.
    static func sweep(_ store: any DropStore) async throws {
        for drop in try await store.dropsWithOverdueHolds() {
            _ = try await store.apply(ClaimBatch(dropID: drop, items: []))
        }
    }

    public func reserve(drop: DropID, user: UserID) async throws -> ReserveOutcome {
        switch try await one(ClaimItem(.reserve, user: user), on: drop) {
        case .reserved(let reservation): return .reserved(reservation)
        case .rejected(.alreadyHolding): return .alreadyHolding(nil)
        case .rejected(.soldOut): return .soldOut
        case .rejected(.limitReached): return .limitReached
        case .rejected(.notStarted):
            let startsAt = try await store.snapshot(of: drop)?.drop.spec.startsAt
            return .notStarted(until: startsAt ?? .distantPast)
        case .rejected(.unknownDrop): return .unknownDrop
        case let other: throw EngineError(.batchFailed, "unexpected result \(other) for a reserve")
        }
    }

    public func purchase(drop: DropID, user: UserID, idempotencyKey: String?) async throws -> PurchaseOutcome {
        switch try await one(ClaimItem(.purchase, user: user, idempotencyKey: idempotencyKey), on: drop) {
        case .purchased(let purchase, let replayed): return .purchased(purchase, replayed: replayed)
        case .rejected(.expired): return .expired
        case .rejected(.unknownDrop): return .unknownDrop
        case .rejected: return .noActiveReservation
        case let other: throw EngineError(.batchFailed, "unexpected result \(other) for a purchase")
        }
    }

    public func cancel(drop: DropID, user: UserID) async throws -> CancelOutcome {
        switch try await one(ClaimItem(.cancel, user: user), on: drop) {
        case .cancelled(let reservation): return .cancelled(reservation)
        case .rejected(.unknownDrop): return .unknownDrop
        case .rejected: return .noActiveReservation
        case let other: throw EngineError(.batchFailed, "unexpected result \(other) for a cancel")
        }
    }

    public func shutdown() async {
        accepting.store(false, ordering: .sequentiallyConsistent)
        sweeper.withLock { $0?.cancel() }
    }

    private func one(_ item: ClaimItem, on drop: DropID) async throws -> ClaimResult {
        guard accepting.load(ordering: .relaxed) else { throw EngineError(.shuttingDown, "the engine is shutting down") }
        do {
            return try await store.apply(ClaimBatch(dropID: drop, items: [item])).results[0]
        } catch {
            throw DropActor.engineError(error, .batchFailed)
        }
    }
}
