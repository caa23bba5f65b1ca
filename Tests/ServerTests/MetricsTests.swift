// /metrics in Prometheus' text format: requests by route template and status, batch sizes
// and commit latency from the store, and the gauges read at scrape time.
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
        }
    }
}
