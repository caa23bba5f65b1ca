// `run --prometheus-rw`: the bytes (a WriteRequest protobuf, snappy's block format) and a
// real run pushed to Debian's Prometheus with its remote-write receiver on, where PromQL
// answers the run's request count exactly as the report does; and a receiver that is not
// there, which the run shrugs off.
import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import TestSupport
import Testing

@testable import LoadGen

@Suite(.serialized) struct RemoteWriteTests {
    @Test func oneSeriesEncodesAsTheProtobufPrometheusReads() {
        let request = RemoteWriteRequest(
            series: [.init(name: "up", labels: ["job": "a"], value: 1, timestampMilliseconds: 1_000)], metadata: [])
        let name: [UInt8] = [0x0A, 0x08] + Array("__name__".utf8) + [0x12, 0x02] + Array("up".utf8)
        let job: [UInt8] = [0x0A, 0x03] + Array("job".utf8) + [0x12, 0x01] + Array("a".utf8)
        let sample: [UInt8] = [0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 0xE8, 0x07]
        let series: [UInt8] =
            [0x0A, UInt8(name.count)] + name + [0x0A, UInt8(job.count)] + job + [0x12, UInt8(sample.count)] + sample
        #expect(request.protobuf == [0x0A, UInt8(series.count)] + series)
        // Labels go sorted by their bytes, `__name__` among them: "Zone" ('Z' < '_') first.
        let text = String(
            decoding: RemoteWriteRequest(
                series: [.init(name: "up", labels: ["Zone": "z", "job": "a"], value: 1, timestampMilliseconds: 0)],
                metadata: []
            ).protobuf, as: UTF8.self)
        let order = ["Zone", "__name__", "job"].compactMap { text.range(of: $0)?.lowerBound }
        #expect(order.count == 3 && order == order.sorted())
    }

    @Test func snappyBlocksReadBackWhateverTheInput() {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let repetitive = Array(String(repeating: "stockdrop_run_requests_total{run_id=\"ab12\"} ", count: 2_000).utf8)
        let inputs: [[UInt8]] = [
            [], [7], Array(random.prefix(59)), Array(random.prefix(61)), Array(random.prefix(300)), random, repetitive,
            Array(repeating: 0, count: 100_000), Array(repetitive.prefix(64)) + Array(random.prefix(1_000)),
        ]
        for input in inputs {
            let compressed = Snappy.compress(input)
            #expect(Snappy.decompress(compressed) == input, "\(input.count) bytes")
        }
        #expect(Snappy.compress(repetitive).count * 20 < repetitive.count, "what repeats is copied, not repeated")
    }

    /// Debian's Prometheus on a free loopback port, its data in a directory of its own, with
    /// the remote-write receiver on; stopped at the end.
    final class Receiver: Sendable {
        let port: Int
        let pid: pid_t
        let directory: String

        init() async throws {
            let prometheus = try #require(
                ChildSpawn.which("prometheus"), "prometheus (Debian package): run scripts/setup.sh")
            port = try ClusterDirectory.freeLoopbackPorts(1)[0]
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("stockdrop-prom-\(UUID())").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "global:\n  scrape_interval: 15s\n".write(
                toFile: "\(directory)/prometheus.yml", atomically: true, encoding: .utf8)
            pid = try ChildSpawn.start(
                prometheus,
                [
                    "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                    "--web.listen-address=127.0.0.1:\(port)", "--web.enable-remote-write-receiver",
                ], outputPath: "\(directory)/prometheus.log")
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            while ContinuousClock.now < deadline {
                if (try? await Self.get("http://127.0.0.1:\(port)/-/ready")) != nil { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw ReceiverFailure(
                description: "Prometheus was not ready in 30 s: "
                    + ((try? String(contentsOfFile: "\(directory)/prometheus.log", encoding: .utf8)) ?? ""))
        }

        var writeURL: String { "http://127.0.0.1:\(port)/api/v1/write" }

        /// An instant PromQL query's single value.
        func value(of query: String) async throws -> Double? {
            var components = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/query")!
            components.queryItems = [URLQueryItem(name: "query", value: query)]
            let body = try await Self.get(components.url!.absoluteString)
            let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            let result = (json?["data"] as? [String: Any])?["result"] as? [[String: Any]]
            guard let text = (result?.first?["value"] as? [Any])?.last as? String else { return nil }
            return Double(text)
        }

        static func get(_ url: String) async throws -> String {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            guard response.status.code == 200 else { throw ReceiverFailure(description: "\(url): \(body)") }
            return body
        }

        func stop() async throws {
            kill(pid, SIGTERM)
            let pid = self.pid
            _ = await OffPool.run { ChildSpawn.wait(for: pid, seconds: 20) }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    struct ReceiverFailure: Error, CustomStringConvertible {
        let description: String
    }

    @Test func aRunsRequestCountInPrometheusIsTheReportsCount() async throws {
        let receiver = try await Receiver()
        let reports = try VerdictFileTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: reports) }
        let (exit, output) = try await VerdictFileTests.run(
            VerdictFileTests.binary,
            [
                "run", "scenarios/ci.yaml", "--strategy", "actor", "--prometheus-rw", receiver.writeURL,
                "--report-dir", reports,
            ],
            environment: ["DATABASE_URL": try await TestDatabase.fresh("remote_write")])
        #expect(exit == .exited(ExitStatus.pass), "\(output)")
        let runID = try #require(
            output.split(separator: "\n").first { $0.hasPrefix("remote write to ") }?.split(separator: " ").last,
            "\(output)")
        #expect(output.contains("remote write: run_id \(runID), "), "\(output)")
        #expect(output.contains(", 0 failed"), "\(output)")

        let directory = try #require(try FileManager.default.contentsOfDirectory(atPath: reports).first)
        let report = try JSONDecoder.reports.decode(
            RunReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(reports)/\(directory)/report.json")))
        let counted = report.strategies[0].operations.values.reduce(0) { $0 + $1.count }
        let selector = #"run_id="\#(runID)",scenario="ci",strategy="actor",shard="0/1""#
        let pushed = try await receiver.value(of: "sum(stockdrop_run_requests_total{\(selector)})")
        #expect(pushed == Double(counted), "PromQL \(String(describing: pushed)), report \(counted)")
        #expect(try await receiver.value(of: "stockdrop_run_requests_sent_total{\(selector)}") != nil, "a live push")
        #expect(try await receiver.value(of: #"stockdrop_run_invariant_ok{\#(selector),invariant="no-oversell"}"#) == 1)
        #expect(try await receiver.value(of: "stockdrop_run_pass{\(selector)}") == 1)
        try await receiver.stop()
    }

    @Test func aReceiverThatIsNotThereNeitherFailsNorHoldsTheRun() async throws {
        let port = try ClusterDirectory.freeLoopbackPorts(1)[0]
        let reports = try VerdictFileTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: reports) }
        let (exit, output) = try await VerdictFileTests.run(
            VerdictFileTests.binary,
            [
                "run", "scenarios/ci.yaml", "--strategy", "actor", "--users", "200",
                "--prometheus-rw", "http://127.0.0.1:\(port)/api/v1/write", "--report-dir", reports,
            ],
            environment: ["DATABASE_URL": try await TestDatabase.fresh("remote_write_gone")])
        #expect(exit == .exited(ExitStatus.pass), "\(output)")
        #expect(output.components(separatedBy: "warning: remote write to ").count == 2, "said once: \(output)")
        #expect(output.contains("0 pushes to"), "\(output)")
        let (refused, complaint) = try await VerdictFileTests.run(
            VerdictFileTests.binary, ["run", "scenarios/ci.yaml", "--prometheus-rw", "ftp://nowhere"])
        #expect(refused == .exited(ExitStatus.usage) && complaint.contains("is not an http(s) URL"), "\(complaint)")
    }
}

extension JSONDecoder {
    /// report.json's dates are ISO 8601.
    static var reports: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
