// What the server measures to decide when to shed (`ShedPolicy`): requests in flight and
// answers written (counted by `ShedHandler` on every connection), and how late each event loop
// runs its timers (a probe on each loop every `ServerDefaults.loopProbeMilliseconds`). Every
// `shedSampleMilliseconds` whichever probe comes first re-evaluates the policy, so one stuck
// loop cannot hold the decision back, and publishes it in atomics: the per-request question is
// then two loads and a compare, on the event loop, before anything else is spent on it.
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

public final class OverloadMonitor: Service, Sendable {
    /// Nil: shedding off (`--latency-target-ms 0`); requests are still counted.
    private let policy: Mutex<ShedPolicy?>
    private let sheds: Bool
    private let inFlight = Atomic<Int>(0)
    private let answers = Atomic<Int>(0)
    private let bound = Atomic<Int>(Int.max)
    private let loopsLate = Atomic<Bool>(false)
    private let retryAfter = Atomic<Int>(1)
    private let worstLagMicroseconds = Atomic<Int64>(0)
    private let sampledLagMicroseconds = Atomic<Int64>(0)
    private let lastSampleNanoseconds = Atomic<UInt64>(0)
    private let shedSinceNotice = Atomic<Int>(0)
    private let shedTotal = Atomic<Int>(0)
    private let group: any EventLoopGroup
    private let metrics: ServerMetrics
    private let logger: Logger

    public init(
        latencyTargetMilliseconds: Int, minimumInFlight: Int = ServerDefaults.shedMinimumInFlight,
        group: any EventLoopGroup, metrics: ServerMetrics, logger: Logger
    ) {
        sheds = latencyTargetMilliseconds > 0
        let policy =
            latencyTargetMilliseconds > 0
            ? ShedPolicy(
                targetMicroseconds: Int64(latencyTargetMilliseconds) * 1_000, minimumInFlight: minimumInFlight) : nil
        self.policy = Mutex(policy)
        // Until the first sample, the minimum alone bounds what is in flight.
        bound.store(policy?.inFlightBound ?? .max, ordering: .relaxed)
        self.group = group
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: - Per request (on the event loops)

    func began() { inFlight.add(1, ordering: .relaxed) }

    func ended() {
        inFlight.subtract(1, ordering: .relaxed)
        answers.add(1, ordering: .relaxed)
    }

    /// Whether a new reserve is refused now.
    var shouldShed: Bool {
        guard sheds else { return false }
        return loopsLate.load(ordering: .relaxed) || inFlight.load(ordering: .relaxed) >= bound.load(ordering: .relaxed)
    }

    var retryAfterSeconds: Int { retryAfter.load(ordering: .relaxed) }

    func shedOne() {
        shedSinceNotice.add(1, ordering: .relaxed)
        shedTotal.add(1, ordering: .relaxed)
        metrics.recordShed()
    }

    /// Requests being worked on now.
    var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    /// The event loops' worst lateness in the last sample (`shedSampleMilliseconds`).
    var loopLagMicroseconds: Int64 { sampledLagMicroseconds.load(ordering: .relaxed) }

    // MARK: - Measuring

    /// Probes every event loop until the server shuts down.
    public func run() async throws {
        let interval = TimeAmount.milliseconds(Int64(ServerDefaults.loopProbeMilliseconds))
        var probes: [RepeatedTask] = []
        for loop in group.makeIterator() {
            let expected = ExpectedRun(NIODeadline.now() + interval)
            probes.append(
                loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
                    let now = NIODeadline.now()
                    probed(lagMicroseconds: max(0, (now - expected.deadline).nanoseconds / 1_000), now: now)
                    expected.deadline = NIODeadline.now() + interval
                })
        }
        try? await gracefulShutdown()
        for probe in probes { probe.cancel() }
    }

    private func probed(lagMicroseconds: Int64, now: NIODeadline) {
        var worst = worstLagMicroseconds.load(ordering: .relaxed)
        while lagMicroseconds > worst {
            let (exchanged, found) = worstLagMicroseconds.compareExchange(
                expected: worst, desired: lagMicroseconds, ordering: .relaxed)
            if exchanged { break }
            worst = found
        }
        let sampleNanoseconds = UInt64(ServerDefaults.shedSampleMilliseconds) * 1_000_000
        let last = lastSampleNanoseconds.load(ordering: .relaxed)
        guard now.uptimeNanoseconds >= last + sampleNanoseconds,
            lastSampleNanoseconds.compareExchange(expected: last, desired: now.uptimeNanoseconds, ordering: .relaxed)
                .exchanged
        else { return }
        evaluate(nowMicroseconds: Int64(now.uptimeNanoseconds / 1_000))
    }

    private func evaluate(nowMicroseconds: Int64) {
        let lag = worstLagMicroseconds.exchange(0, ordering: .relaxed)
        sampledLagMicroseconds.store(lag, ordering: .relaxed)
        let working = inFlight.load(ordering: .relaxed)
        metrics.recordLoad(inFlight: working, loopLagMicroseconds: lag)
        let answered = answers.load(ordering: .relaxed)
        let shedSoFar = shedTotal.load(ordering: .relaxed)
        guard
            let decided = policy.withLock({ policy -> ShedPolicy? in
                policy?.sample(
                    nowMicroseconds: nowMicroseconds, answersSoFar: answered, shedSoFar: shedSoFar,
                    loopLagMicroseconds: lag)
                return policy
            })
        else { return }
        bound.store(decided.inFlightBound, ordering: .relaxed)
        loopsLate.store(decided.loopsLate, ordering: .relaxed)
        retryAfter.store(
            decided.retryAfterSeconds(inFlight: working, maxSeconds: ServerDefaults.maxRetryAfterSeconds),
            ordering: .relaxed)
        metrics.recordShedBound(decided.inFlightBound)
        // One line a second at most while shedding, never one per answer.
        let shed = shedSinceNotice.load(ordering: .relaxed)
        if shed > 0,
            nowMicroseconds / 1_000_000 != (nowMicroseconds - Int64(ServerDefaults.shedSampleMilliseconds) * 1_000)
                / 1_000_000
        {
            shedSinceNotice.subtract(shed, ordering: .relaxed)
            logger.notice(
                "shedding reserves: the server is past its latency target",
                metadata: [
                    "shed": "\(shed)", "in_flight": "\(working)", "in_flight_bound": "\(decided.inFlightBound)",
                    "answers_per_second": "\(Int(decided.answersPerSecond))", "loop_lag_ms": "\(lag / 1_000)",
                    "target_ms": "\(decided.targetMicroseconds / 1_000)",
                ])
        }
    }
}

/// When a loop's probe should run next; read and written only by that probe, on its loop.
private final class ExpectedRun: @unchecked Sendable {
    var deadline: NIODeadline
    init(_ deadline: NIODeadline) { self.deadline = deadline }
}
