// The checker never matches the history to the rows more tightly than the harness's clock
// offset to the database's is known: `clockTolerance: 0ms` broke invariant 2 in 3 of 6 runs of
// a product that kept it (a purchase asked microseconds after its send read as asked before).
import Engine
import Foundation
import Synchronization
import Testing

@testable import LoadGen

@Suite struct ClockToleranceTests {
    private static func offset(uncertaintyMicroseconds: Int64) -> ClockOffset {
        ClockOffset(
            offsetMicroseconds: 12, uncertaintyMicroseconds: uncertaintyMicroseconds,
            roundTripMicroseconds: uncertaintyMicroseconds * 2, samples: 16, measuredAtEpochMicroseconds: 0)
    }

    @Test func theToleranceIsNeverBelowTheOffsetsUncertaintyAndWideningIsSaid() {
        let notes = Mutex<[String]>([])
        let note: (String) -> Void = { line in notes.withLock { $0.append(line) } }
        // The scenario's tolerance when it covers the uncertainty, or when none was measured.
        #expect(
            StrategyLoad.checkedTolerance(
                100, offset: Self.offset(uncertaintyMicroseconds: 40), strategy: .actor, note: note) == 100)
        #expect(StrategyLoad.checkedTolerance(0, offset: nil, strategy: .actor, note: note) == 0)
        #expect(notes.withLock { $0 }.isEmpty)
        // Below it: the uncertainty, and a note that says so.
        #expect(
            StrategyLoad.checkedTolerance(
                0, offset: Self.offset(uncertaintyMicroseconds: 40), strategy: .actor, note: note) == 0.04)
        #expect(
            StrategyLoad.checkedTolerance(
                0.01, offset: Self.offset(uncertaintyMicroseconds: 1_500), strategy: .rowlock, note: note) == 1.5)
        let said = notes.withLock { $0 }
        #expect(said.count == 2)
        #expect(
            said.first?.hasPrefix("actor: note: limits.clockTolerance 0 ms is below the uncertainty") == true, "\(said)"
        )
        #expect(said.last?.hasSuffix("the checker allows 1.500 ms") == true, "\(said)")
    }
}
