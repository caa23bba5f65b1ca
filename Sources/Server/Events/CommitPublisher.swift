// Live events from committed batches. The engines call it after the batch's callers have their
// answers, so publishing never delays an answer.
import Engine

struct CommitPublisher: Sendable {
    let events: EventHub
    let store: any DropStore

    func committed(_ batch: ClaimBatch, _ outcome: BatchOutcome) {
        // Sweeps that expired nothing changed nothing.
        guard !batch.items.isEmpty || !outcome.expired.isEmpty else { return }
        if let total = events.knownTotal(of: batch.dropID) {
            events.batchCommitted(batch, outcome, totalStock: total)
            return
        }
        // Events need the drop's total stock, which a batch does not carry: learnt once per drop.
        let events = self.events
        let store = self.store
        Task {
            guard let total = try? await store.snapshot(of: batch.dropID)?.drop.spec.totalStock else { return }
            events.batchCommitted(batch, outcome, totalStock: total)
        }
    }
}
