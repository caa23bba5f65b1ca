import Engine
import Testing

// The step function of units taken, against a brute-force count.
@testable import LoadGen

@Suite struct HeldUnitsTimelineTests {
    @Test func matchesBruteForceOnRandomRows() {
        var random = SplitMix64(seed: 5)
        for _ in 0..<50 {
            let rows = (0..<Int.random(in: 0...60, using: &random)).map { _ -> HeldUnitsTimeline.Row in
                let created = Int64.random(in: 0...1_000, using: &random)
                let released: Int64? = random.chance(0.5) ? created + Int64.random(in: 0...300, using: &random) : nil
                return .init(createdMicroseconds: created, releasedMicroseconds: released)
            }
            let timeline = HeldUnitsTimeline(rows)
            func brute(_ m: Int64) -> Int {
                rows.count { $0.createdMicroseconds <= m && ($0.releasedMicroseconds.map { $0 > m } ?? true) }
            }
            for _ in 0..<40 {
                let from = Int64.random(in: -10...1_400, using: &random)
                let to = from + Int64.random(in: 0...200, using: &random)
                #expect(timeline.taken(at: from) == brute(from))
                #expect(timeline.mostTaken(from: from, to: to) == (from...to).map(brute).max())
            }
            let counts = (-10...1_400).map { (Int64($0), brute(Int64($0))) }
            let most = counts.map(\.1).max() ?? 0
            if rows.isEmpty {
                #expect(timeline.peak == nil)
            } else {
                #expect(timeline.peak?.units == most)
                #expect(timeline.peak?.atMicroseconds == counts.first { $0.1 == most }?.0)
            }
            for level in 1...4 { #expect(timeline.firstInstant(reaching: level) == counts.first { $0.1 >= level }?.0) }
        }
    }
}
