// Counters every virtual user bumps as it goes, read once a second for the progress line.
// Atomics, not a lock: 100,000 users must not queue behind one another to count. The latency
// of the last second, from the intended send and from the actual send, sits behind a lock
// taken once per answer (a few tens of ns: two event-loop lanes, or the in-process tasks).
import Synchronization

public final class LiveCounters: Sendable {
    let sent = Atomic<Int>(0)
    let ok = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let reserved = Atomic<Int>(0)
    let arrived = Atomic<Int>(0)
    let shed = Atomic<Int>(0)
    /// Sends the harness held more than `LoadDefaults.lateSendMilliseconds` past their time.
    let late = Atomic<Int>(0)
    /// The load is over and the run waits for its holds to end before checking.
    let draining = Atomic<Bool>(false)
    private let lastSecond = Mutex(SecondLatency())
    /// Failures by cause, taken only on a failure.
    private let causes = Mutex(ErrorTally())
    /// The live dashboard's, when one watches the run: it sees every answer too.
    let board: LiveBoard?

    struct SecondLatency {
        var fromIntended = LatencyHistogram()
        var fromSend = LatencyHistogram()
    }

    public init(board: LiveBoard? = nil) { self.board = board }

    /// One answered request's latency, both ways, into the current second's histograms.
    func latency(_ record: OperationRecord) {
        if record.harnessDelayMicroseconds > Int64(LoadDefaults.lateSendMilliseconds * 1_000) {
            late.add(1, ordering: .relaxed)
        }
        lastSecond.withLock {
            $0.fromIntended.record(record.latencyMicroseconds)
            $0.fromSend.record(record.sendToAnswerMicroseconds)
        }
        board?.absorb(record)
    }

    /// The latency since the last call: p99 from the intended send and from the actual send,
    /// in milliseconds (nil: nothing answered).
    func takeSecond() -> (fromIntended: Double, fromSend: Double)? {
        let second = lastSecond.withLock { second in
            defer { second = SecondLatency() }
            return second
        }
        guard second.fromIntended.totalCount > 0 else { return nil }
        return (second.fromIntended.percentiles.p99, second.fromSend.percentiles.p99)
    }

    func record(_ answer: Answer, _ operation: OperationKind) {
        record(answer.result, operation)
        guard answer.result.isFailure else { return }
        let cause = answer.cause ?? ErrorCause(answer.result.label)
        causes.withLock { $0.add(cause, operation) }
    }

    /// The run's failures by cause, most frequent first.
    var errorCauses: [ErrorCauseCount] { causes.withLock { $0.sorted } }

    private func record(_ result: OperationRecord.Result, _ operation: OperationKind) {
        switch result {
        case .ok:
            ok.add(1, ordering: .relaxed)
            if operation == .reserve { reserved.add(1, ordering: .relaxed) }
        case .rejected(.overloaded): shed.add(1, ordering: .relaxed)
        case .rejected: rejected.add(1, ordering: .relaxed)
        case .failed, .error, .timeout: errors.add(1, ordering: .relaxed)
        }
    }

    public var reading: CounterReading {
        let errors = errors.load(ordering: .relaxed)
        return CounterReading(
            arrived: arrived.load(ordering: .relaxed), sent: sent.load(ordering: .relaxed),
            ok: ok.load(ordering: .relaxed),
            rejected: rejected.load(ordering: .relaxed), errors: errors,
            reserved: reserved.load(ordering: .relaxed), shed: shed.load(ordering: .relaxed),
            late: late.load(ordering: .relaxed), commonestError: errors > 0 ? errorCauses.first?.cause : nil)
    }
}

public struct CounterReading: Sendable, Equatable {
    public var arrived, sent, ok, rejected, errors, reserved: Int
    /// Requests the target shed (`overloaded`), apart from the rejections about the drop.
    public var shed = 0
    /// Sends the harness itself held back past `LoadDefaults.lateSendMilliseconds`.
    public var late = 0
    /// The cause most errors so far had (nil: no error yet).
    public var commonestError: String? = nil
}
