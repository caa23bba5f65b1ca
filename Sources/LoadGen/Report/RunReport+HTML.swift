// report.html: one self-contained page (inline CSS and SVG, nothing fetched), readable offline
// and attachable to a ticket.
import Foundation

extension RunReport {
    static let strategyColors = ["actor": "#1f77b4", "rowlock": "#d62728"]

    /// The report's look, which the live dashboard shares.
    static let style = """
        body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1320px;color:#222;padding:0 16px}
        table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}
        th:first-child{text-align:left}td ul{margin:4px 0;padding-left:18px;text-align:left}
        .pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:700}.skip{color:#888}
        .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:12px}
        svg{background:#fafafa;border:1px solid #eee}svg .title{font-weight:600;font-size:13px}
        svg .tick{font-size:11px;fill:#555}svg .label{font-size:11px;fill:#333}svg .grid{stroke:#e6e6e6}svg .axis{stroke:#999}
        """

    var html: String {
        let esc = SVGChart.escape
        var body =
            "<h1>\(esc(scenario)) <span class=\"\(pass ? "pass" : "fail")\">\(pass ? "PASS" : "FAIL")</span></h1>"
        let limited = limitedLines
        if !limited.isEmpty {
            // A note's first line in bold, its indented lines listed under it.
            body += "<div class=\"fail\">"
            var listing = false
            for line in limited {
                let indented = line.hasPrefix("    ")
                if listing != indented { body += indented ? "<ul>" : "</ul>" }
                listing = indented
                body +=
                    indented
                    ? "<li>\(esc(line.trimmingCharacters(in: .whitespaces)))</li>"
                    : "<p><strong>\(esc(line))</strong></p>"
            }
            body += (listing ? "</ul>" : "") + "</div>"
        }
        if let headline {
            body += "<p class=\"headline\">\(esc(headline.prefix(1).uppercased() + headline.dropFirst())).</p>"
        }
        body +=
            "<p>Seed \(seed) · target \(esc(target)) · started \(ISO8601DateFormatter().string(from: startedAt)) · exit code \(exitCode)</p>"

        let rows = comparisonRows
        body += "<h2>Side by side</h2><table><tr>" + rows[0].map { "<th>\(esc($0))</th>" }.joined() + "</tr>"
        for row in rows.dropFirst() {
            body +=
                "<tr>" + row.enumerated().map { $0 == 0 ? "<th>\(esc($1))</th>" : "<td>\(esc($1))</td>" }.joined()
                + "</tr>"
        }
        body += "</table>"
        if let shardRows {
            body += "<h2>Shards</h2><table><tr>" + shardRows[0].map { "<th>\(esc($0))</th>" }.joined() + "</tr>"
            for row in shardRows.dropFirst() {
                body += "<tr>" + row.map { "<td>\(esc($0))</td>" }.joined() + "</tr>"
            }
            body += "</table>"
        }

        body += "<h2>Charts</h2><div class=\"charts\">"
        body += percentileChart(operation: "reserve")
        if strategies.contains(where: { $0.latencyCurves["purchase"] != nil }) {
            body += percentileChart(operation: "purchase")
        }
        body +=
            SVGChart(
                title: "Committed claims per second", xLabel: "seconds since start", yLabel: "claims/s",
                series: strategies.map { s in
                    .init(
                        name: s.strategy.rawValue, color: color(s),
                        points: s.timeline.map { (Double($0.second), Double($0.committedClaims)) })
                }
            ).svg
        body +=
            SVGChart(
                title: "Requests answered per second", xLabel: "seconds since start", yLabel: "answers/s",
                series: strategies.map { s in
                    .init(
                        name: s.strategy.rawValue, color: color(s),
                        points: s.timeline.map { (Double($0.second), Double($0.ok + $0.rejected + $0.errors)) })
                }
            ).svg
        body +=
            SVGChart(
                title: "Available stock", xLabel: "seconds since start", yLabel: "units",
                series: strategies.map { s in
                    .init(
                        name: s.strategy.rawValue, color: color(s),
                        points: s.timeline.compactMap { p in p.availableStock.map { (Double(p.second), Double($0)) } })
                }
            ).svg
        body += "</div>"

        for strategy in strategies {
            let role = strategy.role == .baseline ? " (baseline: findings, not the verdict)" : ""
            body +=
                "<h2>\(strategy.strategy.rawValue)\(role): invariants</h2><table><tr><th>invariant</th><th>verdict</th><th>detail</th></tr>"
            for invariant in strategy.invariants {
                let verdict =
                    !invariant.checked
                    ? "<td class=\"skip\">skipped</td>"
                    : invariant.ok ? "<td class=\"pass\">holds</td>" : "<td class=\"fail\">BROKEN</td>"
                var detail = esc(invariant.detail)
                if !invariant.counterexamples.isEmpty {
                    detail += "<ul>" + invariant.counterexamples.map { "<li>\(esc($0))</li>" }.joined() + "</ul>"
                }
                body += "<tr><th>\(invariant.number). \(esc(invariant.name))</th>\(verdict)<td>\(detail)</td></tr>"
            }
            body += "</table>"
            if !strategy.thresholds.isEmpty {
                body += "<h3>Thresholds</h3><table><tr><th>expression</th><th>verdict</th><th>actual</th></tr>"
                for threshold in strategy.thresholds {
                    body +=
                        "<tr><td><code>\(esc(threshold.expression))</code></td>\(threshold.ok ? "<td class=\"pass\">met</td>" : "<td class=\"fail\">missed\(threshold.decidedByHarness ? " (harness-limited)" : "")</td>")<td>\(threshold.actualText)</td></tr>"
                }
                body += "</table>"
            }
            body +=
                "<h3>Operations</h3><table><tr><th>operation</th><th>count</th><th>ok</th><th>rejected</th><th>errors</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>"
            for (name, stats) in strategy.operations.sorted(by: { $0.key > $1.key }) where stats.count > 0 {
                let rejected = stats.rejected.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(
                    separator: ", ")
                let l = stats.latencyMilliseconds
                body +=
                    "<tr><th>\(name)</th><td>\(stats.count)</td><td>\(stats.ok)</td><td>\(esc(rejected.isEmpty ? "0" : rejected))</td><td>\(stats.errors)</td>"
                body +=
                    [l.p50, l.p90, l.p99, l.p999, l.max].map { String(format: "<td>%.2f ms</td>", $0) }.joined()
                    + "</tr>"
            }
            body += "</table>"
            if let causes = strategy.errorCauses {
                body +=
                    "<h3>Errors by cause</h3><table><tr><th>cause</th><th>count</th><th>by operation</th><th>e.g.</th><th>what it means</th></tr>"
                for cause in causes {
                    body +=
                        "<tr><th>\(esc(cause.cause))</th><td>\(cause.count)</td><td>\(esc(cause.byOperationCell))</td><td>\(esc(cause.example))</td><td>\(esc(cause.hint ?? ""))</td></tr>"
                }
                body += "</table>"
            }
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>stockdrop: \(esc(scenario))</title>
            <style>
            \(Self.style)
            </style></head><body>
            \(body)
            </body></html>
            """
    }

    private func color(_ strategy: StrategyReport) -> String {
        Self.strategyColors[strategy.strategy.rawValue] ?? "#555"
    }

    /// Latency against percentile on the HDR axis (each tick one more nine).
    private func percentileChart(operation: String) -> String {
        func x(_ percentile: Double) -> Double { percentile >= 100 ? 5.5 : min(5, -log10(1 - percentile / 100)) }
        return SVGChart(
            title: "\(operation) latency by percentile (from intended send time)", xLabel: "percentile",
            yLabel: "ms (log scale)",
            series: strategies.compactMap { s in
                s.latencyCurves[operation].map { curve in
                    .init(name: s.strategy.rawValue, color: color(s), points: curve.map { (x($0[0]), $0[1]) })
                }
            },
            xTicks: [(0, "0"), (1, "90"), (2, "99"), (3, "99.9"), (4, "99.99"), (5, "99.999"), (5.5, "max")], logY: true
        ).svg
    }
}
