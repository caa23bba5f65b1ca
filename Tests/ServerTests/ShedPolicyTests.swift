import Testing

// When the server sheds a new reserve: past the requests it answers within the latency target
// at the rate it measured (Little's law), or while its event loops run later than the target.
// Pure: samples in, decisions out.
@testable import Server

@Suite struct ShedPolicyTests {
    /// 250 ms target, never below 100 in flight.
    func policy() -> ShedPolicy { ShedPolicy(targetMicroseconds: 250_000, minimumInFlight: 100) }

    @Test func admitsWhatItAnswersWithinTheTarget() {
        var policy = policy()
        // No rate measured yet: only the minimum bounds what is in flight.
        #expect(policy.inFlightBound == 100)
        #expect(!policy.sheds(inFlight: 99) && policy.sheds(inFlight: 100))
        // 2,000 answers in the first 100 ms: 20,000 a second, so 5,000 in flight take 250 ms.
        policy.sample(nowMicroseconds: 0, answersSoFar: 0, loopLagMicroseconds: 0)
        policy.sample(nowMicroseconds: 100_000, answersSoFar: 2_000, loopLagMicroseconds: 1_000)
        #expect(policy.answersPerSecond == 20_000)
        #expect(policy.inFlightBound == 5_000)
        #expect(!policy.sheds(inFlight: 4_999) && policy.sheds(inFlight: 5_000))
    }

    @Test func theRateIsSmoothed() {
        var policy = policy()
        policy.sample(nowMicroseconds: 0, answersSoFar: 0, loopLagMicroseconds: 0)
        policy.sample(nowMicroseconds: 100_000, answersSoFar: 2_000, loopLagMicroseconds: 0)
        // The next 100 ms answered nothing (a stalled database): the rate halves, not vanishes.
        policy.sample(nowMicroseconds: 200_000, answersSoFar: 2_000, loopLagMicroseconds: 0)
        #expect(policy.answersPerSecond == 10_000)
        #expect(policy.inFlightBound == 2_500)
    }

    @Test func lateEventLoopsShedEveryNewReserve() {
        var policy = policy()
        policy.sample(nowMicroseconds: 0, answersSoFar: 0, loopLagMicroseconds: 300_000)
        #expect(policy.loopsLate && policy.sheds(inFlight: 0))
        policy.sample(nowMicroseconds: 100_000, answersSoFar: 10, loopLagMicroseconds: 2_000)
        #expect(!policy.loopsLate && !policy.sheds(inFlight: 0))
    }

    @Test func retryAfterIsTheTimeToWorkOffTheBacklog() {
        var policy = policy()
        policy.sample(nowMicroseconds: 0, answersSoFar: 0, loopLagMicroseconds: 0)
        policy.sample(nowMicroseconds: 100_000, answersSoFar: 1_000, loopLagMicroseconds: 0)
        // 10,000 a second: 25,000 in flight take 2.5 s, asked as 3 s; never under 1 s or over the cap.
        #expect(policy.retryAfterSeconds(inFlight: 25_000, maxSeconds: 10) == 3)
        #expect(policy.retryAfterSeconds(inFlight: 10, maxSeconds: 10) == 1)
        #expect(policy.retryAfterSeconds(inFlight: 1_000_000, maxSeconds: 10) == 10)
        // Shedding 40,000 a second while answering 10,000: come back over 4 s, not as one flood.
        var flooded = self.policy()
        flooded.sample(nowMicroseconds: 0, answersSoFar: 0, shedSoFar: 0, loopLagMicroseconds: 0)
        flooded.sample(nowMicroseconds: 100_000, answersSoFar: 1_000, shedSoFar: 8_000, loopLagMicroseconds: 0)
        #expect(flooded.shedPerSecond == 40_000)
        #expect(flooded.retryAfterSeconds(inFlight: 10, maxSeconds: 10) == 4)
        // Requests in flight and nothing answered (a stall): the cap; nothing in flight: a second.
        #expect(self.policy().retryAfterSeconds(inFlight: 500, maxSeconds: 7) == 7)
        #expect(self.policy().retryAfterSeconds(inFlight: 0, maxSeconds: 7) == 1)
    }

    /// Answers stop with thousands in flight (a server draining on SIGTERM behind a slow
    /// database): the smoothed rate halves at every sample toward zero without reaching it,
    /// and the backlog's seconds outgrow any Int. The cap, not a trap.
    @Test func aRateThatDecayedTowardZeroAsksForTheCap() {
        var policy = policy()
        policy.sample(nowMicroseconds: 0, answersSoFar: 0, shedSoFar: 0, loopLagMicroseconds: 0)
        policy.sample(nowMicroseconds: 100_000, answersSoFar: 1_000, shedSoFar: 5_000, loopLagMicroseconds: 0)
        for sample in 2...1_200 {
            policy.sample(
                nowMicroseconds: Int64(sample) * 100_000, answersSoFar: 1_000, shedSoFar: 5_000, loopLagMicroseconds: 0)
            #expect((1...10).contains(policy.retryAfterSeconds(inFlight: 4_000, maxSeconds: 10)))
            #expect(policy.inFlightBound >= 0)
        }
        #expect(policy.answersPerSecond < 1e-300, "the rate decayed as far as the trap needed")
        #expect(policy.retryAfterSeconds(inFlight: 4_000, maxSeconds: 10) == 10)
    }
}
