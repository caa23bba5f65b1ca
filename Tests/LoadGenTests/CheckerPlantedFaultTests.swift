// The checker has teeth: a real run on a real PostgreSQL passes; then each kind of fault is
// planted behind the engine's back (plain SQL on the tables, or a forged client answer) and
// the checker must name the invariant it breaks, with the ids that show it.
import Engine
import Foundation
import TestSupport
import Testing

@testable import LoadGen

@Suite(.serialized) struct CheckerPlantedFaultTests {
    /// A small real run: 100 buyers for 12 units, 2 s holds, so there are purchases, cancels,
    /// expiries and sold-out answers to tamper with. Which users win a unit depends on timing;
    /// with 12 first holders each buying with probability 0.5, a run without a purchase (or
    /// without a hold that ended unbought) has odds of 1 in 4,096. Holds are 2 s because CI,
    /// running every suite at once on 2 cores, twice saw a run where no purchase reached the
    /// database before its hold expired (300 ms and 600 ms holds). The clean run's are longer
    /// still: a fresh clone's first run (a new database cluster, every suite at once) once
    /// stalled past 2 s and sold nothing.
    static func realRun(
        _ name: String, strategy: Strategy = .actor,
        after: AfterReserve = AfterReserve(purchase: 0.5, cancel: 0.2, abandon: 0.3), ttlMilliseconds: Int = 2_000
    ) async throws -> (run: StrategyResult, pool: PostgresPool) {
        let url = try await TestDatabase.fresh("checker_\(name)")
        let target = InProcessTarget(strategy: strategy, databaseURL: url)
        let run = try await StrategyLoad(
            scenario: ScenarioFixtures.scenario(users: 100, stock: 12, ttlMilliseconds: ttlMilliseconds, after: after),
            target: target,
            live: LiveCounters(), progress: { _ in }
        ).run()
        await target.close()
        return (run, PostgresPool(url: url, size: 1))
    }

    static func check(_ run: StrategyResult, history: ClientHistory? = nil) async throws -> CheckReport {
        try await Checker().check(databaseURL: run.databaseURL, drops: run.drops, history: history ?? run.history)
    }

    static func broken(_ report: CheckReport, _ name: String) -> InvariantResult? {
        report.invariants.first { $0.name == name && !$0.ok }
    }

    /// A hold of the run's first drop that ended unbought (cancelled or expired).
    static func endedHold(of run: StrategyResult, _ pool: PostgresPool) async throws -> Int64 {
        let row = try #require(
            try await pool.query(
                "SELECT id FROM reservations WHERE drop_id = $1 AND status IN ('CANCELLED', 'EXPIRED') LIMIT 1",
                [.int64(run.drops[0])]
            ).first)
        return try row.int64("id")
    }

    /// A drop of no units has nothing to sell: beside one that sold out, the run sold out (it
    /// read "never", and `time_to_sell_out_seconds` had no figure). A latency of an operation
    /// never sent is no figure either, not 0.
    @Test func aDropOfNoUnitsIsSoldOutFromTheStart() async throws {
        let (run, pool) = try await Self.realRun(
            "zero_stock", after: AfterReserve(purchase: 1, cancel: 0, abandon: 0), ttlMilliseconds: 6_000)
        defer { Task { await pool.close() } }
        let alone = try await Self.check(run)
        let soldOut = try #require(alone.timeToSellOutSeconds, "100 buyers for 12 units sell out")
        let zero = try await Self.plantDrop(pool, stock: 0)
        let both = try await Checker().check(
            databaseURL: run.databaseURL, drops: run.drops + [zero], history: run.history)
        #expect(both.ok)
        #expect(both.timeToSellOutSeconds == soldOut)

        let report = StrategyReport(
            run,
            thresholds: [try Threshold.parse("p99(cancel) < 1s").get(), try Threshold.parse("p99(reserve) < 1h").get()])
        #expect(report.thresholds.first?.ok == false, "no cancel was sent: no figure")
        #expect(report.thresholds.first?.actualText == "no figure")
        #expect(report.thresholds.last?.ok == true)
    }

    @Test(arguments: Strategy.allCases)
    func aRealRunHoldsEveryInvariant(_ strategy: Strategy) async throws {
        // Which buyers win the 12 units depends on timing; with half of them buying, a run in
        // which none of the winners bought (1 in 4,096) failed `sold > 0` in a full suite.
        let (run, pool) = try await Self.realRun(
            "clean_\(strategy)", strategy: strategy, after: AfterReserve(purchase: 0.7, cancel: 0.2, abandon: 0.1),
            ttlMilliseconds: 6_000)
        defer { Task { await pool.close() } }
        #expect(run.check.ok, "\(run.check.broken)")
        #expect(run.check.invariants.count == 7 && run.check.invariants.allSatisfy(\.checked))
        #expect(run.check.sold > 0 && run.check.oversold == 0)
        #expect(run.history.records.contains { $0.result == .rejected(.soldOut) })
    }

    @Test func reservationPastStock() async throws {
        let (run, pool) = try await Self.realRun("past_stock")
        defer { Task { await pool.close() } }
        let drop = run.drops[0]
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, expires_at)
            SELECT $1, 9000000 + n, 'ACTIVE', now() + interval '1 hour' FROM generate_series(1, 13) AS n
            """, [.int64(drop)])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.noOversell))
        #expect(
            fault.counterexamples.contains {
                $0.hasPrefix("drop \(drop): ") && $0.contains("units held or sold at") && $0.contains("total stock 12")
            })
    }

    @Test func purchaseAfterItsHoldExpired() async throws {
        let (run, pool) = try await Self.realRun("late_purchase")
        defer { Task { await pool.close() } }
        let row = try #require(
            try await pool.query(
                "SELECT id, reservation_id FROM purchases WHERE drop_id = $1 LIMIT 1", [.int64(run.drops[0])]
            ).first)
        let purchase = try row.int64("id")
        let reservation = try row.int64("reservation_id")
        try await pool.query(
            "UPDATE reservations SET expires_at = (SELECT created_at FROM purchases WHERE id = $1) - interval '1 second' WHERE id = $2",
            [.int64(purchase), .int64(reservation)])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.purchasesMatchHolds))
        #expect(
            fault.counterexamples.contains {
                $0.contains("purchase \(purchase) ") && $0.contains("reservation \(reservation)")
                    && $0.contains("expired")
            })
    }

    /// A purchase asked before its hold expired and made within the purchase grace after it
    /// is valid; made past the grace, or asked after the expiry, it is not.
    @Test func aPurchaseIsJudgedByWhenItWasAsked() async throws {
        let (run, pool) = try await Self.realRun("asked_purchase")
        defer { Task { await pool.close() } }
        let rows = try await pool.query(
            "SELECT id, reservation_id FROM purchases WHERE drop_id = $1 ORDER BY id LIMIT 3", [.int64(run.drops[0])]
        ).rows
        try #require(rows.count == 3, "the run bought at least three units")
        // The hold is moved to end `expiresBeforeMade` before the purchase was made (made 2 s
        // before that), the ask to `askedBeforeMade` before it.
        let plant = { (row: PostgresRow, expiresBeforeMade: String, askedBeforeMade: String) in
            try await pool.query(
                "UPDATE purchases SET asked_at = created_at - $2::interval WHERE id = $1",
                [.int64(try row.int64("id")), .text(askedBeforeMade)])
            try await pool.query(
                """
                UPDATE reservations r SET expires_at = p.created_at - $2::interval,
                                          created_at = p.created_at - $2::interval - interval '2 seconds'
                FROM purchases p WHERE p.reservation_id = r.id AND r.id = $1
                """, [.int64(try row.int64("reservation_id")), .text(expiresBeforeMade)])
        }
        // Asked 600 ms before it was made, expired 500 ms before: asked in time, within grace.
        try await plant(rows[0], "500 milliseconds", "600 milliseconds")
        let valid = try await Checker().check(databaseURL: run.databaseURL, drops: run.drops, history: nil)
        #expect(Self.broken(valid, InvariantName.purchasesMatchHolds) == nil, "\(valid.broken)")
        // Asked in time but made 1.5 s after the expiry: past the grace.
        try await plant(rows[1], "1500 milliseconds", "1600 milliseconds")
        // Asked 100 ms after the expiry.
        try await plant(rows[2], "500 milliseconds", "400 milliseconds")
        let fault = try #require(
            Self.broken(
                try await Checker().check(databaseURL: run.databaseURL, drops: run.drops, history: nil),
                InvariantName.purchasesMatchHolds))
        let late = try rows[1].int64("id")
        let askedLate = try rows[2].int64("id")
        #expect(fault.violations == 2)
        #expect(
            fault.counterexamples.contains {
                $0.contains("purchase \(late) ") && $0.contains("past the purchase grace")
            })
        #expect(
            fault.counterexamples.contains {
                $0.contains("purchase \(askedLate) ") && $0.contains("before the purchase was asked")
            })
    }

    /// With the history, a purchase cannot claim to have been asked before its buyer sent it.
    @Test func aPurchaseAskedBeforeItsBuyerSentIt() async throws {
        let (run, pool) = try await Self.realRun("asked_before_sent")
        defer { Task { await pool.close() } }
        let row = try #require(
            try await pool.query("SELECT id FROM purchases WHERE drop_id = $1 LIMIT 1", [.int64(run.drops[0])]).first)
        let purchase = try row.int64("id")
        try await pool.query(
            "UPDATE purchases SET asked_at = created_at - interval '30 seconds' WHERE id = $1", [.int64(purchase)])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.purchasesMatchHolds))
        #expect(
            fault.counterexamples.contains {
                $0.hasPrefix("purchase \(purchase) ") && $0.contains("before the user first sent a purchase")
            }, "\(fault.counterexamples)")
    }

    @Test func acknowledgedReservationMissing() async throws {
        let (run, pool) = try await Self.realRun("lost_write")
        defer { Task { await pool.close() } }
        // A hold the client was told of that ended without a purchase: nothing refers to it.
        let id = try await Self.endedHold(of: run, pool)
        #expect(run.history.records.contains { $0.operation == .reserve && $0.result == .ok && $0.reservationID == id })
        try await pool.query("DELETE FROM reservations WHERE id = $1", [.int64(id)])
        let report = try await Self.check(run)
        let fault = try #require(Self.broken(report, InvariantName.acknowledgedWritesDurable))
        #expect(
            fault.counterexamples.contains { $0.contains("reservation \(id) ") && $0.contains("no such reservation") })
        #expect(report.lostWrites >= 1)
    }

    @Test func twoActiveHoldsForOneUser() async throws {
        let (run, pool) = try await Self.realRun("two_active")
        defer { Task { await pool.close() } }
        try await pool.query("DROP INDEX reservations_one_active_per_user")
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, expires_at)
            VALUES ($1, 8000001, 'ACTIVE', now() + interval '1 hour'), ($1, 8000001, 'ACTIVE', now() + interval '1 hour')
            """, [.int64(run.drops[0])])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.perUserLimits))
        #expect(
            fault.counterexamples.contains { $0.hasPrefix("user 8000001 held 2 units of drop \(run.drops[0]) at once") }
        )
    }

    @Test func holdLeftActivePastItsTTL() async throws {
        let (run, pool) = try await Self.realRun("stale_hold")
        defer { Task { await pool.close() } }
        let id = try await Self.endedHold(of: run, pool)
        try await pool.query(
            "UPDATE reservations SET status = 'ACTIVE', ended_at = NULL, expires_at = now() - interval '5 seconds' WHERE id = $1",
            [.int64(id)])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.holdsExpire))
        #expect(fault.counterexamples.contains { $0.hasPrefix("reservation \(id) ") && $0.contains("still ACTIVE") })

        // With every server gone after the load nothing could expire it: not judged, said so.
        let blind = Checker(expiriesJudged: false)
        let unjudged = try await blind.check(databaseURL: run.databaseURL, drops: run.drops, history: run.history)
        let expiry = try #require(unjudged.invariants.first { $0.name == InvariantName.holdsExpire })
        #expect(expiry.ok && expiry.detail.contains("not judged"))
        // A hold expired early is still a fault, whoever is up.
        try await pool.query(
            """
            UPDATE reservations SET status = 'EXPIRED', expires_at = created_at + interval '10 seconds',
                                    ended_at = created_at + interval '1 second' WHERE id = $1
            """,
            [.int64(id)])
        let early = try await blind.check(databaseURL: run.databaseURL, drops: run.drops, history: run.history)
        let earlyFault = try #require(Self.broken(early, InvariantName.holdsExpire))
        #expect(earlyFault.counterexamples.contains { $0.contains("was EXPIRED") })
    }

    @Test func counterDisagreesWithRows() async throws {
        let (run, pool) = try await Self.realRun("counter")
        defer { Task { await pool.close() } }
        try await pool.query("UPDATE drops SET sold = sold - 1 WHERE id = $1 AND sold > 0", [.int64(run.drops[0])])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.countersMatchRows))
        #expect(fault.counterexamples.contains { $0.hasPrefix("drop \(run.drops[0]): counters sold=") })
    }

    @Test func stockLeftWhileBuyersWereTurnedAway() async throws {
        let (run, pool) = try await Self.realRun("undersell")
        defer { Task { await pool.close() } }
        // Three more units existed all along: every sold_out answer turned a buyer away from them.
        try await pool.query("UPDATE drops SET total_stock = total_stock + 3 WHERE id = $1", [.int64(run.drops[0])])
        let fault = try #require(Self.broken(try await Self.check(run), InvariantName.noUndersell))
        #expect(
            fault.counterexamples.contains {
                $0.contains("was told sold_out on drop \(run.drops[0])") && $0.contains("of 15 units")
            })
    }

    @Test func forgedAcknowledgementIsALostWrite() async throws {
        let (run, pool) = try await Self.realRun("forged")
        defer { Task { await pool.close() } }
        var history = run.history
        history.records.append(
            OperationRecord(
                operation: .purchase, result: .ok, user: 7_777_777, drop: run.drops[0], reservationID: 1,
                purchaseID: 987_654_321,
                intendedMicroseconds: 0, sentMicroseconds: 0, answeredMicroseconds: 1))
        let fault = try #require(
            Self.broken(try await Self.check(run, history: history), InvariantName.acknowledgedWritesDurable))
        #expect(fault.counterexamples.contains { $0.contains("purchase 987654321") && $0.contains("no such purchase") })
    }

    @Test func withoutHistoryTheClientInvariantsAreSkippedNotPassed() async throws {
        let (run, pool) = try await Self.realRun("no_history")
        defer { Task { await pool.close() } }
        let report = try await Checker().check(databaseURL: run.databaseURL, drops: nil, history: nil)
        #expect(report.invariants.filter { !$0.checked }.map(\.number) == [5, 6])
        #expect(report.ok)
    }

    /// `run --keep-history` then `check --history`: the saved history knows its database and
    /// drops, and checking it again gives the same verdict as the run's own check.
    @Test func savedHistoryChecksTheSameRowsAgain() async throws {
        let (run, pool) = try await Self.realRun("saved_history")
        defer { Task { await pool.close() } }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stockdrop-history-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = RunReport(
            scenario: "fixture", seed: 99, startedAt: Date(), pass: true, exitCode: 0, target: "inprocess",
            strategies: [StrategyReport(run, thresholds: [])], comparison: nil)
        try ReportWriter.write(report, to: directory, histories: ["actor": run.history])
        let saved = try ReportWriter.readHistory("\(directory)/history-actor.json")
        #expect(
            saved.records == run.history.records && saved.drops == run.drops && saved.databaseURL == run.databaseURL)
        let again = try await Checker().check(
            databaseURL: try #require(saved.databaseURL), drops: saved.drops, history: saved)
        #expect(again.invariants.map(\.ok) == run.check.invariants.map(\.ok) && again.ok)
        for file in ["report.json", "report.md", "report.html"] {
            #expect(FileManager.default.fileExists(atPath: "\(directory)/\(file)"))
        }
    }

    // MARK: - Faults only a timeline sees: the end state of each is clean.

    /// A drop of its own beside the run's, written straight into the table.
    static func plantDrop(_ pool: PostgresPool, stock: Int, limit: Int = 1) async throws -> DropID {
        try await pool.query(
            """
            INSERT INTO drops (name, price_cents, total_stock, per_user_limit, reserve_ttl_ms, created_at)
            VALUES ('planted', 100, $1, $2, 1000, now() - interval '1 hour') RETURNING id
            """, [.int32(Int32(stock)), .int32(Int32(limit))]
        ).first!.int64("id")
    }

    /// Thirteen holds of a 12-unit drop, overlapping in time, that all expired: nothing is
    /// ACTIVE at the end, so an end-state count sees nothing wrong.
    @Test func overlappingExpiredHoldsPastStock() async throws {
        let (run, pool) = try await Self.realRun("expired_overlap")
        defer { Task { await pool.close() } }
        let drop = try await Self.plantDrop(pool, stock: 12)
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at, ended_at)
            SELECT $1, 7000000 + n, 'EXPIRED', now() - interval '10 s' + n * interval '1 ms', now() - interval '8 s', now() - interval '8 s'
            FROM generate_series(1, 13) AS n
            """, [.int64(drop)])
        let report = try await Checker().check(databaseURL: run.databaseURL, drops: run.drops + [drop], history: nil)
        let fault = try #require(Self.broken(report, InvariantName.noOversell))
        #expect(
            fault.counterexamples.contains {
                $0.hasPrefix("drop \(drop): 13 units held or sold at ") && $0.contains("total stock 12")
            })
        #expect(report.oversold == 1)
        #expect(report.endStateViolations?[InvariantName.noOversell] == 0, "the end state alone is clean")
    }

    /// One user, two holds of one drop at once, both expired.
    @Test func overlappingHoldsOfOneUser() async throws {
        let (run, pool) = try await Self.realRun("user_overlap")
        defer { Task { await pool.close() } }
        let drop = try await Self.plantDrop(pool, stock: 5)
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at, ended_at) VALUES
                ($1, 8000002, 'EXPIRED', now() - interval '10 s', now() - interval '8 s', now() - interval '8 s'),
                ($1, 8000002, 'EXPIRED', now() - interval '9 s', now() - interval '7 s', now() - interval '7 s')
            """, [.int64(drop)])
        let report = try await Checker().check(databaseURL: run.databaseURL, drops: run.drops + [drop], history: nil)
        let fault = try #require(Self.broken(report, InvariantName.perUserLimits))
        #expect(fault.counterexamples.contains { $0.hasPrefix("user 8000002 held 2 units of drop \(drop) at once") })
        #expect(report.endStateViolations?[InvariantName.perUserLimits] == 0, "the end state alone is clean")
    }

    /// Limit 1: the user bought a unit, then held another one for a while; it expired, so at
    /// the end they are within their limit.
    @Test func aUserPastTheLimitOnlyMidRun() async throws {
        let (run, pool) = try await Self.realRun("limit_mid_run")
        defer { Task { await pool.close() } }
        let drop = try await Self.plantDrop(pool, stock: 5, limit: 1)
        try await pool.query(
            """
            WITH bought AS (
                INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at, ended_at)
                VALUES ($1, 8000003, 'PURCHASED', now() - interval '10 s', now() - interval '8 s', now() - interval '9 s') RETURNING id)
            INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at)
            SELECT id, $1, 8000003, 100, now() - interval '9 s' FROM bought
            """, [.int64(drop)])
        try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at, ended_at)
            VALUES ($1, 8000003, 'EXPIRED', now() - interval '5 s', now() - interval '4 s', now() - interval '4 s')
            """, [.int64(drop)])
        try await pool.query("UPDATE drops SET sold = 1 WHERE id = $1", [.int64(drop)])
        let report = try await Checker().check(databaseURL: run.databaseURL, drops: run.drops + [drop], history: nil)
        let fault = try #require(Self.broken(report, InvariantName.perUserLimits))
        #expect(
            fault.counterexamples.contains {
                $0.hasPrefix("user 8000003 had 2 holds and purchases on drop \(drop)") && $0.contains("limit 1")
            })
        #expect(
            report.invariants.first { $0.name == InvariantName.countersMatchRows }?.ok == true, "the end state is clean"
        )
        #expect(report.endStateViolations?[InvariantName.perUserLimits] == 0, "the end state alone is clean")
    }

    /// A hold past its deadline, swept 10 s late, while buyers of its drop were told "sold
    /// out": the unit was free from its expiry, and the checker names the late sweep.
    @Test func aHoldSweptLateWhileBuyersWereRefused() async throws {
        let (run, pool) = try await Self.realRun("late_sweep")
        defer { Task { await pool.close() } }
        let drop = try await Self.plantDrop(pool, stock: 1)
        let zero = run.history.startedAtEpochMicroseconds
        let hold = try await pool.query(
            """
            INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at, ended_at)
            VALUES ($1, 8000004, 'EXPIRED', to_timestamp($2 / 1e6), to_timestamp(($2 + 1000000) / 1e6), to_timestamp(($2 + 11000000) / 1e6))
            RETURNING id
            """, [.int64(drop), .int64(zero)]
        ).first!.int64("id")
        var history = run.history
        for second in 3...6 {
            let at = Int64(second) * 1_000_000
            history.records.append(
                OperationRecord(
                    operation: .reserve, result: .rejected(.soldOut), user: 8_100_000 + UserID(second), drop: drop,
                    intendedMicroseconds: at, sentMicroseconds: at, answeredMicroseconds: at + 2_000))
        }
        let fault = try #require(
            Self.broken(
                try await Checker().check(databaseURL: run.databaseURL, drops: run.drops + [drop], history: history),
                InvariantName.noUndersell))
        #expect(fault.violations == 4)
        #expect(
            fault.counterexamples.contains {
                $0.contains("on drop \(drop)") && $0.contains("swept late: reservation \(hold) (user 8000004)")
            })
    }
}
