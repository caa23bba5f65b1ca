import Testing

// When an owner gives a drop to the instance its claims come from: only forwarded claims, all
// from one instance, enough of them, for a sustained time; then not again for a while.
@testable import Server

@Suite struct HandBackPolicyTests {
    func policy() -> HandBackPolicy {
        HandBackPolicy(claimsToHandBack: 3, sustainedSeconds: 5, gapSeconds: 2, cooldownSeconds: 30)
    }

    @Test func claimsForwardedFromOneInstanceForASustainedTimeHandTheDropOver() {
        var policy = policy()
        // Enough claims at once is not enough: the load must stay moved for 5 s.
        for tenth in 0..<50 { #expect(policy.answered(1, forwardedBy: "b~1", now: Double(tenth) / 10) == nil) }
        #expect(policy.answered(1, forwardedBy: "b~1", now: 5) == "b~1")
        // Handed over once; the cooldown keeps it from flapping.
        for second in 6..<35 { #expect(policy.answered(1, forwardedBy: "b~1", now: Double(second)) == nil) }
    }

    @Test func aBurstThatMovesForAMomentKeepsTheDropWhereItIs() {
        var policy = policy()
        // Forwarded from b for 4 s, then one claim comes directly (buyers are spread over both
        // instances): the streak starts over.
        for tenth in 0..<40 { _ = policy.answered(1, forwardedBy: "b~1", now: Double(tenth) / 10) }
        _ = policy.answered(1, forwardedBy: nil, now: 4)
        for tenth in 41..<80 { #expect(policy.answered(1, forwardedBy: "b~1", now: Double(tenth) / 10) == nil) }
        // A second sender starts it over too: no single place to hand the drop to.
        _ = policy.answered(2, forwardedBy: "b~1", now: 0)
        for second in 1..<5 { _ = policy.answered(2, forwardedBy: "b~1", now: Double(second)) }
        _ = policy.answered(2, forwardedBy: "c~1", now: 4.5)
        #expect(policy.answered(2, forwardedBy: "b~1", now: 5) == nil)
        // So does a pause longer than the gap.
        _ = policy.answered(3, forwardedBy: "b~1", now: 0)
        _ = policy.answered(3, forwardedBy: "b~1", now: 1)
        _ = policy.answered(3, forwardedBy: "b~1", now: 4)
        #expect(policy.answered(3, forwardedBy: "b~1", now: 5.5) == nil)
        // The streak from 4 s on lasts, and hands the drop over 5 s later.
        for second in 6...8 { #expect(policy.answered(3, forwardedBy: "b~1", now: Double(second)) == nil) }
        #expect(policy.answered(3, forwardedBy: "b~1", now: 9) == "b~1")
    }

    @Test func theShedHandlerKnowsAReserveByItsTemplate() {
        let (prefix, suffix) = RoutePaths.parts(of: RoutePaths.reserve)
        #expect(prefix == "/v1/drops/" && suffix == "/reserve")
        #expect(RoutePaths.parts(of: RoutePaths.cancel).suffix == "/reservation")
    }
}
