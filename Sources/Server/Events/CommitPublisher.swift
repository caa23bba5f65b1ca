// What a committed batch changes outside the engine: the drop's read view (at once, so a caller
// that reads after its answer sees its commit) and the live events. The engines call it as the
// batch commits; it only updates a map and appends to a queue, and reads nothing from the store
// (the batch's outcome carries the drop's total stock).
import Engine

struct CommitPublisher: Sendable {
    let events: EventHub
    let reads: DropReads

    func committed(_ batch: ClaimBatch, _ outcome: BatchOutcome) {
        // Sweeps that expired nothing changed nothing.
        guard !batch.items.isEmpty || !outcome.expired.isEmpty else { return }
        var purchases: [RecentPurchase] = []
        for result in outcome.results {
            guard case .purchased(let purchase, let replayed) = result, !replayed else { continue }
            purchases.append(
                RecentPurchase(
                    purchaseID: purchase.id, userID: purchase.userID, buyerName: reads.buyerName(of: purchase.userID),
                    createdAt: purchase.createdAt))
        }
        reads.committed(
            drop: batch.dropID, sold: outcome.sold, reserved: outcome.reserved, committedAt: outcome.committedAt,
            purchases: purchases)
        // No total: the store did not know the drop, and nothing changed.
        guard let total = outcome.totalStock else { return }
        events.batchCommitted(batch, outcome, totalStock: total)
    }
}
