// /metrics in Prometheus' text format: requests by route template and status, batch sizes
// and commit latency from the store, and the gauges read at scrape time; every family with
// HELP and TYPE, as `promtool check metrics` (Debian's prometheus package) requires.
import Engine
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@testable import Server

@Suite struct MetricsTests {
    @Test func aScrapeShowsRequestsBatchesAndGauges() async throws {
        let fixture = try await ServerFixture("metrics")
        try await fixture.application().test(.router) { client in
            let drop = try await fixture.createDrop(client, stock: 1)
            try await client.execute(
                uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(3)
            ) { #expect($0.status == .created) }
            try await client.execute(
                uri: "/v1/drops/\(drop)/reserve", method: .post, headers: try await fixture.headers(4)
            ) { #expect($0.status == .conflict) }
            try await client.execute(uri: "/no/such/path/\(UUID())", method: .get) { #expect($0.status == .notFound) }
            let text = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(
                text.contains(
                    #"stockdrop_http_requests_total{route="/v1/drops/{id}/reserve",method="POST",status="201"} 1"#))
            #expect(
                text.contains(
                    #"stockdrop_http_requests_total{route="/v1/drops/{id}/reserve",method="POST",status="409"} 1"#))
            #expect(text.contains(#"route="unmatched""#) && !text.contains("/no/such/path"))
            #expect(text.contains("stockdrop_http_request_duration_seconds_bucket"))
            #expect(text.contains("stockdrop_batch_claims_count 1"))
            #expect(text.contains("stockdrop_batch_commit_duration_seconds_count 1"))
            #expect(text.contains("stockdrop_active_reservations 1"))
            #expect(text.contains("stockdrop_queued_claims 0"))
            #expect(text.contains("# TYPE process_cpu_seconds_total counter"))
            #expect(try await Self.promtoolComplaints(text) == "")
        }
    }

    /// A fresh server's first scrape already has every counter of rare events at 0 (they first
    /// appeared at 1, so increase() could not see the first batch failure or hand-back).
    @Test func countersOfRareEventsExistAtZeroFromTheStart() {
        let text = ServerMetrics().render()
        for line in [
            "stockdrop_batch_failures_total 0", "stockdrop_drops_handed_back_total 0",
            "stockdrop_relay_events_dropped_total 0", #"stockdrop_forwarded_claims_total{result="unreachable"} 0"#,
            #"stockdrop_live_sockets_total{event="opened"} 0"#,
        ] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
    }

    /// Every family the server can expose, each made once: HELP and TYPE for all of them, and
    /// nothing promtool's lint objects to (counters end in `_total`, nothing else does).
    @Test func everyFamilyHasHelpAndTypeAndPromtoolAcceptsThem() async throws {
        let metrics = ServerMetrics()
        metrics.recordRequest(route: "/v1/drops/{id}/reserve", method: "POST", status: 201, nanoseconds: 1_000_000)
        metrics.recordBatch(claims: 5, nanoseconds: 2_000_000, failed: false)
        metrics.recordForward(result: "answered")
        metrics.recordSocket(event: "opened")
        // A family is labeled or not for good: those above carry labels.
        let labeled = [MetricFamily.httpRequests, .forwardedClaims, .liveSocketEvents].map(\.name)
        for family in MetricFamily.all where !labeled.contains(family.name) {
            switch family.kind {
            case .gauge: metrics.set(family, 1)
            case .counter: metrics.advance(family, to: 2)
            case .histogram: break
            }
        }
        let text = metrics.render()
        for family in MetricFamily.all {
            let type = family.kind == .histogram ? "histogram" : family.kind == .counter ? "counter" : "gauge"
            #expect(text.contains("# HELP \(family.name) \(family.help)\n"), "\(family.name)")
            #expect(text.contains("# TYPE \(family.name) \(type)\n"), "\(family.name)")
            #expect((family.kind == .counter) == family.name.hasSuffix("_total"), "\(family.name)")
        }
        #expect(Set(MetricFamily.all.map(\.name)).count == MetricFamily.all.count, "one family, one name")
        #expect(try await Self.promtoolComplaints(text) == "")
    }

    /// A counter kept elsewhere grows by what its reading grew, never backwards.
    @Test func aCounterKeptElsewhereAdvancesByWhatItGrew() {
        let metrics = ServerMetrics()
        for reading in [1.5, 4.0, 3.0, 6.25] { metrics.advance(.processCPU, to: reading) }
        #expect(metrics.render().contains("process_cpu_seconds_total 6.25\n"))
    }

    /// `promtool check metrics` over `text`: what it printed when it refused it, else "".
    static func promtoolComplaints(_ text: String) async throws -> String {
        let promtool = try #require(ChildSpawn.which("promtool"), "promtool (Debian prometheus): run scripts/setup.sh")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("promtool-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try text.write(toFile: "\(directory)/metrics.txt", atomically: true, encoding: .utf8)
        // promtool reads the exposition on standard input; the child's is /dev/null.
        let checked = try await ChildSpawn.run(
            "/bin/sh", ["-c", "exec \"$0\" check metrics < \"$1\"", promtool, "\(directory)/metrics.txt"],
            timeoutSeconds: 60)
        return checked.exit == .exited(0) ? "" : "promtool \(checked.exit): \(checked.output)"
    }
}
