// When each user of a population arrives, as offsets from the run's start: a pure function of
// the arrival model, so the same scenario always gives the same schedule.
extension Arrival {
    /// The `index`-th arrival (0-based), in microseconds after the run's start.
    public func offsetMicroseconds(ofArrival index: Int) -> Int64 {
        let k = Double(index)
        let seconds: Double
        switch self {
        case .burst:
            seconds = 0
        case .ramp(let to, let over):
            // Arrivals so far N(t) = to·t²/(2·over) while the rate climbs, then to per second.
            let duringRamp = to * over / 2
            seconds = k < duringRamp ? (2 * k * over / to).squareRoot() : over + (k - duringRamp) / to
        case .rate(let perSecond, _):
            seconds = k / perSecond
        }
        return Int64((seconds * 1_000_000).rounded())
    }

    /// How many of `count` users this model lets arrive (a rate stops after its `for`).
    public func arrivals(outOf count: Int) -> Int {
        if case .rate(let perSecond, let duration) = self {
            return min(count, Int((perSecond * duration).rounded(.up)))
        }
        return count
    }
}
