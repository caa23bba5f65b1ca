// The run's summary for people: the terminal table and report.md share these lines.
import Foundation

extension RunReport {
    /// Rows of the side-by-side table: a label, then one cell per strategy, then the ratio.
    var comparisonRows: [[String]] {
        func ms(_ v: Double) -> String { String(format: "%.2f ms", v) }
        func count(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v) }
        var rows: [[String]] = [
            [""] + strategies.map(\.strategy.rawValue) + (comparison == nil ? [] : ["actor/rowlock"])
        ]
        /// A label, a cell per strategy, and (with both strategies) the ratio cell.
        func row(
            _ label: String, ratio: (StrategyComparison) -> String = { _ in "" }, _ cell: (StrategyReport) -> String
        ) {
            rows.append([label] + strategies.map(cell) + (comparison.map { [ratio($0)] } ?? []))
        }
        // A drop scenario is bounded by stock: what it measures is how fast buyers hear "yes" or
        // "no", how soon the stock is gone, and how long each answer took. Committed claims per
        // second follow from the stock and come later.
        row("answers/s", ratio: { Self.times($0.answersPerSecondRatio) }) {
            count($0.throughput.answersPerSecond)
        }
        row("time to sell out", ratio: { $0.timeToSellOutRatio.map(Self.soonerOrLater) ?? "" }) {
            $0.throughput.timeToSellOutSeconds.map { String(format: "%.2f s", $0) } ?? "never"
        }
        for operation in OperationKind.allCases {
            guard strategies.contains(where: { ($0.operations[operation.rawValue]?.count ?? 0) > 0 }) else { continue }
            for (label, path) in [("p50", \LatencyPercentiles.p50), ("p99", \.p99), ("p99.9", \.p999), ("max", \.max)] {
                let showsRatio = operation == .reserve && label == "p99"
                row(
                    "\(operation.rawValue) \(label)",
                    ratio: { showsRatio ? String(format: "%.1fx lower", $0.p99ReserveLatencyRatio) : "" }
                ) {
                    ms($0.operations[operation.rawValue]?.latencyMilliseconds[keyPath: path] ?? 0)
                }
            }
            row("\(operation.rawValue) ok / rejected / shed / errors") {
                let s = $0.operations[operation.rawValue]
                return "\(s?.ok ?? 0) / \(s?.rejected.values.reduce(0, +) ?? 0) / \(s?.shed ?? 0) / \(s?.errors ?? 0)"
            }
            // Whose time it was: from the actual send (network and server), and the server's
            // own histogram, beside the p50/p99 above (from the intended send).
            if strategies.contains(where: { $0.timing?.operations[operation.rawValue] != nil }) {
                row("\(operation.rawValue) p50 / p99 from send") { s in
                    s.timing?.operations[operation.rawValue].map {
                        String(format: "%.2f / %.2f ms", $0.fromSendMilliseconds.p50, $0.fromSendMilliseconds.p99)
                    } ?? "-"
                }
            }
            if strategies.contains(where: { $0.timing?.operations[operation.rawValue]?.server != nil }) {
                row("\(operation.rawValue) p50 / p99 server's own") { s in
                    s.timing?.operations[operation.rawValue]?.server.map {
                        String(format: "%.2f / %.2f ms", $0.p50Milliseconds, $0.p99Milliseconds)
                    } ?? "-"
                }
            }
        }
        if strategies.contains(where: { $0.expiredPurchases.map { $0.sentInTime + $0.sentLate > 0 } ?? false }) {
            row("purchases refused expired: sent in time / late") {
                $0.expiredPurchases.map { "\($0.sentInTime) / \($0.sentLate)" } ?? "-"
            }
        }
        row("duration", ratio: { Self.shorterOrLonger($0.durationRatio) }) {
            String(format: "%.2f s", $0.durationSeconds)
        }
        row(
            "committed claims/s (bounded by stock)",
            ratio: { Self.times($0.committedClaimsPerSecondRatio) }
        ) {
            count($0.throughput.committedClaimsPerSecond)
        }
        row("requests/s", ratio: { Self.times($0.requestsPerSecondRatio) }) {
            count($0.throughput.requestsPerSecond)
        }
        row("batch clock to answer p50 / p99") {
            $0.stampToAnswerMilliseconds.map { String(format: "%.2f / %.2f ms", $0.p50, $0.p99) } ?? "-"
        }
        row("target CPU per request") {
            $0.resources?.targetCPUMicrosecondsPerRequest.map { String(format: "%.1f µs", $0) } ?? "-"
        }
        if strategies.contains(where: { $0.timing?.harnessCPUShare != nil }) {
            row("harness CPU per request / busy") { s in
                guard let timing = s.timing, let perRequest = timing.harnessCPUMicrosecondsPerRequest else {
                    return "-"
                }
                return String(format: "%.1f µs / %.0f%%", perRequest, (timing.harnessCPUShare ?? 0) * 100)
            }
        }
        row("harness delay p99 / max") { s in
            s.timing.map {
                String(format: "%.2f / %.2f ms", $0.harnessDelayMilliseconds.p99, $0.harnessDelayMilliseconds.max)
            } ?? "-"
        }
        if strategies.contains(where: { $0.timing?.connections != nil }) {
            row("connections opened / bound") { s in
                s.timing?.connections.map { "\($0.opened) / \($0.boundPerServer)" } ?? "-"
            }
            row("connect p50 / p99") { s in
                s.timing.map {
                    String(format: "%.2f / %.2f ms", $0.connectMilliseconds.p50, $0.connectMilliseconds.p99)
                } ?? "-"
            }
            row("waits for a connection / p99") { s in
                s.timing.map {
                    "\($0.connectionWaits) / " + String(format: "%.2f ms", $0.connectionWaitMilliseconds.p99)
                }
                    ?? "-"
            }
        }
        row("harness peak RSS") {
            $0.resources.map { String(format: "%.0f MiB", Double($0.harnessPeakResidentBytes) / 1_048_576) } ?? "-"
        }
        if strategies.contains(where: { $0.resources?.harnessResidentGrowthAfterWarmUp != nil }) {
            row("harness RSS warm / end / growth") { s in
                guard let r = s.resources, let warm = r.harnessResidentBytesAfterWarmUp,
                    let end = r.harnessResidentBytesAtEnd,
                    let growth = r.harnessResidentGrowthAfterWarmUp
                else { return "-" }
                return String(
                    format: "%.0f / %.0f MiB / %+.1f%%", Double(warm) / 1_048_576, Double(end) / 1_048_576, growth * 100
                )
            }
        }
        row("sold / total") { "\($0.stock.sold) / \($0.stock.total)" }
        row("oversold") { "\($0.stock.oversold)" }
        row("users arrived / dropped / late sends") {
            "\($0.users.arrived) / \($0.users.droppedSends) / \($0.users.lateSends)"
        }
        if strategies.contains(where: { ($0.users.shedAtStop ?? 0) > 0 }) {
            row("users still shed at the stop") { "\($0.users.shedAtStop ?? 0)" }
        }
        if strategies.contains(where: { $0.users.unsentAtStop != nil }) {
            row("not sent, due after the stop: reserve / purchase / cancel") { strategy in
                OperationKind.allCases.map { String(strategy.users.unsentAtStop?[$0.rawValue] ?? 0) }
                    .joined(separator: " / ")
            }
        }
        if strategies.contains(where: { $0.live != nil }) {
            row("watchers connected / events/s") {
                $0.live.map { "\($0.connected)/\($0.watchers) / \(count($0.eventsPerSecond))" } ?? "-"
            }
            row("event lag p50 / p99") {
                $0.live.map { String(format: "%.2f / %.2f ms", $0.lagMilliseconds.p50, $0.lagMilliseconds.p99) } ?? "-"
            }
            row("watchers on the final stock") { $0.live.map { "\($0.finalStockMatches)/\($0.watchers)" } ?? "-" }
        }
        row("invariants") {
            $0.invariantsBroken == 0
                ? "all \($0.invariants.filter(\.checked).count) hold" : "\($0.invariantsBroken) BROKEN"
        }
        row("thresholds") { s in
            s.thresholds.isEmpty ? "none" : "\(s.thresholds.filter(\.ok).count)/\(s.thresholds.count) pass"
        }
        if strategies.contains(where: { $0.role == .baseline }) {
            row("role") { $0.role == .product ? "the verdict" : "baseline (findings)" }
        }
        return rows
    }

    /// The comparison as an aligned text table.
    public var summaryTable: String { Self.aligned(comparisonRows) }

    /// A merge's shards, a line each (nil for a run on one machine).
    public var shardRows: [[String]]? {
        guard let shards, !shards.isEmpty else { return nil }
        func ms(_ v: Double) -> String { String(format: "%.2f", v) }
        return [
            [
                "shard", "host", "users", "requests", "reserve ok", "p50 ms", "p99 ms", "clock offset ms", "± ms",
                "drift ms", "zero +ms", "late ms",
            ]
        ]
            + shards.map {
                [
                    $0.shard, $0.host, "\($0.users)", "\($0.requests)", "\($0.reserveOK)",
                    ms($0.reserveP50Milliseconds),
                    ms($0.reserveP99Milliseconds), String(format: "%.3f", $0.clockOffsetMilliseconds),
                    String(format: "%.3f", $0.clockUncertaintyMilliseconds),
                    String(format: "%.3f", $0.clockDriftMilliseconds), ms($0.startedAfterMilliseconds),
                    ms($0.beganLateMilliseconds),
                ]
            }
    }

    public var shardTable: String? { shardRows.map(Self.aligned) }

    /// Rows as an aligned text table: the first column left, the others right, a rule under
    /// the header.
    static func aligned(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.map(\.count).max() ?? 0)).map { column in
            rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0
        }
        var lines = rows.map { row in
            row.enumerated().map { column, text in
                column == 0
                    ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - text.count) + text
            }.joined(separator: "  ")
        }
        lines.insert(String(repeating: "─", count: widths.reduce(0, +) + 2 * (widths.count - 1)), at: 1)
        return lines.joined(separator: "\n")
    }

    /// A nemesis run's faults, then broken invariants and missed thresholds, each on a line,
    /// for the end of the terminal output; the baseline's are findings of the comparison,
    /// marked so.
    public var problemLines: [String] { strategies.flatMap(problemLines(for:)) }

    /// One strategy's share of `problemLines`.
    func problemLines(for strategy: StrategyReport) -> [String] {
        let label =
            strategy.role == .baseline ? "\(strategy.strategy) (baseline, a finding)" : "\(strategy.strategy)"
        let faults: [String] =
            (strategy.faults ?? []).map { "\(label): fault \($0.line)" }
            + (strategy.findings ?? []).map { "\(label): FINDING (not the verdict): \($0)" }
        let invariants: [String] = strategy.invariants.filter { !$0.ok }.flatMap { invariant -> [String] in
            ["\(label): invariant \(invariant.number) \(invariant.name) BROKEN: \(invariant.detail)"]
                + invariant.counterexamples.prefix(5).map { "    e.g. \($0)" }
        }
        let thresholds: [String] = strategy.thresholds.filter { !$0.ok }.map {
            "\(label): threshold `\($0.expression)` missed (actual \($0.actualText))"
                + ($0.decidedByHarness
                    ? "; HARNESS-LIMITED: less the harness's own delay it is \(String(format: "%g", $0.withoutHarnessDelay ?? 0)), which meets it"
                    : "")
        }
        let expired: [String] =
            (strategy.expiredPurchases.map { $0.sentInTime > 0 } ?? false)
            ? [
                "\(label): \(strategy.expiredPurchases!.sentInTime) purchases sent in time were refused expired (the server's delay)"
            ]
                + strategy.expiredPurchases!.examples.prefix(5).map { "    e.g. \($0)" }
            : []
        let errors: [String] = (strategy.errorCauses ?? []).prefix(5).map { "\(label): errors: \($0.line)" }
        let live: [String] =
            (strategy.holdsLiveAtCheck ?? 0) > 0
            ? [
                "\(label): note: \(strategy.holdsLiveAtCheck!) holds were still live when checked: their expiry is not judged"
                    + (strategy.targetDown == nil
                        ? " (their TTL outlasts the wait after the load; `--drain S` waits longer)" : "")
            ] : []
        return faults + invariants + thresholds + expired + errors + live
    }

    /// Said first when something other than the server's capacity held the load back: the
    /// harness itself (the figures are then partly its own), or the server's rate limit (its
    /// refusals are then the limit's, not the load's).
    public var limitedLines: [String] { strategies.flatMap(limitedLines(for:)) }

    func limitedLines(for strategy: StrategyReport) -> [String] {
        var lines: [String] = []
        // The root cause first: a target that went away explains the errors and latencies after.
        if let down = strategy.targetDown {
            let last =
                down.lastAnswerSeconds.map { String(format: "its last answer came at +%.2f s", $0) }
                ?? "it never answered"
            lines.append(
                "TARGET DOWN (\(strategy.strategy)): no server answered when the load ended (\(last)):")
            lines.append(
                "    requests after that failed (errors by cause below), and holds it left ACTIVE past their expiry are not judged: nothing ran to expire them (a server expires them when it starts)"
            )
        }
        if let timing = strategy.timing, timing.harnessLimited {
            lines.append(
                "HARNESS-LIMITED (\(strategy.strategy)): the latencies below are partly the harness's own, not the server's:"
            )
            lines += timing.harnessLimitedBecause.map { "    \($0)" }
        }
        let limits = strategy.errorCauses?.filter { ErrorCause.isRateLimit($0.cause) } ?? []
        if !limits.isEmpty {
            lines.append(
                "RATE-LIMITED (\(strategy.strategy)): a rate limit refused \(limits.map(\.count).reduce(0, +)) requests (429, nothing applied), so the run measured the limit, not the server:"
            )
            for limited in limits { lines += ["    \(limited.line)"] + (limited.hint.map { ["    \($0)"] } ?? []) }
        }
        return lines
    }

    public var verdictLine: String {
        let whose =
            strategies.contains { $0.role == .baseline }
            ? " (the verdict is the actor's; the baseline's findings do not fail the run)" : ""
        return switch exitCode {
        case ExitStatus.pass: "PASS: every invariant holds and every threshold is met\(whose)"
        case ExitStatus.invariantBroken: "FAIL: an invariant is broken (exit 1)\(whose)"
        case ExitStatus.unavailable:
            "FAIL: no server answered when the load ended (exit 69); the invariants that could be judged hold\(whose)"
        default:
            strategies.contains { $0.role == .product && $0.thresholds.contains { !$0.ok && !$0.decidedByHarness } }
                ? "FAIL: a threshold was missed (exit 2)\(whose)"
                : "FAIL: a threshold was missed (exit 2), decided by the harness's own delay: the run was harness-limited, so it says nothing of the server\(whose)"
        }
    }

    /// Rowlock's time to sell out ÷ the actor's, said the way it reads: "3.0x sooner", or for
    /// a ratio below 1 (the actor sold out later) "5.0x later", never "0.2x sooner"; "n/a"
    /// when either time was zero (the ratio is then 0).
    static func soonerOrLater(_ ratio: Double) -> String {
        if ratio <= 0 { return "n/a" }
        // Within 5% either way, "1.0x later" said nothing true.
        if abs(ratio - 1) < 0.05 { return "about the same" }
        return ratio >= 1 ? String(format: "%.1fx sooner", ratio) : String(format: "%.1fx later", 1 / ratio)
    }

    /// Rowlock's duration ÷ the actor's: "2.00x shorter", "1.50x longer" (not "0.67x
    /// shorter"), "about the same" within 5%.
    static func shorterOrLonger(_ ratio: Double) -> String {
        if ratio <= 0 { return "n/a" }
        if abs(ratio - 1) < 0.05 { return "about the same" }
        return ratio >= 1 ? String(format: "%.2fx shorter", ratio) : String(format: "%.2fx longer", 1 / ratio)
    }

    /// The actor's figure ÷ rowlock's as "3.9x"; "n/a" when rowlock's was zero (the ratio is
    /// then 0, which read "0.0x" when both were).
    static func times(_ ratio: Double) -> String {
        ratio > 0 ? String(format: "%.1fx", ratio) : "n/a"
    }

    /// What the comparison showed, in one sentence for a newcomer (nil with one strategy).
    public var headline: String? {
        guard let comparison, let actor = strategies.first(where: { $0.strategy == .actor }),
            let rowlock = strategies.first(where: { $0.strategy == .rowlock })
        else { return nil }
        func rate(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v) }
        func soldOut(_ s: StrategyReport) -> String {
            s.throughput.timeToSellOutSeconds.map { String(format: "%.2f s", $0) } ?? "never"
        }
        let p99 = { (s: StrategyReport) in
            String(format: "%.1f ms", s.operations["reserve"]?.latencyMilliseconds.p99 ?? 0)
        }
        var sentence =
            "actor answered \(rate(actor.throughput.answersPerSecond)) requests/s against rowlock's "
            + "\(rate(rowlock.throughput.answersPerSecond)) (\(Self.times(comparison.answersPerSecondRatio))); "
        sentence += "time to sell out (every unit held or sold) \(soldOut(actor)) against \(soldOut(rowlock))"
        if let ratio = comparison.timeToSellOutRatio { sentence += " (\(Self.soonerOrLater(ratio)))" }
        sentence += "; reserve p99 \(p99(actor)) against \(p99(rowlock)); "
        sentence += "sold \(actor.stock.sold) against \(rowlock.stock.sold) of \(actor.stock.total) units"
        return sentence
    }

    /// A Markdown table whose first row is the header.
    static func markdownTable(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        var md = "| " + header.map { $0.isEmpty ? " " : $0 }.joined(separator: " | ") + " |\n"
        md += "|" + header.map { _ in "---" }.joined(separator: "|") + "|\n"
        for row in rows.dropFirst() { md += "| " + row.joined(separator: " | ") + " |\n" }
        return md
    }

    var markdown: String {
        var md = "# \(scenario): \(pass ? "PASS" : "FAIL")\n\n"
        for (index, line) in limitedLines.enumerated() {
            // A note's first line in bold (a blank line closes the list of the note before).
            md += line.hasPrefix("    ") ? "- \(line.dropFirst(4))\n" : "\(index > 0 ? "\n" : "")**\(line)**\n\n"
        }
        if !limitedLines.isEmpty { md += "\n" }
        if let headline { md += "\(headline.prefix(1).uppercased() + headline.dropFirst()).\n\n" }
        md +=
            "Seed \(seed), target \(target), started \(ISO8601DateFormatter().string(from: startedAt)), exit code \(exitCode).\n\n"
        md += Self.markdownTable(comparisonRows)
        if let shardRows {
            md +=
                "\n## Shards\n\nEach shard's history was moved onto the database's clock by its offset before the checker ran over all of them.\n\n"
            md += Self.markdownTable(shardRows)
        }
        for strategy in strategies {
            md +=
                "\n## \(strategy.strategy)\(strategy.role == .baseline ? " (baseline: findings, not the verdict)" : "")\n\n"
            md += "| invariant | ok | detail |\n|---|---|---|\n"
            for invariant in strategy.invariants {
                md +=
                    "| \(invariant.number). \(invariant.name) | \(invariant.checked ? (invariant.ok ? "yes" : "**NO**") : "skipped") | \(invariant.detail) |\n"
                for example in invariant.counterexamples { md += "| | | e.g. \(example) |\n" }
            }
            if !strategy.thresholds.isEmpty {
                md += "\n| threshold | ok | actual |\n|---|---|---|\n"
                for threshold in strategy.thresholds {
                    let mark = threshold.decidedByHarness ? " (harness-limited)" : ""
                    md +=
                        "| `\(threshold.expression)` | \(threshold.ok ? "yes" : "**NO**\(mark)") | \(threshold.actualText) |\n"
                }
            }
            if let faults = strategy.faults {
                md += "\nFaults (nemesis), in order:\n\n"
                for fault in faults { md += "- \(fault.line)\n" }
            }
            for finding in strategy.findings ?? [] { md += "\n**Finding** (not the verdict): \(finding)\n" }
            if let causes = strategy.errorCauses {
                md += "\n| errors by cause | count | by operation | e.g. | what it means |\n|---|---|---|---|---|\n"
                for cause in causes {
                    // A server's or a socket's words: a `|` or a line break would end the row.
                    func cell(_ text: String) -> String {
                        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
                    }
                    md +=
                        "| \(cell(cause.cause)) | \(cause.count) | \(cause.byOperationCell) | \(cell(cause.example)) | \(cause.hint ?? "") |\n"
                }
            }
            md += "\nRejections by code:"
            for (operation, stats) in strategy.operations.sorted(by: { $0.key < $1.key }) where !stats.rejected.isEmpty
            {
                md +=
                    " \(operation): "
                    + stats.rejected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    + "."
            }
            md += "\n"
        }
        return md
    }
}
