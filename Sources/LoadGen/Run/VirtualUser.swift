// One buyer: arrive, reserve (retrying on rejection or error with backoff), think, then
// purchase, cancel or walk away. A value plus a task, not a thread: 100,000 of them fit in one
// process. Every choice comes from the user's own seeded generator, so a seed replays them.
import Engine
import Foundation

struct VirtualUser: Sendable {
    let user: UserID
    let drop: DropID
    let arrivalMicroseconds: Int64
    let behaviour: Population
    var random: SplitMix64

    struct Trace: Sendable {
        var records: [OperationRecord] = []
        /// The run stopped while this user, turned away before, was waiting to try again.
        var cutOffWhileTrying = false
        /// The run stopped before this user's first send.
        var neverSent = false
    }

    /// Rejections worth another try: stock may come back, the queue may drain, the drop may open.
    static let retryable: Set<RejectionCode> = [.soldOut, .overloaded, .notStarted]

    mutating func run(on target: any LoadTarget, clock: RunClock, stopMicroseconds: Int64, live: LiveCounters) async -> Trace {
        var trace = Trace()
        var intended = arrivalMicroseconds
        guard intended < stopMicroseconds else {
            trace.neverSent = true
            return trace
        }
        live.arrived.add(1, ordering: .relaxed)

        // Reserve, with retries.
        var attempt = 0
        var holding = false
        var turnedAway = false
        while !holding {
            guard intended < stopMicroseconds else {
                // Still trying for stock it was told was gone (not after an error or "not started").
                trace.cutOffWhileTrying = turnedAway
                return trace
            }
            let answer = await send(.reserve, intended: intended, on: target, clock: clock, live: live, into: &trace)
            let policy: RetryPolicy
            turnedAway = answer.result == .rejected(.soldOut) || answer.result == .rejected(.overloaded)
            switch answer.result {
            case .ok, .rejected(.alreadyHolding):
                // Already holding happens after an earlier attempt timed out yet committed.
                holding = true
                continue
            case .rejected(let code) where Self.retryable.contains(code):
                policy = behaviour.onRejected
            case .rejected:
                return trace
            case .failed, .error, .timeout:
                policy = behaviour.onError
            }
            guard attempt < policy.retries else { return trace }
            intended = clock.nowMicroseconds + Int64(policy.delayMilliseconds(beforeRetry: attempt, using: &random) * 1_000)
            attempt += 1
        }

        // Think, then decide what to do with the hold.
        intended = clock.nowMicroseconds + Int64(behaviour.thinkTime.draw(using: &random) * 1_000)
        let choice = behaviour.afterReserve.choose(using: &random)
        let operation: OperationKind
        switch choice {
        case .abandon: return trace
        case .purchase: operation = .purchase
        case .cancel: operation = .cancel
        }
        attempt = 0
        while intended < stopMicroseconds {
            let answer = await send(operation, intended: intended, on: target, clock: clock, live: live, into: &trace)
            guard answer.result.isFailure, attempt < behaviour.onError.retries else { break }
            // A retried purchase carries the same idempotency key: never two purchases.
            intended = clock.nowMicroseconds + Int64(behaviour.onError.delayMilliseconds(beforeRetry: attempt, using: &random) * 1_000)
            attempt += 1
        }
        return trace
    }

    private func send(_ operation: OperationKind, intended: Int64, on target: any LoadTarget, clock: RunClock,
                      live: LiveCounters, into trace: inout Trace) async -> Answer {
        if intended > clock.nowMicroseconds {
            try? await Task.sleep(until: clock.instant(atMicroseconds: intended), clock: .continuous)
        }
        let sent = clock.nowMicroseconds
        live.sent.add(1, ordering: .relaxed)
        let answer: Answer
        switch operation {
        case .reserve: answer = await target.reserve(drop: drop, user: user)
        case .purchase: answer = await target.purchase(drop: drop, user: user, idempotencyKey: "u\(user)-d\(drop)")
        case .cancel: answer = await target.cancel(drop: drop, user: user)
        }
        live.record(answer.result, operation)
        trace.records.append(OperationRecord(
            operation: operation, result: answer.result, user: user, drop: drop, reservationID: answer.reservationID, purchaseID: answer.purchaseID,
            intendedMicroseconds: intended, sentMicroseconds: sent, answeredMicroseconds: clock.nowMicroseconds))
        return answer
    }
}
