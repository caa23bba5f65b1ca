// `run --prometheus-rw URL`: pushes a run's series (RunSeries) to a Prometheus remote-write
// receiver every few seconds while it goes and once at the end. A receiver that is slow or
// gone never slows or fails the run: one push at a time, each bounded; a push due while one
// is still out is dropped and counted, and the first failure is said once on standard error.
import AsyncHTTPClient
import Engine
import Foundation
import NIOCore

public actor RemoteWriteExporter {
    public nonisolated let url: String
    public nonisolated let identity: RunSeries.Identity
    private var lastPush: ContinuousClock.Instant?
    private var inFlight: Task<Void, Never>?
    public private(set) var pushed = 0
    public private(set) var failed = 0
    public private(set) var dropped = 0
    private var warned = false
    /// Set by `close` (and so by `finish`): a tick delivered after it (its task ran late) must
    /// not push live figures over the final ones, nor after a shard's summary.
    private var finished = false

    public init(url: String, identity: RunSeries.Identity) {
        self.url = url
        self.identity = identity
    }

    /// The id of a run's series: `run_id` tells one run from the next in one Prometheus.
    public static func newRunID() -> String { RunFile.newRunID() }

    /// A progress tick: pushed when `LoadDefaults.remoteWriteSeconds` have passed since the
    /// last push.
    public func observe(_ tick: ProgressTick, strategy: Strategy) {
        guard !finished else { return }
        let now = ContinuousClock.now
        if let lastPush, now - lastPush < .seconds(LoadDefaults.remoteWriteSeconds) { return }
        guard inFlight == nil else {
            dropped += 1
            return
        }
        lastPush = now
        let request = RunSeries.live(
            tick, strategy: strategy.rawValue, identity: identity, atMilliseconds: Self.nowMilliseconds())
        inFlight = Task { await self.send(request) }
    }

    /// Waits for the push still out, if any (bounded), and takes no more live ticks: a tick
    /// whose task runs late must not push after the summary (a shard's end).
    public func close() async {
        finished = true
        await inFlight?.value
    }

    /// The report's figures, after the last live push (each bounded).
    public func finish(_ report: RunReport) async {
        await close()
        await send(RunSeries.final(report, identity: identity, atMilliseconds: Self.nowMilliseconds()))
    }

    public var summaryLine: String {
        "remote write: run_id \(identity.runID), \(pushed) pushes to \(RedactedURL.of(url)), \(failed) failed, \(dropped) skipped while a push was still out"
    }

    private func send(_ request: RemoteWriteRequest) async {
        defer { inFlight = nil }
        let url = self.url
        let milliseconds = LoadDefaults.remoteWriteTimeoutMilliseconds
        do {
            // The whole push, answer included, within the bound: execute's own timeout ends
            // once the answer's head is in, and a receiver that then stalls would hold the run.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await Self.post(request, to: url) }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(milliseconds))
                    throw RemoteWriteFailure(description: "no answer within \(milliseconds) ms")
                }
                defer { group.cancelAll() }
                _ = try await group.next()
            }
            pushed += 1
        } catch {
            failed += 1
            if !warned {
                warned = true
                FileHandle.standardError.write(
                    Data(
                        "warning: remote write to \(RedactedURL.of(url)) failed (\(error)); the run goes on, later failures are only counted\n"
                            .utf8))
            }
        }
    }

    private static func post(_ request: RemoteWriteRequest, to url: String) async throws {
        var http = HTTPClientRequest(url: url)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/x-protobuf")
        http.headers.add(name: "Content-Encoding", value: "snappy")
        http.headers.add(name: "X-Prometheus-Remote-Write-Version", value: "0.1.0")
        http.headers.add(name: "User-Agent", value: "stockdrop")
        http.body = .bytes(ByteBuffer(bytes: request.body))
        let response = try await HTTPClient.shared.execute(
            http, timeout: .milliseconds(Int64(LoadDefaults.remoteWriteTimeoutMilliseconds)))
        // A success's body is not read (it has nothing to say); a refusal's says why.
        guard (200..<300).contains(response.status.code) else {
            let answer = try await response.body.collect(upTo: 64 * 1_024)
            throw RemoteWriteFailure(description: "HTTP \(response.status.code): \(String(buffer: answer).prefix(300))")
        }
    }

    static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000) }
}

struct RemoteWriteFailure: Error, CustomStringConvertible {
    let description: String
}
