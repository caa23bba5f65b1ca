// The bench's targets, each a ratio measured in one run so that a machine twice as
// fast or twice as slow reads the same: the actor against the plain-insert ceiling, the batch
// function against it, the actor's p99 against the queueing bound of Little's law, and the
// sold-out rejections against a bare actor.
import Engine
import Foundation

public struct BenchTarget: Codable, Sendable, Equatable {
    public var name: String
    public var value: Double
    /// `value` must be at least this (`atMost` false) or at most this (`atMost` true).
    public var bound: Double
    public var atMost: Bool
    public var unit: String
    public var met: Bool { atMost ? value <= bound : value >= bound }

    static func all(results: [BenchResult], ceilings: BenchCeilings) -> [BenchTarget] {
        var targets = [
            BenchTarget(
                name: "batch function / plain insert",
                value: ceilings.batchFunctionPaired.flatMap(PairedRound.medianRatio)
                    ?? ratio(ceilings.batchFunctionClaimsPerSecond, ceilings.plainInsertClaimsPerSecond),
                bound: 0.80, atMost: false, unit: "ratio")
        ]
        if let actor = results.first(where: { $0.strategy == .actor }) {
            // Little's law: with `callers` always waiting, the mean time in the system is
            // callers ÷ throughput; a p99 within twice that is queueing, not a stall.
            let littleMilliseconds = Double(actor.callers) / max(actor.committedClaimsPerSecond, 1e-9) * 1000
            targets += [
                // Within each pair of slices taken in turn, when they were measured: the phase
                // and (a) alone are a minute apart.
                BenchTarget(
                    name: "actor / plain insert",
                    value: actor.pairedWithPlainInsert.flatMap(PairedRound.medianRatio)
                        ?? ratio(actor.committedClaimsPerSecond, ceilings.plainInsertClaimsPerSecond),
                    bound: 0.70, atMost: false, unit: "ratio"),
                BenchTarget(
                    name: "actor reserve p99 / (callers ÷ claims/s)",
                    value: actor.reserveLatencyMilliseconds.p99 / littleMilliseconds,
                    bound: 2.0, atMost: true, unit: "ratio"),
                BenchTarget(
                    name: "actor sold-out rejections / bare actor",
                    value: actor.pairedWithBareActor.flatMap(PairedRound.medianRatio)
                        ?? ratio(actor.rejectionsPerSecond, ceilings.bareActorAnswersPerSecond),
                    bound: 0.75, atMost: false, unit: "ratio"),
            ]
        }
        return targets
    }

    private static func ratio(_ value: Double, _ reference: Double) -> Double { value / max(reference, 1e-9) }
}
