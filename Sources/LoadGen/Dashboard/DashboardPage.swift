// The live page: the report's look (its style and chart geometry), drawn from the event stream
// one frame a second, and replaced by the report itself when the final frame brings it. One
// self-contained page: nothing fetched but `/events`.
import Foundation

enum DashboardPage {
    static func html(scenario: String, shard: String) -> String {
        let esc = SVGChart.escape
        let colors = RunReport.strategyColors.map { "\"\($0.key)\":\"\($0.value)\"" }.sorted().joined(separator: ",")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>stockdrop live: \(esc(scenario))</title>
            <style>
            \(RunReport.style)
            .tiles{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0 16px}.tile{border:1px solid #ddd;padding:6px 12px;min-width:110px}
            .tile b{display:block;font-size:20px}.tile span{color:#555;font-size:12px}
            #status.running{color:#1a7f37}#status.finished{color:#222}#status.connecting{color:#888}
            tr.broken th,tr.broken td{background:#ffebe9}
            </style></head><body>
            <h1>\(esc(scenario)) <span id="status" class="connecting">connecting</span></h1>
            <p id="context">Shard \(esc(shard)) · strategy <span id="strategy">?</span> · <span id="elapsed">0.0</span> s</p>
            <p id="verdict"></p>
            <div class="tiles">
            <div class="tile"><b id="arrived">0</b><span>users arrived of <span id="planned">0</span></span></div>
            <div class="tile"><b id="rps">0</b><span>answers per second (last tick)</span></div>
            <div class="tile"><b id="sent">0</b><span>requests sent</span></div>
            <div class="tile"><b id="late">0</b><span>late sends (the harness's)</span></div>
            <div class="tile"><b id="errors">0</b><span>errors and timeouts <span id="errors-cause"></span></span></div>
            <div class="tile"><b id="unconfirmed">0</b><span>acknowledgements not yet looked up</span></div>
            </div>
            <h2>Invariants</h2>
            <table id="invariants"><tr><th>invariant</th><th>verdict</th><th>detail</th></tr></table>
            <h2>Drops</h2>
            <table id="drops"><tr><th>drop</th><th>stock</th><th>available</th><th>held</th><th>sold</th></tr></table>
            <h2>Requests and latency</h2>
            <table id="latency"><tr><th>operation</th><th>ok/s</th><th>rejected/s</th><th>shed/s</th><th>errors/s</th><th>total</th>
            <th>p50 (1 s)</th><th>p99 (1 s)</th><th>max (1 s)</th><th>p50</th><th>p99</th><th>max</th></tr></table>
            <h2>Charts</h2><div class="charts"><div id="chart-answers"></div><div id="chart-p99"></div><div id="chart-stock"></div></div>
            <script>
            "use strict";
            const colors = {\(colors)};
            const history = {};
            const $ = id => document.getElementById(id);
            const esc = t => String(t).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;"}[c]));
            const ms = v => v == null ? "–" : (v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(2) + " ms");
            function niceCeiling(v) {
              const m = Math.pow(10, Math.floor(Math.log10(v)));
              for (const s of [1, 2, 2.5, 5, 10]) if (s * m >= v) return s * m;
              return 10 * m;
            }
            function number(v) {
              if (v >= 10000) return (v / 1000).toFixed(0) + "k";
              if (v === Math.round(v)) return v.toFixed(0);
              return v < 1 ? v.toFixed(2) : v.toFixed(1);
            }
            // The report's SVGChart, in the browser: same margins, ticks and classes.
            function chart(title, xLabel, yLabel, series) {
              const W = 640, H = 300, L = 64, R = 16, T = 36, B = 44, pw = W - L - R, ph = H - T - B;
              const all = series.flatMap(s => s.points);
              const xMin = all.length ? Math.min(...all.map(p => p[0])) : 0;
              const xMax = Math.max(all.length ? Math.max(...all.map(p => p[0])) : 1, xMin + 1e-9);
              const yMax = niceCeiling(Math.max(all.length ? Math.max(...all.map(p => p[1])) : 1, 1e-9));
              const px = x => L + (x - xMin) / (xMax - xMin) * pw, py = y => T + ph - y / yMax * ph;
              let out = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`;
              out += `<text x="${L}" y="20" class="title">${esc(title)}</text>`;
              for (let i = 0; i <= 4; i++) {
                const y = yMax * i / 4;
                out += `<line x1="${L}" x2="${W - R}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" class="grid"/>`;
                out += `<text x="${L - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end" class="tick">${number(y)}</text>`;
              }
              for (let i = 0; i <= 5; i++) {
                const x = xMin + (xMax - xMin) * i / 5;
                out += `<text x="${px(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" class="tick">${number(x)}</text>`;
              }
              out += `<line x1="${L}" x2="${W - R}" y1="${T + ph}" y2="${T + ph}" class="axis"/>`;
              out += `<line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" class="axis"/>`;
              out += `<text x="${L + pw / 2}" y="${H - 6}" text-anchor="middle" class="label">${esc(xLabel)}</text>`;
              out += `<text transform="translate(14 ${T + ph / 2}) rotate(-90)" text-anchor="middle" class="label">${esc(yLabel)}</text>`;
              series.forEach((s, i) => {
                if (!s.points.length) return;
                out += `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.points.map(p => px(p[0]).toFixed(1) + "," + py(p[1]).toFixed(1)).join(" ")}"/>`;
                const lx = W - R - 150, ly = T + 4 + i * 16;
                out += `<rect x="${lx}" y="${ly}" width="12" height="3" fill="${s.color}"/><text x="${lx + 18}" y="${ly + 5}" class="tick">${esc(s.name)}</text>`;
              });
              return out + "</svg>";
            }
            function sum(outcomes) { return Object.values(outcomes).reduce((a, b) => a + b, 0); }
            function draw(f) {
              $("strategy").textContent = f.strategy;
              $("elapsed").textContent = f.elapsedSeconds.toFixed(1);
              $("arrived").textContent = f.users.arrived;
              $("planned").textContent = f.users.planned;
              $("sent").textContent = f.users.sent;
              $("late").textContent = f.users.lateSends;
              $("errors").textContent = f.errors;
              $("errors-cause").textContent = f.commonestError ? "(most " + f.commonestError + ")" : "";
              $("unconfirmed").textContent = f.unconfirmed;
              const answers = Object.values(f.requestsPerSecond).reduce((a, o) => a + sum(o), 0);
              $("rps").textContent = answers;
              let rows = "<tr><th>invariant</th><th>verdict</th><th>detail</th></tr>";
              for (const i of f.invariants) {
                const cls = i.status === "holds" ? "pass" : i.status === "broken" ? "fail" : "skip";
                rows += `<tr data-invariant="${esc(i.name)}" data-status="${esc(i.status)}" class="${i.status === "broken" ? "broken" : ""}"><th>${esc(i.name)}</th>`
                  + `<td class="${cls}">${i.status === "broken" ? "BROKEN" : esc(i.status)}</td><td>${esc(i.counterexample || "")}</td></tr>`;
              }
              $("invariants").innerHTML = rows;
              rows = "<tr><th>drop</th><th>stock</th><th>available</th><th>held</th><th>sold</th></tr>";
              for (const d of f.drops) {
                rows += `<tr id="drop-${d.id}" data-available="${d.available ?? ""}"><th>${esc(d.name)} (${d.id})</th><td>${d.stock}</td>`
                  + `<td class="${d.available != null && d.available < 0 ? "fail" : ""}">${d.available ?? "?"}</td><td>${d.held ?? "?"}</td><td>${d.sold ?? "?"}</td></tr>`;
              }
              $("drops").innerHTML = rows;
              rows = $("latency").rows[0].outerHTML;
              for (const op of ["all", "reserve", "purchase", "cancel"]) {
                const pick = counts => op !== "all" ? counts[op] : Object.values(counts).reduce((a, o) => {
                  for (const k in o) a[k] = (a[k] || 0) + o[k];
                  return a;
                }, {});
                const second = pick(f.requestsPerSecond), total = pick(f.requestsTotal);
                const l = f.latencyMilliseconds[op] || {};
                if (op !== "all" && !sum(total)) continue;
                const perSecond = ["ok", "rejected", "shed", "error"].map(k => `<td>${second[k] || 0}</td>`).join("");
                const count = sum(total);
                const s = l.lastSecond || {}, t = l.total || {};
                rows += `<tr data-operation="${op}"><th>${op}</th>${perSecond}<td>${count}</td>`
                  + [s.p50, s.p99, s.max, t.p50, t.p99, t.max].map(v => `<td>${ms(v)}</td>`).join("") + "</tr>";
              }
              $("latency").innerHTML = rows;
              const h = history[f.strategy] || (history[f.strategy] = {answers: [], p99: [], stock: []});
              if (f.kind === "tick") {
                h.answers.push([f.elapsedSeconds, answers]);
                const p99 = (f.latencyMilliseconds.all || {}).lastSecond;
                if (p99) h.p99.push([f.elapsedSeconds, p99.p99]);
                if (f.drops.every(d => d.available != null)) h.stock.push([f.elapsedSeconds, f.drops.reduce((a, d) => a + Math.max(d.available, 0), 0)]);
              }
              const series = key => Object.keys(history).map(n => ({name: n, color: colors[n] || "#555", points: history[n][key]}));
              $("chart-answers").innerHTML = chart("Requests answered per second", "seconds since start", "answers/s", series("answers"));
              $("chart-p99").innerHTML = chart("p99 latency over the last second (from intended send time)", "seconds since start", "ms", series("p99"));
              $("chart-stock").innerHTML = chart("Available stock", "seconds since start", "units", series("stock"));
            }
            const events = new EventSource("events");
            // The server sends every frame again to a page that reconnects: start the charts over.
            events.onopen = () => {
              for (const name in history) delete history[name];
              if ($("status").textContent === "connecting") { $("status").textContent = "running"; $("status").className = "running"; }
            };
            events.onmessage = message => {
              const f = JSON.parse(message.data);
              draw(f);
              if (f.kind !== "final") return;
              events.close();
              $("status").textContent = "finished";
              $("status").className = "finished";
              const v = f.verdict || {};
              $("verdict").innerHTML = `<span class="${v.pass === false ? "fail" : v.pass ? "pass" : ""}">${esc(v.line || "")}</span>`;
              // The page becomes the run's report (a shard has none: the merge's is the verdict).
              if (f.reportHTML) setTimeout(() => { document.open(); document.write(f.reportHTML); document.close(); }, 1500);
            };
            </script>
            </body></html>
            """
    }
}
