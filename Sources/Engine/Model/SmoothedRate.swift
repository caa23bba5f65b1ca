// A rate smoothed over its samples: the first sample as it is, then each new one weighing
// half. The drop's line learns how many claims a second its store takes from it, and the
// server how many answers a second it gives; both turn it into a count (how many fit within a
// latency target) to bound a queue.
public struct SmoothedRate: Sendable, Equatable {
    /// Events per second; 0 until the first sample.
    public private(set) var perSecond = 0.0

    public init() {}

    public mutating func add(_ sample: Double) {
        perSecond = perSecond == 0 ? sample : (perSecond + sample) / 2
    }

    /// How many events the rate gets through within `seconds`, bounded so that a burst of
    /// samples can never overflow the count.
    public func count(within seconds: Double) -> Int {
        Int(min(perSecond * seconds, Double(Int32.max)))
    }
}
