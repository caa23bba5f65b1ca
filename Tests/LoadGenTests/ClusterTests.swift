// Scale-out with real processes: `stockdrop serve` instances on one PostgreSQL and one Redis,
// HAProxy in front (`LocalCluster`), each test on a cluster and a database of its own. Every
// test ends with the checker over its drop and what its client was told, and with every
// instance exiting 0 on SIGTERM. They run when STOCKDROP_CLUSTER_TESTS=1 (`make e2e`, through
// scripts/cluster-e2e.sh, with the release binary); each prints its figures.
import Engine
import Foundation
import Synchronization
import Testing

@testable import LoadGen

@Suite(
    .serialized,
    .enabled(if: ClusterEnvironment.enabled, "STOCKDROP_CLUSTER_TESTS=1 runs them (scripts/cluster-e2e.sh)"))
struct ClusterTests {
    /// Two instances, no balancer, one unit: a hold on A refuses B's buyer; freed on A, it
    /// sells to B's; both instances show the same stock.
    @Test func oneUnitThroughTwoInstances() async throws {
        try await ClusterProbe.with(instances: 2, database: "cluster_one_unit") { probe in
            let (a, b) = (probe.instances[0], probe.instances[1])
            let drop = try await probe.createDrop(on: a, stock: 1)
            let (x, y) = (probe.newUser(), probe.newUser())
            #expect(await probe.reserve(a, drop, user: x).result == .ok)
            #expect(await probe.reserve(b, drop, user: y).result == .rejected(.soldOut))
            #expect(await probe.cancel(a, drop, user: x).result == .ok)
            #expect(await probe.reserve(b, drop, user: y).result == .ok)
            for url in [a, b] {
                let view = await probe.view(url, drop)
                #expect(
                    view?.available == 0 && view?.reserved == 1,
                    "GET the drop through \(url): \(String(describing: view))")
            }
            let holder = try await probe.sqlString(
                "SELECT string_agg(user_id::text, ',') AS v FROM reservations WHERE drop_id = \(drop) AND status = 'ACTIVE'"
            )
            #expect(holder == String(y))
            try await expectHolds(probe, drop)
        }
    }

    /// A hold made on one instance is bought through the other (and its Idempotency-Key
    /// replayed through the first); another hold is cancelled across.
    @Test func purchaseAndCancelAcrossInstances() async throws {
        try await ClusterProbe.with(instances: 2, database: "cluster_across") { probe in
            let (a, b) = (probe.instances[0], probe.instances[1])
            let drop = try await probe.createDrop(on: a, stock: 10)
            let (buyer, canceller) = (probe.newUser(), probe.newUser())
            let hold = await probe.reserve(a, drop, user: buyer)
            #expect(hold.result == .ok)
            let key = "cluster-test-\(UUID())"
            let bought = await probe.purchase(b, drop, user: buyer, key: key)
            #expect(bought.result == .ok && bought.reservationID == hold.reservationID)
            let replay = await probe.purchase(a, drop, user: buyer, key: key)
            #expect(replay.result == .ok && replay.purchaseID == bought.purchaseID)
            let hold2 = await probe.reserve(b, drop, user: canceller)
            #expect(hold2.result == .ok)
            let cancelled = await probe.cancel(a, drop, user: canceller)
            #expect(cancelled.result == .ok && cancelled.reservationID == hold2.reservationID)
            let statuses = try await probe.sqlString(
                "SELECT string_agg(status, ',' ORDER BY id) AS v FROM reservations WHERE drop_id = \(drop)")
            #expect(statuses == "PURCHASED,CANCELLED")
            #expect(
                try await probe.sqlString("SELECT sold || '/' || reserved AS v FROM drops WHERE id = \(drop)") == "1/0")
            try await expectHolds(probe, drop)
        }
    }

    /// SIGKILL of a drop's owner while buyers reserve through the balancer at a steady rate:
    /// another instance takes the drop over once the lease lapses; every answer is a hold,
    /// sold_out or a failure that says to retry; nothing acknowledged is lost.
    @Test func ownerKilledUnderLoad() async throws {
        try await ClusterProbe.with(instances: 3, database: "cluster_owner_killed") { probe in
            // The stock (200) outlasts what 50 reserves/s can hold within a TTL (100): after the
            // kill a hold means the drop is served again, not that stock came back.
            let ttlMilliseconds = 2_000
            let drop = try await probe.createDrop(on: probe.balancer, stock: 200, ttlMilliseconds: ttlMilliseconds)
            #expect(await probe.reserve(probe.balancer, drop, user: probe.newUser()).result == .ok)
            let owner = try #require(try await probe.ownerInstance(drop), "the drop has an owner among the instances")
            let load = SteadyReserves(probe: probe, url: probe.balancer, drop: drop, perSecond: 50, buyers: 4)
            var killedAt = Int64.max
            var takeover: Int64?
            do {
                try await Task.sleep(for: .seconds(1))
                killedAt = probe.clock.nowMicroseconds
                try probe.cluster.kill(instance: owner)
                // Until a reserve sent after the kill is acknowledged, then 5 s more; 30 s at most.
                while probe.clock.nowMicroseconds < killedAt + 30_000_000 {
                    let held = load.records.filter { $0.sentMicroseconds >= killedAt && $0.result == .ok }
                    takeover = takeover ?? held.map(\.answeredMicroseconds).min()
                    if let takeover, probe.clock.nowMicroseconds >= takeover + 5_000_000 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
            } catch {
                _ = await load.stop()
                throw error
            }
            let records = await load.stop()
            let before = records.filter { $0.sentMicroseconds < killedAt }
            let after = records.filter { record in takeover.map { record.sentMicroseconds >= $0 } ?? false }
            print(
                "cluster: s\(owner) killed; takeover \(takeover.map { "\(($0 - killedAt) / 1_000) ms" } ?? "never") after the SIGKILL (lease \(probe.leaseMilliseconds) ms); before \(Self.histogram(before)); after \(Self.histogram(after))"
            )
            #expect(before.contains { $0.result == .ok })
            #expect(takeover != nil, "no reserve sent after the kill was acknowledged within 30 s")
            let served = after.count { $0.result == .ok || $0.result == .rejected(.soldOut) }
            #expect(!after.isEmpty && Double(served) >= 0.9 * Double(after.count), "served \(served) of \(after.count)")
            let wrong = records.filter {
                !($0.result == .ok || $0.result == .rejected(.soldOut) || $0.result.isRetryable)
            }
            #expect(wrong.isEmpty, "answers a reserve may not get: \(Self.histogram(wrong))")
            // The checker judges every instant and wants the holds expired: the TTL and a sweep.
            try await Task.sleep(for: .milliseconds(ttlMilliseconds + 1_500))
            try await expectHolds(probe, drop)
            try await probe.cluster.restart(instance: owner)
        }
    }

    /// SIGSTOP of a drop's owner past its lease: another instance takes the drop over, and the
    /// claims the stopped owner finds in its socket when it wakes are answered correctly (its
    /// stale batch fenced, never applied under the old epoch).
    @Test func ownerStoppedPastItsLease() async throws {
        try await ClusterProbe.with(instances: 3, database: "cluster_owner_stopped") { probe in
            let drop = try await probe.createDrop(on: probe.instances[0], stock: 5)
            #expect(await probe.reserve(probe.instances[0], drop, user: probe.newUser()).result == .ok)
            let owner = try #require(try await probe.ownerInstance(drop))
            let other = owner % probe.instances.count + 1
            let (a, b) = (probe.instances[owner - 1], probe.instances[other - 1])
            try probe.cluster.pause(instance: owner)
            var late: [Task<OperationRecord, Never>] = []
            do {
                try await Task.sleep(for: .milliseconds(probe.leaseMilliseconds + 1_000))
                // B takes the drop over within a few tries (one user: a retry finds a hold an
                // unanswered try made).
                let user = probe.newUser()
                var attempts: [OperationRecord] = []
                for _ in 0..<8 {
                    let answer = await probe.reserve(b, drop, user: user)
                    attempts.append(answer)
                    if answer.result == .ok || answer.result == .rejected(.alreadyHolding) || !answer.result.isRetryable
                    {
                        break
                    }
                    try await Task.sleep(for: .milliseconds(300))
                }
                let last = try #require(attempts.last)
                let unanswered = attempts.dropLast().contains { $0.result.isIndeterminate }
                #expect(
                    attempts.count <= 4
                        && (last.result == .ok || (last.result == .rejected(.alreadyHolding) && unanswered)),
                    "B's tries: \(attempts.map(\.result.label))")
                // A reserve and a cancel wait in the stopped owner's socket. The reserve may be
                // shed when it wakes (its loops woke seconds late); the cancel is never shed: the
                // owner asks the store in a batch under its stale epoch, which is fenced.
                let (reserver, canceller) = (probe.newUser(), probe.newUser())
                late.append(Task { await probe.reserve(a, drop, user: reserver) })
                late.append(Task { await probe.cancel(a, drop, user: canceller) })
                try await Task.sleep(for: .milliseconds(500))
                #expect(probe.records(of: drop).count == 1 + attempts.count, "A answered while stopped")
            } catch {
                try probe.cluster.resume(instance: owner)
                throw error
            }
            try probe.cluster.resume(instance: owner)
            var answers: [OperationRecord] = []
            for task in late { answers.append(await task.value) }
            print(
                "cluster: the stale claims on s\(owner) after SIGCONT: \(answers.map { "\($0.operation) \($0.result.label)" })"
            )
            for answer in answers {
                switch (answer.operation, answer.result) {
                case (.reserve, .ok), (.reserve, .rejected(.soldOut)), (.reserve, .rejected(.overloaded)),
                    (.cancel, .rejected(.noActiveReservation)):
                    break
                case (_, let result) where result.isFailure:
                    break
                default:
                    Issue.record("the stale \(answer.operation) of user \(answer.user) on A: \(answer.result.label)")
                }
            }
            let fenced = await probe.metric(a, "stockdrop_fenced_batches_total")
            #expect(
                (fenced ?? 0) >= 1,
                "A fenced its stale batch: stockdrop_fenced_batches_total \(String(describing: fenced))")
            #expect(await probe.status(a, "/ready") == 200)
            try await expectHolds(probe, drop)
        }
    }

    /// Claims that keep reaching the owner forwarded from one instance: after the sustained
    /// time (5 s) the owner hands the drop to that instance, which then answers them itself.
    @Test func ownerHandsTheDropToWhereItsClaimsComeFrom() async throws {
        try await ClusterProbe.with(instances: 3, database: "cluster_hand_back") { probe in
            let drop = try await probe.createDrop(on: probe.instances[0], stock: 1_000)
            #expect(await probe.reserve(probe.instances[0], drop, user: probe.newUser()).result == .ok)
            let owner = try #require(try await probe.ownerInstance(drop))
            let other = owner % probe.instances.count + 1
            let through = probe.instances[other - 1]
            try await Task.sleep(for: .milliseconds(2_100))
            var answers: [OperationRecord] = []
            let began = ContinuousClock.now
            while ContinuousClock.now - began < .seconds(12) {
                answers.append(await probe.reserve(through, drop, user: probe.newUser()))
                try await Task.sleep(for: .milliseconds(20))
                if answers.count % 20 == 0, try await probe.ownerInstance(drop) == other { break }
            }
            let took = ContinuousClock.now - began
            print("cluster: \(answers.count) reserves through s\(other) in \(took): \(Self.histogram(answers))")
            #expect(took >= .seconds(5), "the owner held on for the sustained time first")
            #expect(answers.allSatisfy { $0.result == .ok || $0.result.isRetryable }, "\(Self.histogram(answers))")
            #expect(try await probe.ownerInstance(drop) == other)
            #expect((await probe.metric(probe.instances[owner - 1], "stockdrop_drops_handed_back_total") ?? 0) >= 1)
            // Claims forwarded just before the hand-back may still be counted: settle first.
            var settle: [OperationRecord] = []
            for _ in 0..<20 { settle.append(await probe.reserve(through, drop, user: probe.newUser())) }
            #expect(settle.allSatisfy { $0.result == .ok }, "\(Self.histogram(settle))")
            let before = await probe.metric(through, "stockdrop_forwarded_claims_total") ?? 0
            var more: [OperationRecord] = []
            for _ in 0..<20 { more.append(await probe.reserve(through, drop, user: probe.newUser())) }
            let afterwards = await probe.metric(through, "stockdrop_forwarded_claims_total") ?? 0
            #expect(more.allSatisfy { $0.result == .ok } && afterwards == before, "forwards \(before) -> \(afterwards)")
            try await expectHolds(probe, drop)
        }
    }

    /// The `ci` scenario through the balancer with live watchers, then with its users spread
    /// over the instances directly (most claims forwarded to their drop's owner).
    @Test func ciThroughTheBalancerAndSpreadOverTheInstances() async throws {
        try await ClusterProbe.with(instances: 3, database: "cluster_ci") { probe in
            let throughBalancer = try await run("scenarios/ci.yaml", on: [probe.balancer], probe: probe, watchers: 20)
            #expect(throughBalancer.exitCode == 0, "\(throughBalancer.verdictLine)\n\(throughBalancer.problemLines)")
            let spread = try await run("scenarios/ci.yaml", on: probe.instances, probe: probe)
            #expect(spread.exitCode == 0, "\(spread.verdictLine)\n\(spread.problemLines)")
            var forwarded = 0.0
            for url in probe.instances { forwarded += await probe.metric(url, "stockdrop_forwarded_claims_total") ?? 0 }
            print(
                "cluster: ci through the balancer: \(throughBalancer.verdictLine); spread: \(spread.verdictLine); \(Int(forwarded)) claims forwarded"
            )
            #expect(forwarded > 0)
        }
    }

    /// `cluster-failover` through the balancer while the hot drop's owner is SIGKILLed mid-run:
    /// the run goes on through the others and its verdict holds.
    @Test func failoverScenarioWithItsOwnerKilled() async throws {
        try await ClusterProbe.with(instances: 3, database: "cluster_failover") { probe in
            let running = Task { try await run("scenarios/cluster-failover.yaml", on: [probe.balancer], probe: probe) }
            // Whatever fails below, the run does not outlive the test's cluster.
            defer { running.cancel() }
            var owner: String?
            for _ in 0..<100 where owner == nil {
                owner = try await probe.sqlString(
                    "SELECT lease_owner AS v FROM drops WHERE lease_owner IS NOT NULL ORDER BY id LIMIT 1")
                if owner?.isEmpty == true { owner = nil }
                try await Task.sleep(for: .milliseconds(100))
            }
            let victim = try #require(
                owner.flatMap { probe.cluster.instance(owning: $0) }, "the drop never got an owner")
            try await Task.sleep(for: .seconds(2))
            let killedAt = try await probe.sqlString("SELECT clock_timestamp()::text AS v")
            try probe.cluster.kill(instance: victim)
            let report = try await running.value
            #expect(report.exitCode == 0, "\(report.verdictLine)\n\(report.problemLines)")
            // The new owner's first commit: the first hold made after it was granted the lease.
            let takeover = try await probe.sqlString(
                """
                SELECT round(extract(epoch FROM min(r.created_at) - '\(killedAt)'::timestamptz) * 1000)::text AS v
                FROM reservations r JOIN drops d ON d.id = r.drop_id
                WHERE r.created_at >= d.lease_granted_at AND d.lease_owner <> '\(owner!)'
                """)
            print(
                "cluster: cluster-failover: \(owner!) killed; first claim committed by the new owner \(takeover.isEmpty ? "never" : takeover + " ms") after the kill (lease \(probe.leaseMilliseconds) ms); \(report.verdictLine)"
            )
            #expect(!takeover.isEmpty, "no claim was committed after the kill")
            try await probe.cluster.restart(instance: victim)
        }
    }

    // MARK: helpers

    func expectHolds(
        _ probe: ClusterProbe, _ drop: DropID, sourceLocation: SourceLocation = #_sourceLocation
    )
        async throws
    {
        let report = try await probe.check(drop)
        #expect(report.oversold == 0, sourceLocation: sourceLocation)
        for invariant in report.broken {
            Issue.record("\(invariant.name): \(invariant.counterexamples.prefix(3))", sourceLocation: sourceLocation)
        }
    }

    /// A scenario file against the cluster, in this process, as `stockdrop run --target` runs it.
    func run(_ path: String, on urls: [URL], probe: ClusterProbe, watchers: Int? = nil) async throws -> RunReport {
        let scenario = try ScenarioParser.parse(contentsOf: path).get().overriding(
            strategies: [.actor], target: .servers(urls), watchers: watchers)
        let options = RunOptions(
            strategies: [.actor], databaseURL: probe.databaseURL,
            http: HTTPTargetOptions(secret: probe.cluster.options.secret))
        return try await LoadRunner.run(scenario, options: options) { _, _ in }.report
    }

    static func histogram(_ records: [OperationRecord]) -> String {
        let counts = Dictionary(grouping: records, by: \.result.label).mapValues(\.count)
        return counts.sorted { $0.value > $1.value }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")
    }
}

/// Buyers reserving at a steady rate, each a new user, until stopped. A buyer sends at most
/// once a period and never catches up after slow answers: a burst of the sends owed for an
/// outage would hold the whole stock and blur what the takeover time measures.
final class SteadyReserves: Sendable {
    private final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
    }
    private let stopped = Flag()
    private let buyers: [Task<Void, Never>]
    private let probe: ClusterProbe
    private let drop: DropID

    init(probe: ClusterProbe, url: URL, drop: DropID, perSecond: Int, buyers: Int) {
        self.probe = probe
        self.drop = drop
        let period = Duration.milliseconds(1_000 * buyers / perSecond)
        let stopped = self.stopped
        self.buyers = (0..<buyers).map { _ in
            Task {
                while !stopped.raised.load(ordering: .relaxed) {
                    let began = ContinuousClock.now
                    _ = await probe.reserve(url, drop, user: probe.newUser())
                    let rest = period - (ContinuousClock.now - began)
                    if rest > .zero { try? await Task.sleep(for: rest) }
                }
            }
        }
    }

    var records: [OperationRecord] { probe.records(of: drop) }

    func stop() async -> [OperationRecord] {
        stopped.raised.store(true, ordering: .relaxed)
        for buyer in buyers { await buyer.value }
        return records
    }
}
