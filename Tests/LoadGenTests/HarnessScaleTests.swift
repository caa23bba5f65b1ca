// The harness at scale: a buyer is a value stepped by the scheduler, its requests bounded in
// flight, and the history spooled to disk past a budget and read back whole.
import Engine
import Foundation
import Synchronization
import Testing

@testable import LoadGen

@Suite struct HarnessScaleTests {
    static func record(
        _ index: Int64, _ result: OperationRecord.Result, reservation: Int64? = nil, purchase: Int64? = nil
    )
        -> OperationRecord
    {
        OperationRecord(
            operation: OperationKind.allCases[Int(index) % 3], result: result, user: 1_000 + index, drop: 7,
            reservationID: reservation, purchaseID: purchase, intendedMicroseconds: index * 10,
            sentMicroseconds: index * 10 + 1, answeredMicroseconds: index * 10 + 5)
    }

    @Test func theSpoolGivesBackEveryRecordInOrderPastItsMemoryBudget() throws {
        let spool = HistorySpool(memoryBudget: 3)
        var written: [OperationRecord] = []
        let results: [OperationRecord.Result] =
            [.ok, .failed, .error, .timeout] + RejectionCode.allCases.map { .rejected($0) }
        for index in 0..<Int64(40) {
            let record = Self.record(
                index, results[Int(index) % results.count], reservation: index % 2 == 0 ? 500 + index : nil,
                purchase: index % 3 == 0 ? 900 + index : nil)
            written.append(record)
            spool.append(record)
        }
        #expect(spool.spooledCount == 37)
        #expect(try spool.all() == written)
        // Reading back is not consuming: the checker and the report may both ask.
        #expect(try spool.all() == written)
    }

    static func user(
        retries: Int = 2, after: AfterReserve = AfterReserve(purchase: 1, cancel: 0, abandon: 0)
    ) -> VirtualUser {
        VirtualUser(
            user: 42, drop: 1, arrivalMicroseconds: 1_000,
            behaviour: Population(
                count: 1, drop: .one(0), arrival: .burst, thinkTime: .fixed(milliseconds: 10), afterReserve: after,
                onRejected: RetryPolicy(retries: retries, backoffMilliseconds: 100),
                onError: RetryPolicy(retries: 1, backoffMilliseconds: 50)),
            random: SplitMix64(seed: 1))
    }

    @Test func aBuyerRetriesASoldOutThenBuysWhatItHolds() {
        var user = Self.user()
        #expect(user.start(stopMicroseconds: 10_000_000) == .send(.reserve, intendedMicroseconds: 1_000))
        guard
            case .send(.reserve, let retryAt) = user.answered(
                .rejected(.soldOut), nowMicroseconds: 2_000, stopMicroseconds: 10_000_000)
        else {
            Issue.record("a sold-out buyer with retries left tries again")
            return
        }
        // Backoff 100 ms, jittered by ±25%.
        #expect((2_000 + 75_000)...(2_000 + 125_000) ~= retryAt)
        #expect(
            user.answered(.ok, nowMicroseconds: 200_000, stopMicroseconds: 10_000_000)
                == .send(.purchase, intendedMicroseconds: 210_000))
        // A purchase that errs is retried once (same key), then the buyer is done.
        guard case .send(.purchase, _) = user.answered(.error, nowMicroseconds: 220_000, stopMicroseconds: 10_000_000)
        else {
            Issue.record("a failed purchase is retried")
            return
        }
        #expect(user.answered(.error, nowMicroseconds: 300_000, stopMicroseconds: 10_000_000) == .finished)
        #expect(!user.cutOffWhileTrying && !user.neverSent)
    }

    @Test func aBuyerWhoseRetryFallsPastTheStopIsCutOffWhileTrying() {
        var user = Self.user()
        _ = user.start(stopMicroseconds: 50_000)
        #expect(user.answered(.rejected(.soldOut), nowMicroseconds: 2_000, stopMicroseconds: 50_000) == .finished)
        #expect(user.cutOffWhileTrying)

        // After an error, not turned away for stock: not counted as cut off.
        var erring = Self.user()
        _ = erring.start(stopMicroseconds: 40_000)
        #expect(erring.answered(.error, nowMicroseconds: 2_000, stopMicroseconds: 40_000) == .finished)
        #expect(!erring.cutOffWhileTrying)

        var late = Self.user()
        #expect(late.start(stopMicroseconds: 1_000) == .finished)
        #expect(late.neverSent)
    }

    @Test func whatAUserWouldSendAfterTheStopIsCountedByOperation() {
        // The retry a sold-out buyer would send after the stop.
        var retrying = Self.user()
        _ = retrying.start(stopMicroseconds: 50_000)
        _ = retrying.answered(.rejected(.soldOut), nowMicroseconds: 2_000, stopMicroseconds: 50_000)
        #expect(retrying.unsentAtStop == .reserve)

        // A holder whose think time (10 ms) runs past the stop: the purchase it chose, unsent.
        var holder = Self.user()
        _ = holder.start(stopMicroseconds: 5_000)
        #expect(holder.answered(.ok, nowMicroseconds: 2_000, stopMicroseconds: 5_000) == .finished)
        #expect(holder.unsentAtStop == .purchase)

        // A buyer who walks away sends nothing more by choice, and one whose purchase is answered
        // is done: neither is counted.
        var walker = Self.user(after: AfterReserve(purchase: 0, cancel: 0, abandon: 1))
        _ = walker.start(stopMicroseconds: 5_000)
        #expect(walker.answered(.ok, nowMicroseconds: 2_000, stopMicroseconds: 5_000) == .finished)
        #expect(walker.unsentAtStop == nil)
        var buyer = Self.user()
        _ = buyer.start(stopMicroseconds: 10_000_000)
        _ = buyer.answered(.ok, nowMicroseconds: 2_000, stopMicroseconds: 10_000_000)
        #expect(buyer.answered(.ok, nowMicroseconds: 15_000, stopMicroseconds: 10_000_000) == .finished)
        #expect(buyer.unsentAtStop == nil)

        // A canceller whose think time runs past the stop; a purchase whose retry after an error
        // would leave after it; a buyer shed with a Retry-After past it.
        var canceller = Self.user(after: AfterReserve(purchase: 0, cancel: 1, abandon: 0))
        _ = canceller.start(stopMicroseconds: 5_000)
        #expect(canceller.answered(.ok, nowMicroseconds: 2_000, stopMicroseconds: 5_000) == .finished)
        #expect(canceller.unsentAtStop == .cancel)
        var erring = Self.user()
        _ = erring.start(stopMicroseconds: 30_000)
        #expect(
            erring.answered(.ok, nowMicroseconds: 2_000, stopMicroseconds: 30_000)
                == .send(.purchase, intendedMicroseconds: 12_000))
        #expect(erring.answered(.error, nowMicroseconds: 20_000, stopMicroseconds: 30_000) == .finished)
        #expect(erring.unsentAtStop == .purchase)
        var shed = Self.user()
        _ = shed.start(stopMicroseconds: 100_000)
        #expect(
            shed.answered(
                .rejected(.overloaded), retryAfterMilliseconds: 1_000, nowMicroseconds: 2_000, stopMicroseconds: 100_000
            )
                == .finished)
        #expect(shed.unsentAtStop == .reserve && shed.shedAtStop)

        // Outcomes add them up by operation.
        let outcome = UserScheduler.outcome(of: [retrying, holder, walker, buyer, canceller, erring, shed])
        #expect(outcome.unsentAtStop == [.reserve: 2, .purchase: 2, .cancel: 1])
    }

    /// Answers every reserve `ok` and every other request `ok`, counting how many are out at once.
    final class CountingTarget: LoadTarget, Sendable {
        let out = Atomic<Int>(0)
        let mostOut = Atomic<Int>(0)
        let calls = Atomic<Int>(0)
        var strategy: Strategy { .actor }
        var databaseURL: String { "" }
        func createDrop(_ spec: DropSpec) async throws -> DropID { 1 }
        func answer() async -> Answer {
            let now = out.add(1, ordering: .sequentiallyConsistent).newValue
            calls.add(1, ordering: .relaxed)
            var most = mostOut.load(ordering: .relaxed)
            while now > most {
                let (exchanged, original) = mostOut.compareExchange(expected: most, desired: now, ordering: .relaxed)
                if exchanged { break }
                most = original
            }
            try? await Task.sleep(for: .milliseconds(2))
            out.subtract(1, ordering: .sequentiallyConsistent)
            return Answer(.ok, reservationID: 1)
        }
        func reserve(drop: DropID, user: UserID) async -> Answer { await answer() }
        func purchase(drop: DropID, user: UserID, idempotencyKey: String) async -> Answer { await answer() }
        func cancel(drop: DropID, user: UserID) async -> Answer { await answer() }
        func close() async {}
    }

    @Test func theSchedulerRunsEveryBuyerWithAtMostItsBoundInFlight() async throws {
        let users = (0..<500).map { index in
            var user = Self.user(after: AfterReserve(purchase: 0.5, cancel: 0.25, abandon: 0.25))
            user = VirtualUser(
                user: UserID(index + 1), drop: 1, arrivalMicroseconds: 0, behaviour: user.behaviour,
                random: SplitMix64(seed: UInt64(index)))
            return user
        }
        let target = CountingTarget()
        let spool = HistorySpool(memoryBudget: 100)
        let outcome = await UserScheduler(users, maxInFlight: 16).run(
            on: target, clock: RunClock(), stopMicroseconds: 60_000_000, live: LiveCounters(), spool: spool)
        let records = try spool.all()
        #expect(outcome.neverSent == 0 && outcome.cutOff.isEmpty)
        #expect(target.mostOut.load(ordering: .relaxed) <= 16)
        #expect(records.count == target.calls.load(ordering: .relaxed))
        // Every buyer reserved once (all answered ok), and about three in four then settled.
        #expect(records.count { $0.operation == .reserve } == 500)
        #expect(Set(records.map(\.user)).count == 500)
        for user in Set(records.map(\.user)) {
            let mine = records.filter { $0.user == user }
            #expect(mine.first?.operation == .reserve)
            #expect(zip(mine, mine.dropFirst()).allSatisfy { $0.answeredMicroseconds <= $1.sentMicroseconds })
        }
    }
}
