// How many units were taken at each moment, rebuilt from rows: each row takes a unit at its
// start and gives it back at its release (never, for a unit sold or still held). The checker
// builds one per drop (units held or sold: invariant 1), per user (holds and purchases:
// invariant 3) and, with each release moved to the latest instant it can have taken effect,
// per drop again for invariant 6. Answers "the most units taken at any moment in [from, to]"
// in O(1) after an O(n log n) build (a sparse table over the step function), so checking
// 100,000 sold-out answers stays fast.
struct HeldUnitsTimeline {
    /// Times (epoch microseconds) where the count changes, ascending, and the count after each.
    private let times: [Int64]
    private let counts: [Int]
    private let sparse: [[Int]]
    /// The most units taken at once, and the first instant it happened (nil without rows).
    let peak: (units: Int, atMicroseconds: Int64)?

    struct Row {
        var createdMicroseconds: Int64
        /// Nil while the unit is still held (ACTIVE) or for good (PURCHASED).
        var releasedMicroseconds: Int64?

        /// Whether the row holds its unit at `moment` (a release at the same instant comes first).
        func takes(at moment: Int64) -> Bool {
            createdMicroseconds <= moment && (releasedMicroseconds.map { $0 > moment } ?? true)
        }
    }

    init(_ rows: [Row]) {
        var events: [(Int64, Int)] = []
        events.reserveCapacity(rows.count * 2)
        for row in rows {
            events.append((row.createdMicroseconds, 1))
            if let released = row.releasedMicroseconds { events.append((released, -1)) }
        }
        // At equal times apply releases first: a unit handed from one buyer to the next in the
        // same instant was never counted twice.
        events.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var times: [Int64] = []
        var counts: [Int] = []
        var current = 0
        for (time, delta) in events {
            current += delta
            if let last = times.last, last == time {
                counts[counts.count - 1] = current
            } else {
                times.append(time)
                counts.append(current)
            }
        }
        self.times = times
        self.counts = counts
        if let best = counts.indices.max(by: { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) }) {
            peak = (counts[best], times[best])
        } else {
            peak = nil
        }
        var sparse = [counts]
        var width = 1
        while width * 2 <= counts.count {
            let previous = sparse[sparse.count - 1]
            sparse.append((0...(counts.count - width * 2)).map { max(previous[$0], previous[$0 + width]) })
            width *= 2
        }
        self.sparse = sparse
    }

    /// The first instant at which at least `units` were taken, if ever.
    func firstInstant(reaching units: Int) -> Int64? {
        counts.firstIndex { $0 >= units }.map { times[$0] }
    }

    /// Units taken at `moment` (0 before the first row).
    func taken(at moment: Int64) -> Int {
        let index = lastIndex(atOrBefore: moment)
        return index >= 0 ? counts[index] : 0
    }

    /// The most units taken at any moment in [from, to].
    func mostTaken(from: Int64, to: Int64) -> Int {
        var best = taken(at: from)
        let first = lastIndex(atOrBefore: from) + 1
        let last = lastIndex(atOrBefore: to)
        if first <= last { best = max(best, rangeMax(first, last)) }
        return best
    }

    private func rangeMax(_ low: Int, _ high: Int) -> Int {
        let length = high - low + 1
        let level = Int.bitWidth - 1 - length.leadingZeroBitCount
        return max(sparse[level][low], sparse[level][high - (1 << level) + 1])
    }

    /// Index of the last change at or before `moment`, or -1.
    private func lastIndex(atOrBefore moment: Int64) -> Int {
        var low = 0
        var high = times.count
        while low < high {
            let mid = (low + high) / 2
            if times[mid] <= moment { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }
}
