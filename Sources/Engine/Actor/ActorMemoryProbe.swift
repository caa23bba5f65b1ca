// Measures what an actor's memory costs per ACTIVE reservation: resident memory
// (/proc/self/statm) before and after a DropMachine takes `holds` committed reservations.
// Enough holds that page granularity and allocator slack are noise.
import Foundation

public enum ActorMemoryProbe {
    public static func bytesPerActiveReservation(holds: Int = 1_000_000) -> Double {
        let drop = DropRecord(
            id: 1, spec: DropSpec(name: "probe", priceCents: 1, totalStock: holds), sold: 0, reserved: 0,
            createdAt: Date())
        let start = Date()
        let before = ProcessUsage.residentBytesNow()
        var machine = DropMachine(
            recovery: DropRecovery(drop: drop, activeHolds: [], purchases: []), now: start,
            maxBatchClaims: 1_024, maxQueuedClaims: holds)
        var nextID: ReservationID = 1
        var user: UserID = 1
        while user <= UserID(holds) {
            var tickets = 0
            while tickets < 1_024, user <= UserID(holds) {
                _ = machine.reserve(user: user, now: start)
                user += 1
                tickets += 1
            }
            // Commit the batch in flight as the store would, then the next one, until all are held.
            _ = machine.flush(now: start)
            while let batch = machine.inFlight.first?.claims {
                let results = batch.map { waiting -> ClaimResult in
                    defer { nextID += 1 }
                    return .reserved(
                        Reservation(
                            id: nextID, dropID: 1, userID: waiting.item.userID, status: .active,
                            createdAt: start, expiresAt: start.addingTimeInterval(60)))
                }
                let reserved = machine.drop.reserved + results.count
                _ = machine.committed(
                    BatchOutcome(results: results, expired: [], sold: 0, reserved: reserved, committedAt: start),
                    now: start)
            }
        }
        precondition(machine.activeHoldCount == holds)
        let after = ProcessUsage.residentBytesNow()
        withExtendedLifetime(machine) {}
        return Double(after - before) / Double(holds)
    }
}
