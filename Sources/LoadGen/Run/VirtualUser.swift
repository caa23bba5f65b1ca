// One buyer: arrive, reserve (retrying on rejection or error with backoff), think, then
// purchase, cancel or walk away. A value stepped by the run's scheduler (`UserScheduler`):
// each answer gives the next request and when it is meant to go, and no task exists while
// the buyer thinks or backs off, so a million of them fit in one process. Every choice comes
// from the user's own seeded generator, so a seed replays them.
import Engine
import Foundation

struct VirtualUser: Sendable {
    let user: UserID
    let drop: DropID
    let arrivalMicroseconds: Int64
    let behaviour: Population
    var random: SplitMix64
    private(set) var phase = Phase.arriving
    /// The run stopped while this user, turned away for stock before, was waiting to try again.
    private(set) var cutOffWhileTrying = false
    /// The request the user would have sent next had the run not stopped first (a purchase
    /// whose think time, or a retry whose backoff, ran past `limits.maxDuration`).
    private(set) var unsentAtStop: OperationKind?
    /// This user stopped trying while being shed (`overloaded`): the run stopped before its
    /// next try, or it was shed `LoadDefaults.maxShedRetries` times. Refused for the target's
    /// load, not for stock, so no part of the undersell check.
    private(set) var shedAtStop = false
    /// Its first request has been taken off the schedule (it arrived).
    private(set) var arrived = false
    /// The run stopped before this user's first send.
    private(set) var neverSent = false
    /// Answers that shed this user's request (503 `overloaded` with Retry-After) so far: they
    /// do not spend the scenario's retries, which are for answers about the drop, but they are
    /// bounded (`LoadDefaults.maxShedRetries`).
    private(set) var shedCount = 0

    init(user: UserID, drop: DropID, arrivalMicroseconds: Int64, behaviour: Population, random: SplitMix64) {
        self.user = user
        self.drop = drop
        self.arrivalMicroseconds = arrivalMicroseconds
        self.behaviour = behaviour
        self.random = random
    }

    enum Phase: Sendable, Equatable {
        case arriving
        /// Trying to reserve: retries spent so far, and whether the last answer turned it away
        /// for stock (sold out) rather than for an error or the target's load.
        case reserving(attempt: Int, turnedAway: Bool)
        /// Holding: purchasing or cancelling, retries spent so far.
        case settling(OperationKind, attempt: Int)
        case done
    }

    /// What the user does next.
    enum Step: Sendable, Equatable {
        case send(OperationKind, intendedMicroseconds: Int64)
        case finished
    }

    /// Rejections worth another try: stock may come back, the queue may drain, the drop may open.
    static let retryable: Set<RejectionCode> = [.soldOut, .overloaded, .notStarted]

    /// The first request: a reserve at the arrival time, unless the run stops first.
    mutating func start(stopMicroseconds: Int64) -> Step {
        guard arrivalMicroseconds < stopMicroseconds else {
            neverSent = true
            phase = .done
            return .finished
        }
        phase = .reserving(attempt: 0, turnedAway: false)
        return .send(.reserve, intendedMicroseconds: arrivalMicroseconds)
    }

    /// Marks the user arrived; true the first time (its first request is going out).
    mutating func arrive() -> Bool {
        defer { arrived = true }
        return !arrived
    }

    /// The key a user's purchase carries, the same on every retry: never two purchases.
    var idempotencyKey: String { "u\(user)-d\(drop)" }

    /// The answer to the request `phase` sent, heard at `nowMicroseconds`.
    mutating func answered(_ answer: Answer, nowMicroseconds: Int64, stopMicroseconds: Int64) -> Step {
        answered(
            answer.result, retryAfterMilliseconds: answer.retryAfterMilliseconds, nowMicroseconds: nowMicroseconds,
            stopMicroseconds: stopMicroseconds)
    }

    /// The answer to the request `phase` sent, heard at `nowMicroseconds`. A shed request
    /// (`overloaded` with the server's Retry-After) goes again after that wait, stretched by up
    /// to as much again at random so that the buyers shed together do not all come back in the
    /// same instant (full jitter).
    mutating func answered(
        _ result: OperationRecord.Result, retryAfterMilliseconds: Int? = nil, nowMicroseconds: Int64,
        stopMicroseconds: Int64
    ) -> Step {
        if result == .rejected(.overloaded), let retryAfterMilliseconds, phase != .arriving, phase != .done {
            return shed(
                retryAfterMilliseconds: retryAfterMilliseconds, nowMicroseconds: nowMicroseconds,
                stopMicroseconds: stopMicroseconds)
        }
        switch phase {
        case .arriving, .done:
            preconditionFailure("an answer reached a user with no request out")
        case .reserving(let attempt, _):
            let policy: RetryPolicy
            let turnedAway = result == .rejected(.soldOut)
            switch result {
            case .ok, .rejected(.alreadyHolding):
                // Already holding happens after an earlier attempt timed out yet committed.
                return settle(nowMicroseconds: nowMicroseconds, stopMicroseconds: stopMicroseconds)
            case .rejected(let code) where Self.retryable.contains(code):
                policy = behaviour.onRejected
            case .rejected:
                return finish()
            case .failed, .error, .timeout:
                policy = behaviour.onError
            }
            guard attempt < policy.retries else { return finish() }
            let intended =
                nowMicroseconds + Int64(policy.delayMilliseconds(beforeRetry: attempt, using: &random) * 1_000)
            guard intended < stopMicroseconds else {
                // Still trying for stock it was told was gone (not after an error or "not started"),
                // or still being shed.
                cutOffWhileTrying = turnedAway
                shedAtStop = result == .rejected(.overloaded)
                return finish(unsent: .reserve)
            }
            phase = .reserving(attempt: attempt + 1, turnedAway: turnedAway)
            return .send(.reserve, intendedMicroseconds: intended)
        case .settling(let operation, let attempt):
            guard result.isFailure, attempt < behaviour.onError.retries else { return finish() }
            // A retried purchase carries the same idempotency key: never two purchases.
            let intended =
                nowMicroseconds
                + Int64(behaviour.onError.delayMilliseconds(beforeRetry: attempt, using: &random) * 1_000)
            guard intended < stopMicroseconds else { return finish(unsent: operation) }
            phase = .settling(operation, attempt: attempt + 1)
            return .send(operation, intendedMicroseconds: intended)
        }
    }

    private mutating func shed(retryAfterMilliseconds: Int, nowMicroseconds: Int64, stopMicroseconds: Int64) -> Step {
        let operation: OperationKind
        switch phase {
        case .reserving(_, _): operation = .reserve
        case .settling(let settling, _): operation = settling
        case .arriving, .done: preconditionFailure("an answer reached a user with no request out")
        }
        shedCount += 1
        guard shedCount <= LoadDefaults.maxShedRetries else {
            shedAtStop = true
            return finish()
        }
        let waitMilliseconds = Double(max(retryAfterMilliseconds, 1)) * Double.random(in: 1..<2, using: &random)
        let intended = nowMicroseconds + Int64(waitMilliseconds * 1_000)
        guard intended < stopMicroseconds else {
            shedAtStop = true
            return finish(unsent: operation)
        }
        if case .reserving(let attempt, _) = phase { phase = .reserving(attempt: attempt, turnedAway: false) }
        return .send(operation, intendedMicroseconds: intended)
    }

    /// Think, then decide what to do with the hold.
    private mutating func settle(nowMicroseconds: Int64, stopMicroseconds: Int64) -> Step {
        let intended = nowMicroseconds + Int64(behaviour.thinkTime.draw(using: &random) * 1_000)
        let operation: OperationKind
        switch behaviour.afterReserve.choose(using: &random) {
        case .abandon: return finish()
        case .purchase: operation = .purchase
        case .cancel: operation = .cancel
        }
        guard intended < stopMicroseconds else { return finish(unsent: operation) }
        phase = .settling(operation, attempt: 0)
        return .send(operation, intendedMicroseconds: intended)
    }

    private mutating func finish(unsent: OperationKind? = nil) -> Step {
        unsentAtStop = unsent
        phase = .done
        return .finished
    }

    /// Sends one request at (or after) its intended time and records what came back.
    func send(
        _ operation: OperationKind, intended: Int64, on target: any LoadTarget, clock: RunClock, live: LiveCounters
    ) async -> (OperationRecord, Answer) {
        let sent = clock.nowMicroseconds
        live.sent.add(1, ordering: .relaxed)
        let answer: Answer
        switch operation {
        case .reserve: answer = await target.reserve(drop: drop, user: user)
        case .purchase: answer = await target.purchase(drop: drop, user: user, idempotencyKey: idempotencyKey)
        case .cancel: answer = await target.cancel(drop: drop, user: user)
        }
        live.record(answer, operation)
        let record = OperationRecord(
            operation: operation, result: answer.result, user: user, drop: drop, reservationID: answer.reservationID,
            purchaseID: answer.purchaseID, intendedMicroseconds: intended, sentMicroseconds: sent,
            answeredMicroseconds: clock.nowMicroseconds)
        live.latency(record)
        return (record, answer)
    }
}
