// When the server refuses a new reserve at once instead of queueing it: a pure value fed with
// what the server measures (answers so far, how late its event loops run) and asked, per
// request, whether the work already in flight would keep a new one past the latency target.
// By Little's law a request admitted now waits about (requests in flight) ÷ (answers per
// second), so the server admits at most rate × target requests at once; and when its event
// loops themselves run later than the target, requests sit unread in their sockets longer than
// that, so every new reserve is shed. Purchases and cancels of live holds are never shed (the
// caller decides which requests to ask about); the answer applies nothing and says when to
// come back.
import Engine

struct ShedPolicy: Sendable, Equatable {
    /// The latency a buyer should not be kept waiting past, in microseconds.
    let targetMicroseconds: Int64
    /// Never shed with fewer requests in flight than this: an idle server's rate says nothing
    /// of what it could do, and a handful of slow requests is not an overload.
    let minimumInFlight: Int
    /// Answers per second over the samples.
    private var answerRate = SmoothedRate()
    /// Requests shed per second, each sample averaged with the last (from zero: unlike the
    /// answer rate, a first sample of shedding counts half).
    private(set) var shedPerSecond = 0.0
    /// The event loops' worst lateness in the last sample.
    private(set) var loopLagMicroseconds: Int64 = 0
    private var lastAnswers = 0
    private var lastShed = 0
    private var lastSampleMicroseconds: Int64?

    init(targetMicroseconds: Int64, minimumInFlight: Int) {
        precondition(targetMicroseconds > 0 && minimumInFlight >= 0)
        self.targetMicroseconds = targetMicroseconds
        self.minimumInFlight = minimumInFlight
    }

    /// A measurement at `nowMicroseconds`: answers written and requests shed so far, and the
    /// event loops' worst lateness since the last one.
    mutating func sample(nowMicroseconds: Int64, answersSoFar: Int, shedSoFar: Int = 0, loopLagMicroseconds: Int64) {
        self.loopLagMicroseconds = loopLagMicroseconds
        defer {
            lastAnswers = answersSoFar
            lastShed = shedSoFar
            lastSampleMicroseconds = nowMicroseconds
        }
        guard let last = lastSampleMicroseconds, nowMicroseconds > last else { return }
        let seconds = Double(nowMicroseconds - last) / 1e6
        answerRate.add(Double(answersSoFar - lastAnswers) / seconds)
        shedPerSecond = (shedPerSecond + Double(shedSoFar - lastShed) / seconds) / 2
    }

    var answersPerSecond: Double { answerRate.perSecond }

    /// Requests the server can have in flight and still answer a new one within the target.
    var inFlightBound: Int {
        max(minimumInFlight, answerRate.count(within: Double(targetMicroseconds) / 1e6))
    }

    /// The event loops run later than the target: requests wait unread in their sockets.
    var loopsLate: Bool { loopLagMicroseconds > targetMicroseconds }

    /// Whether a new reserve is refused now, with `inFlight` requests being worked on.
    func sheds(inFlight: Int) -> Bool { loopsLate || inFlight >= inFlightBound }

    /// When to come back: the time to work off what is in flight at the measured rate, or,
    /// when more is being shed than answered, long enough that the shed requests, spread over
    /// it, arrive no faster than the server answers (else they come back as one flood and are
    /// shed again). At least a second, the header's unit; at most `maxSeconds`.
    func retryAfterSeconds(inFlight: Int, maxSeconds: Int) -> Int {
        // Nothing in flight: nothing to wait for; in flight and nothing answered: a stall.
        let backlogSeconds =
            inFlight == 0 ? 0 : answersPerSecond > 0 ? Double(inFlight) / answersPerSecond : Double(maxSeconds)
        let spreadSeconds = answersPerSecond > 0 ? shedPerSecond / answersPerSecond : 0
        let lagSeconds = Double(loopLagMicroseconds) / 1e6
        let seconds = max(backlogSeconds, spreadSeconds) + lagSeconds
        // Compared as a Double first: a rate that decayed toward zero (seconds without an
        // answer, halved at every sample) makes the quotients larger than any Int, and
        // converting them trapped (a server crashed so while draining on SIGTERM).
        guard seconds < Double(maxSeconds) else { return maxSeconds }
        return max(1, Int(seconds.rounded(.up)))
    }
}
