// Steps a run's virtual users through their requests on schedule (an open model: a slow
// target does not slow the arrivals). Users wait as values in a heap ordered by when their
// next request is meant to go; a task exists only while a request is out, so a million buyers
// thinking or backing off cost their values, not a million suspended tasks (one task each
// kept 4.4 GB resident at 1,000,000 users). Requests are counted late when the target, or the
// in-flight bound, holds them past their intended time: latency is measured from that time.
// Requests run as unstructured tasks, not children of one task group: the runtime unlinks a
// finished child by walking the group's list, which cost O(n²) at 100,000 users.
import Engine
import Foundation
import HeapModule
import Synchronization

final class UserScheduler: @unchecked Sendable {
    struct Due: Comparable {
        let atMicroseconds: Int64
        let index: Int32
        let operation: OperationKind
        static func < (a: Due, b: Due) -> Bool {
            (a.atMicroseconds, a.index) < (b.atMicroseconds, b.index)
        }
        static func == (a: Due, b: Due) -> Bool { a.atMicroseconds == b.atMicroseconds && a.index == b.index }
    }

    /// What the run's users did, besides their requests (which go to the spool).
    struct Outcome: Sendable {
        var neverSent = 0
        var cutOff: [DropID: Int] = [:]
        /// Users still being shed when the run stopped.
        var shedAtStop = 0
        /// Requests users would have sent after the stop, by operation.
        var unsentAtStop: [OperationKind: Int] = [:]
        /// A server target's connections (nil in process).
        var connections: ConnectionFigures?
        /// CPU time of the threads that drove the users (a server target's lanes; nil in
        /// process, where the engine shares the threads).
        var laneCPUMicroseconds: Int64?
    }

    /// Each user is touched by at most one task at a time: the one that popped its entry from
    /// `due`; the heap's lock orders that task's writes before the next pop of the same user.
    private let users: UnsafeMutableBufferPointer<VirtualUser>
    private let due = Mutex(Heap<Due>())
    private let finished = Atomic<Int>(0)
    private let inFlight = Atomic<Int>(0)
    private let maxInFlight: Int

    init(_ users: [VirtualUser], maxInFlight: Int = LoadDefaults.maxRequestsInFlight) {
        precondition(users.count <= Int(Int32.max), "too many users for one scheduler")
        self.users = .allocate(capacity: users.count)
        _ = self.users.initialize(from: users)
        self.maxInFlight = maxInFlight
    }

    deinit {
        users.deinitialize()
        users.deallocate()
    }

    /// Runs every user to the end (or the stop) and returns what they did; each request's
    /// record goes to `spool` as it is answered.
    func run(
        on target: any LoadTarget, clock: RunClock, stopMicroseconds: Int64, live: LiveCounters, spool: HistorySpool
    ) async -> Outcome {
        var buffer = users  // the same memory: a buffer pointer is a view
        let (first, finishedAtStart) = Self.firstRequests(&buffer, stopMicroseconds: stopMicroseconds)
        finished.add(finishedAtStart, ordering: .sequentiallyConsistent)
        due.withLock { $0 = Heap(first) }

        let tick = Int64(LoadDefaults.schedulerTickMicroseconds)
        while finished.load(ordering: .sequentiallyConsistent) < users.count {
            let now = clock.nowMicroseconds
            let room = maxInFlight - inFlight.load(ordering: .relaxed)
            guard room > 0 else {
                try? await Task.sleep(until: clock.instant(atMicroseconds: now + tick), clock: .continuous)
                continue
            }
            let ready: [Due] = due.withLock { heap in
                var ready: [Due] = []
                while ready.count < room, let next = heap.min, next.atMicroseconds <= now {
                    ready.append(heap.removeMin())
                }
                return ready
            }
            inFlight.add(ready.count, ordering: .relaxed)
            for entry in ready {
                Task {
                    await self.perform(
                        entry, on: target, clock: clock, stopMicroseconds: stopMicroseconds, live: live, spool: spool)
                }
            }
            // Until the next request is due; at most a tick, so a request an answer schedules
            // sooner than that (no think time, no backoff) is not kept waiting.
            let next = due.withLock { $0.min?.atMicroseconds } ?? (now + tick)
            let wake = min(max(next, now), now + tick)
            if wake > clock.nowMicroseconds {
                try? await Task.sleep(until: clock.instant(atMicroseconds: wake), clock: .continuous)
            } else {
                await Task.yield()
            }
        }

        return Self.outcome(of: users)
    }

    /// Each user's first request (or none, for one arriving after the stop): the schedule's
    /// start, and how many users finished before it.
    static func firstRequests<Users: MutableCollection<VirtualUser>>(
        _ users: inout Users, stopMicroseconds: Int64
    ) -> (due: [Due], finished: Int) where Users.Index == Int {
        var first: [Due] = []
        first.reserveCapacity(users.count)
        var finished = 0
        for index in users.indices {
            switch users[index].start(stopMicroseconds: stopMicroseconds) {
            case .send(let operation, let at):
                first.append(Due(atMicroseconds: at, index: Int32(index), operation: operation))
            case .finished: finished += 1
            }
        }
        return (first, finished)
    }

    static func outcome(of users: some Sequence<VirtualUser>) -> Outcome {
        var outcome = Outcome()
        for user in users {
            if user.neverSent { outcome.neverSent += 1 }
            if user.cutOffWhileTrying { outcome.cutOff[user.drop, default: 0] += 1 }
            if user.shedAtStop { outcome.shedAtStop += 1 }
            if let unsent = user.unsentAtStop { outcome.unsentAtStop[unsent, default: 0] += 1 }
        }
        return outcome
    }

    private func perform(
        _ entry: Due, on target: any LoadTarget, clock: RunClock, stopMicroseconds: Int64, live: LiveCounters,
        spool: HistorySpool
    ) async {
        let index = Int(entry.index)
        var user = users[index]
        if user.arrive() { live.arrived.add(1, ordering: .relaxed) }
        let (record, answer) = await user.send(
            entry.operation, intended: entry.atMicroseconds, on: target, clock: clock, live: live)
        spool.append(record)
        let step = user.answered(answer, nowMicroseconds: clock.nowMicroseconds, stopMicroseconds: stopMicroseconds)
        users[index] = user
        inFlight.subtract(1, ordering: .relaxed)
        switch step {
        case .send(let operation, let at):
            due.withLock { $0.insert(Due(atMicroseconds: at, index: entry.index, operation: operation)) }
        case .finished:
            finished.add(1, ordering: .sequentiallyConsistent)
        }
    }
}
