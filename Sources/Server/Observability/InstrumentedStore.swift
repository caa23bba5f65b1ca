// The store, observed: every batch either strategy commits and every new drop passes through
// here, so batch sizes and commit latency are measured, and live events derived, without the
// engine knowing about metrics or sockets.
import Engine
import Foundation

struct InstrumentedStore: DropStore {
    let base: any DropStore
    let metrics: ServerMetrics
    let events: EventHub

    func apply(_ batch: ClaimBatch) async throws -> BatchOutcome {
        // Sweeps (batches with no claims, only expiries) are not group commits of claims.
        guard !batch.items.isEmpty else {
            let outcome = try await base.apply(batch)
            if !outcome.expired.isEmpty { await publish(batch, outcome) }
            return outcome
        }
        let started = ContinuousClock.now
        do {
            let outcome = try await base.apply(batch)
            metrics.recordBatch(claims: batch.items.count, nanoseconds: (ContinuousClock.now - started).nanoseconds, failed: false)
            await publish(batch, outcome)
            return outcome
        } catch {
            metrics.recordBatch(claims: batch.items.count, nanoseconds: 0, failed: true)
            throw error
        }
    }

    func createDrop(_ spec: DropSpec) async throws -> DropRecord {
        let record = try await base.createDrop(spec)
        events.dropCreated(record)
        return record
    }

    /// Events need the drop's total stock, which a batch does not carry: learnt once per drop.
    private func publish(_ batch: ClaimBatch, _ outcome: BatchOutcome) async {
        var total = events.knownTotal(of: batch.dropID)
        if total == nil { total = try? await base.snapshot(of: batch.dropID)?.drop.spec.totalStock }
        guard let total else { return }
        events.batchCommitted(batch, outcome, totalStock: total)
    }
    func listDrops(after cursor: DropID?, limit: Int) async throws -> [DropSnapshot] { try await base.listDrops(after: cursor, limit: limit) }
    func snapshot(of drop: DropID) async throws -> DropSnapshot? { try await base.snapshot(of: drop) }
    func recover(_ drop: DropID) async throws -> DropRecovery? { try await base.recover(drop) }
    func reservations(of user: UserID) async throws -> [Reservation] { try await base.reservations(of: user) }
    func dropsWithOverdueHolds() async throws -> [DropID] { try await base.dropsWithOverdueHolds() }
    func upsertUser(_ user: UserID, name: String, role: String) async throws { try await base.upsertUser(user, name: name, role: role) }
}
