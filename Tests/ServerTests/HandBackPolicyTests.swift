import Testing

// When an owner gives a drop to the instance its claims come from: only forwarded claims, all
// from one instance, enough of them within one window; then not again for a while.
@testable import Server

@Suite struct HandBackPolicyTests {
    @Test func claimsForwardedFromOneInstanceHandTheDropOver() {
        var policy = HandBackPolicy(claimsToHandBack: 3, windowSeconds: 2, cooldownSeconds: 30)
        #expect(policy.answered(1, forwardedBy: "b~1", now: 0) == nil)
        #expect(policy.answered(1, forwardedBy: "b~1", now: 0.5) == nil)
        #expect(policy.answered(1, forwardedBy: "b~1", now: 1) == "b~1")
        // Handed over once; the cooldown keeps it from flapping.
        for second in 2..<30 { #expect(policy.answered(1, forwardedBy: "b~1", now: Double(second)) == nil) }
    }

    @Test func aDirectClaimOrASecondSenderKeepsTheDropWhereItIs() {
        var policy = HandBackPolicy(claimsToHandBack: 3, windowSeconds: 2, cooldownSeconds: 30)
        _ = policy.answered(1, forwardedBy: nil, now: 0)  // the balancer sends it here too
        #expect(policy.answered(1, forwardedBy: "b~1", now: 0.1) == nil)
        #expect(policy.answered(1, forwardedBy: "b~1", now: 0.2) == nil)
        #expect(policy.answered(1, forwardedBy: "b~1", now: 0.3) == nil)
        _ = policy.answered(2, forwardedBy: "b~1", now: 0)
        _ = policy.answered(2, forwardedBy: "c~1", now: 0.1)
        #expect(policy.answered(2, forwardedBy: "b~1", now: 0.2) == nil, "two senders: no single place to hand it to")
        // A new window starts clean.
        _ = policy.answered(1, forwardedBy: "b~1", now: 3)
        _ = policy.answered(1, forwardedBy: "b~1", now: 3.1)
        #expect(policy.answered(1, forwardedBy: "b~1", now: 3.2) == "b~1")
    }

    @Test func onlyClaimRoutesNameADrop() {
        #expect(ClaimForwarder.claimedDrop("/v1/drops/17/reserve") == 17)
        #expect(ClaimForwarder.claimedDrop("/v1/drops/17/reservation") == 17)
        #expect(ClaimForwarder.claimedDrop("/v1/drops/17") == nil)
        #expect(ClaimForwarder.claimedDrop("/v1/drops/x/purchase") == nil)
        #expect(ClaimForwarder.claimedDrop("/v1/reservations/me") == nil)
    }
}
