// The bench's terminal table: strategies side by side, and their ratio.
import Foundation

extension BenchReport {
    public var table: String {
        func number(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }
        var rows: [(String, [String])] = [
            ("callers", results.map { "\($0.callers)" }),
            ("committed claims", results.map { "\($0.committedClaims)" }),
            ("  in the database", results.map { "\($0.committedClaimsInDatabase)" }),
            ("committed claims/s", results.map { number($0.committedClaimsPerSecond) }),
            ("reserve p50 ms", results.map { number($0.reserveLatencyMilliseconds.p50, 2) }),
            ("reserve p90 ms", results.map { number($0.reserveLatencyMilliseconds.p90, 2) }),
            ("reserve p99 ms", results.map { number($0.reserveLatencyMilliseconds.p99, 2) }),
            ("reserve p99.9 ms", results.map { number($0.reserveLatencyMilliseconds.p999, 2) }),
            ("reserve max ms", results.map { number($0.reserveLatencyMilliseconds.max, 2) }),
            ("sold-out rejections/s", results.map { number($0.rejectionsPerSecond) }),
            ("rejection p99 ms", results.map { number($0.rejectionLatencyMilliseconds.p99, 3) }),
            ("errors", results.map { "\($0.errors)" }),
            ("actor bytes/ACTIVE hold", results.map { $0.actorBytesPerActiveReservation.map { number($0, 1) } ?? "-" }),
        ]
        var header = results.map(\.strategy.rawValue)
        if let committedClaimsRatio, let rejectionsRatio {
            header.append("actor/rowlock")
            for index in rows.indices { rows[index].1.append("") }
            rows[3].1[rows[3].1.count - 1] = number(committedClaimsRatio, 1) + "x"
            rows[9].1[rows[9].1.count - 1] = number(rejectionsRatio, 1) + "x"
        }
        let labelWidth = rows.map(\.0.count).max() ?? 0
        let columnWidth = max(14, (rows.flatMap(\.1) + header).map(\.count).max() ?? 0)
        func line(_ label: String, _ cells: [String]) -> String {
            label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
                + cells.map {
                    String(repeating: " ", count: max(0, columnWidth - $0.count) + 2) + $0
                }.joined()
        }
        return (([line("", header)] + rows.map { line($0.0, $0.1) }) + ceilingLines).joined(separator: "\n")
    }

    /// The references measured in this run, and the product against them.
    private var ceilingLines: [String] {
        guard let ceilings else { return [] }
        func number(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }
        var lines = [
            "",
            "ceilings measured in this run (\(ceilings.batchClaims) claims per transaction, one connection):",
            "  (a) plain locked insert      \(number(ceilings.plainInsertClaimsPerSecond)) claims/s"
                + "  (p50 \(number(ceilings.plainInsertTransactionMilliseconds.p50, 2)) ms per transaction)",
            "  (b) batch function alone     \(number(ceilings.batchFunctionClaimsPerSecond)) claims/s"
                + "  (p50 \(number(ceilings.batchFunctionCallMilliseconds.p50, 2)) ms per call)",
            "  (c) bare actor, from memory  \(number(ceilings.bareActorAnswersPerSecond)) answers/s",
        ]
        if let rounds = ceilings.batchFunctionPaired { lines.append(Self.pairedLine("(b) / (a)", rounds)) }
        for result in results {
            if let batches = result.actorBatches {
                lines.append(
                    "\(result.strategy.rawValue) batches: \(batches.batches), \(number(batches.claimsPerBatch, 1)) claims each;"
                        + " per batch, ms: store \(number(batches.mean(batches.storeMicroseconds), 2)),"
                        + " hop back \(number(batches.mean(batches.hopMicroseconds), 2)),"
                        + " answers \(number(batches.mean(batches.answerMicroseconds), 2)),"
                        + " gap to the next \(number(batches.mean(batches.gapMicroseconds), 2))")
            }
        }
        for result in results {
            lines.append(
                "  \(result.strategy.rawValue) / (a)  \(number(result.committedClaimsPerSecond / max(ceilings.plainInsertClaimsPerSecond, 1e-9), 2))"
            )
            if let rounds = result.pairedWithPlainInsert {
                lines.append(Self.pairedLine("\(result.strategy.rawValue) / (a)", rounds))
            }
            if let rounds = result.pairedWithBareActor {
                lines.append(
                    Self.pairedLine(
                        "\(result.strategy.rawValue) sold-out / (c)", rounds, reference: "(c)", unit: "answers/s"))
            }
        }
        lines.append("targets:")
        for target in targets {
            lines.append(
                "  \(target.met ? "met   " : "MISSED") \(target.name): \(number(target.value, 2)) (\(target.atMost ? "≤" : "≥") \(number(target.bound, 2)))"
            )
        }
        return lines
    }

    /// A ratio measured in pairs of slices taken in turn: its median, the pairs' range, and the
    /// reference's.
    private static func pairedLine(
        _ name: String, _ rounds: [PairedRound], reference referenceName: String = "(a)", unit: String = "claims/s"
    ) -> String {
        func number(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }
        let ratios = rounds.map(\.ratio)
        let reference = rounds.map(\.referencePerSecond)
        return "  \(name), \(rounds.count) pairs in turn  \(number(PairedRound.medianRatio(rounds) ?? 0, 2))"
            + " (pairs \(number(ratios.min() ?? 0, 2))–\(number(ratios.max() ?? 0, 2));"
            + " \(referenceName) \(number(reference.min() ?? 0))–\(number(reference.max() ?? 0)) \(unit))"
    }
}
