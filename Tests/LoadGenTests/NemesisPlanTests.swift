// The nemesis's schedule and figures are pure: the same seed gives the same faults, windows
// never overlap, every kind comes before any repeats, and each fault's figures come from the
// requests sent while it was open.
import Engine
import Foundation
import Testing

@testable import LoadGen

@Suite struct NemesisPlanTests {
    @Test func theScheduleIsSeededOrderedAndVisitsEveryKind() {
        let plan = NemesisPlan(faults: FaultKind.allCases, intervalMilliseconds: 2_000)
        let end: Int64 = 60_000_000
        let windows = plan.schedule(seed: 7, endMicroseconds: end)
        #expect(windows == plan.schedule(seed: 7, endMicroseconds: end))
        #expect(windows != plan.schedule(seed: 8, endMicroseconds: end))
        #expect(windows.count >= 20)
        for (earlier, later) in zip(windows, windows.dropFirst()) {
            #expect(earlier.startMicroseconds + earlier.lastsMicroseconds < later.startMicroseconds)
        }
        #expect(
            windows.allSatisfy {
                $0.startMicroseconds < end && $0.lastsMicroseconds >= 600_000 && $0.lastsMicroseconds <= 1_400_000
            })
        #expect(Set(windows.prefix(FaultKind.allCases.count).map(\.kind)) == Set(FaultKind.allCases))
        let one = NemesisPlan(faults: [.killServer], intervalMilliseconds: 5_000).schedule(
            seed: 1, endMicroseconds: 30_000_000)
        #expect(one.allSatisfy { $0.kind == .killServer } && (4...7).contains(one.count))
    }

    @Test func faultsParseFromTheCommandLineAndTheScenario() throws {
        #expect(try NemesisPlan.parseFaults("kill-server, pause-postgres").get() == [.killServer, .pausePostgres])
        let embedded = FaultKind.allCases.filter { !$0.needsFailoverDatabase }
        #expect(try NemesisPlan.parseFaults("all").get() == embedded)
        #expect(
            try NemesisPlan.parseFaults("kill-primary,switchover,kill-server").get() == [
                .killPrimary, .switchover, .killServer,
            ])
        #expect(throws: NemesisPlanError.self) { try NemesisPlan.parseFaults("kill-server,unplug").get() }
        // The embedded database's crash and a Patroni cluster's faults do not mix.
        #expect(throws: NemesisPlanError.self) { try NemesisPlan.parseFaults("kill-primary,restart-postgres").get() }
        let path = ScenarioParserTests.scenarioPath("nemesis")
        let scenario = try ScenarioParser.parse(contentsOf: path).get()
        #expect(scenario.nemesis == NemesisPlan(faults: embedded, intervalMilliseconds: 3_000))
        let broken = ScenarioParser.parse(
            yaml: """
                name: x
                drops: [{name: d, stock: 1}]
                users: [{count: 1, drop: d}]
                nemesis: {faults: [kill-server, unplug]}
                """, file: "x.yaml")
        guard case .failure(let error) = broken else {
            Issue.record("a bad fault parsed")
            return
        }
        #expect(error.problems.contains { $0.field == "nemesis.faults" && $0.message.contains("unplug") })
    }

    @Test func eachFaultCountsTheRequestsOfItsWindowAndTheRecoveryAfterItsHeal() {
        func record(sent: Int64, answered: Int64, _ result: OperationRecord.Result) -> OperationRecord {
            OperationRecord(
                operation: .reserve, result: result, user: 1, drop: 1, reservationID: nil, purchaseID: nil,
                intendedMicroseconds: sent, sentMicroseconds: sent, answeredMicroseconds: answered)
        }
        let faults = [
            FaultRecord(
                kind: .pausePostgres, target: "postgres", startedMicroseconds: 1_000_000, healedMicroseconds: 2_000_000),
            FaultRecord(kind: .killServer, target: "s2", startedMicroseconds: 5_000_000, healedMicroseconds: 6_000_000),
        ]
        let history = [
            record(sent: 500_000, answered: 600_000, .ok),  // before any fault
            record(sent: 1_100_000, answered: 6_100_000, .timeout),
            record(sent: 1_500_000, answered: 1_600_000, .failed),
            record(sent: 2_100_000, answered: 2_900_000, .error),  // after the heal, but a failure
            record(sent: 2_200_000, answered: 2_500_000, .rejected(.soldOut)),  // the first answer: 0.5 s
            record(sent: 5_100_000, answered: 5_200_000, .error),
        ]
        let reports = FaultReport.reports(faults, history: history)
        #expect(reports.map(\.requests) == [4, 1])
        #expect(reports.map(\.indeterminate) == [2, 1])
        #expect(reports.map(\.answered) == [2, 0])
        #expect(reports[0].recoverySeconds == 0.5)
        #expect(reports[1].recoverySeconds == nil)
        #expect(reports[0].line.hasPrefix("pause-postgres postgres at 1.00 s, healed at 2.00 s: 4 requests"))
    }

    /// The outage is the longest stretch without a new hold acknowledged around the fault:
    /// holds answered until the kill, refusals and doubts while no primary serves, holds again
    /// once the promoted one does. A purchase replayed from memory is not a commit.
    @Test func aFailoverReportsItsOutageWindowAndItsPromotion() {
        func record(
            _ operation: OperationKind = .reserve, sent: Int64, answered: Int64, _ result: OperationRecord.Result
        ) -> OperationRecord {
            OperationRecord(
                operation: operation, result: result, user: 1, drop: 1, intendedMicroseconds: sent,
                sentMicroseconds: sent, answeredMicroseconds: answered)
        }
        var fault = FaultRecord(
            kind: .killPrimary, target: "pg1", startedMicroseconds: 10_000_000, healedMicroseconds: 30_000_000)
        fault.promotedMicroseconds = 21_000_000
        let history = [
            record(sent: 8_000_000, answered: 8_100_000, .ok),
            record(sent: 9_900_000, answered: 9_950_000, .ok),  // the last hold before the kill
            record(sent: 10_500_000, answered: 10_600_000, .failed),
            record(sent: 11_000_000, answered: 16_000_000, .timeout),
            record(.purchase, sent: 12_000_000, answered: 12_100_000, .ok),  // a replay from memory
            record(sent: 18_000_000, answered: 18_100_000, .rejected(.overloaded)),
            record(sent: 21_500_000, answered: 21_800_000, .ok),  // the outage ends
            record(sent: 22_000_000, answered: 22_100_000, .ok),
        ]
        let report = FaultReport.reports([fault], history: history)[0]
        #expect(report.lastSuccessBeforeSeconds == 9.95)
        #expect(report.firstSuccessAfterSeconds == 21.8)
        #expect(report.outageSeconds.map { abs($0 - 11.85) < 1e-9 } == true)
        #expect(report.refusedInOutage == 2)
        #expect(report.inDoubtInOutage == 1)
        #expect(report.promotedSeconds == 21)
        #expect(report.line.contains("outage 11.85 s") && report.line.contains("new primary serving at 21.00 s"))
    }
}
