import Testing

// Arrival models as pure functions of the index.
@testable import LoadGen

@Suite struct ArrivalScheduleTests {
    @Test func burstArrivesAtOnce() {
        #expect((0..<100).allSatisfy { Arrival.burst.offsetMicroseconds(ofArrival: $0) == 0 })
    }

    @Test func rateSpacesArrivalsEvenlyAndStopsAfterItsWindow() {
        let rate = Arrival.rate(perSecond: 2_000, forSeconds: 3)
        #expect(rate.offsetMicroseconds(ofArrival: 0) == 0)
        #expect(rate.offsetMicroseconds(ofArrival: 1) == 500)
        #expect(rate.offsetMicroseconds(ofArrival: 2_000) == 1_000_000)
        #expect(rate.arrivals(outOf: 10_000) == 6_000)
        #expect(rate.arrivals(outOf: 10) == 10)
    }

    @Test func rampClimbsThenHolds() {
        let ramp = Arrival.ramp(toPerSecond: 1_000, overSeconds: 10)
        // 5,000 arrive during the 10 s climb (the area of the triangle), then 1,000 a second.
        #expect(ramp.offsetMicroseconds(ofArrival: 5_000) == 10_000_000)
        #expect(ramp.offsetMicroseconds(ofArrival: 6_000) == 11_000_000)
        // Half the time of the climb lets in a quarter of its arrivals.
        #expect(ramp.offsetMicroseconds(ofArrival: 1_250) == 5_000_000)
        let offsets = (0..<8_000).map(ramp.offsetMicroseconds(ofArrival:))
        #expect(offsets == offsets.sorted())
    }

    @Test func sameSeedSamePlanAndChoices() {
        let scenario = ScenarioFixtures.scenario(users: 300, stock: 10, drops: 3)
        let plan = { () -> [String] in
            StrategyLoad(scenario: scenario, target: NeverTarget(), live: LiveCounters(), progress: { _ in })
                .plannedUsers([
                    11, 12, 13,
                ]).map { user in
                    var random = user.random
                    let think = user.behaviour.thinkTime.draw(using: &random)
                    return
                        "\(user.user) \(user.drop) \(user.arrivalMicroseconds) \(think) \(user.behaviour.afterReserve.choose(using: &random))"
                }
        }
        let first = plan()
        #expect(first == plan())
        #expect(Set(first.map { $0.split(separator: " ")[1] }).count == 3)
        var other = scenario
        other.seed += 1
        let reseeded = StrategyLoad(scenario: other, target: NeverTarget(), live: LiveCounters(), progress: { _ in })
            .plannedUsers([11, 12, 13])
        #expect(
            reseeded.map(\.drop)
                != StrategyLoad(scenario: scenario, target: NeverTarget(), live: LiveCounters(), progress: { _ in })
                .plannedUsers([11, 12, 13]).map(\.drop))
    }
}
