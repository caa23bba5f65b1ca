// Where a drop actor's batch time goes, summed over every batch of an engine: the store's
// round trip, the hop back onto the actor, the answers, and the gap before the next batch
// starts. The bench prints them (the database should never wait for the engine); the gap and the hop are
// time the database waits on Swift.
import Synchronization

public struct BatchStatistics: Sendable, Equatable, Codable {
    public var batches = 0
    public var claims = 0
    /// `store.apply` from call to return.
    public var storeMicroseconds = 0
    /// From the store's return to the actor running the batch's completion.
    public var hopMicroseconds = 0
    /// The completion: the machine's new state and every caller resumed.
    public var answerMicroseconds = 0
    /// From the store's return of one batch to the next batch's start on the same drop: the
    /// time the database waits on this drop's actor (hop and answers included when the next
    /// batch was already queued).
    public var gapMicroseconds = 0

    public init() {}

    public var claimsPerBatch: Double { Double(claims) / Double(max(batches, 1)) }
    public func mean(_ microseconds: Int) -> Double { Double(microseconds) / Double(max(batches, 1)) / 1000 }
}

final class BatchTimings: Sendable {
    private let batches = Atomic<Int>(0)
    private let claims = Atomic<Int>(0)
    private let store = Atomic<Int>(0)
    private let hop = Atomic<Int>(0)
    private let answer = Atomic<Int>(0)
    private let gap = Atomic<Int>(0)

    func record(claims count: Int, store: Duration, hop: Duration, answer: Duration, gap: Duration?) {
        batches.add(1, ordering: .relaxed)
        claims.add(count, ordering: .relaxed)
        self.store.add(Int(store.microseconds), ordering: .relaxed)
        self.hop.add(Int(hop.microseconds), ordering: .relaxed)
        self.answer.add(Int(answer.microseconds), ordering: .relaxed)
        if let gap { self.gap.add(Int(gap.microseconds), ordering: .relaxed) }
    }

    var statistics: BatchStatistics {
        var statistics = BatchStatistics()
        statistics.batches = batches.load(ordering: .relaxed)
        statistics.claims = claims.load(ordering: .relaxed)
        statistics.storeMicroseconds = store.load(ordering: .relaxed)
        statistics.hopMicroseconds = hop.load(ordering: .relaxed)
        statistics.answerMicroseconds = answer.load(ordering: .relaxed)
        statistics.gapMicroseconds = gap.load(ordering: .relaxed)
        return statistics
    }
}
