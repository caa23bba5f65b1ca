// What one shard ran and measured (shard.json in its report directory): which run and slice
// it was, when its schedule began on its own clock, its clock's offset to the database's
// before and after the load, and the figures a merge adds up.
import Engine
import Foundation

public struct ShardManifest: Sendable, Codable, Equatable {
    public static let currentVersion = 1

    public var version = ShardManifest.currentVersion
    public var runID: String
    public var scenario: String
    public var scenarioDigest: String
    public var seed: UInt64
    public var shard: ShardSpec
    public var strategy: Strategy
    public var target: String
    public var host: String
    /// The run file's start instant (the schedule's zero), and the instant this shard's run
    /// clock took as zero, both on this machine's clock: equal unless it began late.
    public var plannedStartAtEpochMicroseconds: Int64
    public var startedAtEpochMicroseconds: Int64
    /// How long after the start instant this shard actually began sending (its sleep's
    /// overshoot, or a late launch: arrivals already due then go out at once).
    public var beganLateMicroseconds: Int64
    /// Measured right before the schedule's zero, and again after the last answer.
    public var clockBefore: ClockOffset
    public var clockAfter: ClockOffset?
    public var plannedUsers: Int
    public var neverSent: Int
    public var requests: Int
    public var loadSeconds: Double
    /// The target's CPU counter (its /metrics) before and after this shard's load.
    public var targetCPUBeforeMicroseconds: Int64?
    public var targetCPUAfterMicroseconds: Int64?
    public var harnessPeakResidentBytes: Int
    public var stockSamples: [StockSample]
    public var databaseURL: String
    /// The shard's failures by cause (nil: none, or a manifest from before causes were counted).
    public var errorCauses: [ErrorCauseCount]? = nil
    /// Whether a server answered this shard after its load (nil: a manifest from before it
    /// was asked, taken as yes).
    public var targetAnswered: Bool? = nil
    /// Users still shed, and requests due, when this shard's load stopped (nil: none, or a
    /// manifest from before they were counted).
    public var shedAtStop: Int? = nil
    public var unsentAtStop: [String: Int]? = nil

    /// The offset applied to this shard's times: the one measured before the load.
    public var offsetMicroseconds: Int64 { clockBefore.offsetMicroseconds }

    /// How wrong the corrected times may be: the worse measurement's half round trip, plus
    /// how far the offset moved during the load (a clock that drifted or was stepped).
    public var uncertaintyMicroseconds: Int64 {
        let measured = max(clockBefore.uncertaintyMicroseconds, clockAfter?.uncertaintyMicroseconds ?? 0)
        return measured + abs(driftMicroseconds)
    }

    public var driftMicroseconds: Int64 {
        clockAfter.map { $0.offsetMicroseconds - clockBefore.offsetMicroseconds } ?? 0
    }

    /// The schedule's zero read on the database's clock.
    public var startedAtDatabaseEpochMicroseconds: Int64 { startedAtEpochMicroseconds + offsetMicroseconds }
}

/// A shard's report directory: the run file it ran, its manifest, its client history (times
/// on its own clock, from its zero) and its latency histograms.
public struct ShardDirectory: Sendable {
    public var path: String
    public var runFile: RunFile
    public var manifest: ShardManifest
    public var history: ClientHistory
    public var histograms: OperationHistograms

    public init(
        path: String, runFile: RunFile, manifest: ShardManifest, history: ClientHistory,
        histograms: OperationHistograms
    ) {
        self.path = path
        self.runFile = runFile
        self.manifest = manifest
        self.history = history
        self.histograms = histograms
    }

    static let files = (run: "run.json", manifest: "shard.json", history: "history.json", histograms: "histograms.json")

    /// The shard directories `paths` name: each path that is one (it holds `shard.json`), and
    /// for a path that is not, the shard directories right inside it (a shared volume where
    /// every shard wrote its own, read without a shell to expand a glob). Sorted, each once.
    public static func expand(_ paths: [String]) -> [String] {
        let manager = FileManager.default
        func isShard(_ path: String) -> Bool { manager.fileExists(atPath: path + "/" + files.manifest) }
        var found: [String] = []
        for path in paths {
            if isShard(path) {
                found.append(path)
            } else if let children = try? manager.contentsOfDirectory(atPath: path) {
                // A directory of no shards (a run's own report) is named as it is, so the merge
                // says what it lacks instead of "no shard directories given".
                let shards = children.sorted().map { path + "/" + $0 }.filter(isShard)
                found += shards.isEmpty ? [path] : shards
            } else {
                found.append(path)
            }
        }
        var seen = Set<String>()
        return found.filter { seen.insert(($0 as NSString).standardizingPath).inserted }
    }

    public func write() throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try runFile.write(to: file(Self.files.run))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: file(Self.files.manifest)))
        try encoder.encode(histograms).write(to: URL(fileURLWithPath: file(Self.files.histograms)))
        encoder.outputFormatting = []
        try encoder.encode(history).write(to: URL(fileURLWithPath: file(Self.files.history)))
    }

    /// The directory's four files; a missing or unreadable one is named.
    public static func read(_ path: String) throws -> ShardDirectory {
        func data(_ name: String) throws -> Data {
            let file = (path as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: file) else {
                throw RunError.usage("\(path): no \(name) (not the report directory of `stockdrop run --shard`)")
            }
            return data
        }
        func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
            let raw = try data(name)
            do {
                return try JSONDecoder().decode(type, from: raw)
            } catch {
                throw RunError.usage("\(path)/\(name) is unreadable: \(error)")
            }
        }
        let manifest = try decode(ShardManifest.self, Self.files.manifest)
        guard manifest.version == ShardManifest.currentVersion else {
            throw RunError.usage(
                "\(path): a version \(manifest.version) shard; this binary merges version \(ShardManifest.currentVersion)"
            )
        }
        return ShardDirectory(
            path: path, runFile: try RunFile.read((path as NSString).appendingPathComponent(Self.files.run)),
            manifest: manifest, history: try decode(ClientHistory.self, Self.files.history),
            histograms: try decode(OperationHistograms.self, Self.files.histograms))
    }

    private func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
}

extension ShardDirectory {
    /// What the shard did, in one line for its terminal.
    public var summaryLine: String {
        let reserve = histograms.histogram(.reserve).percentiles
        let ok = history.records.count { $0.result == .ok }
        let failed = history.records.count(where: \.result.isFailure)
        return
            "shard \(manifest.shard): \(manifest.plannedUsers) users, \(manifest.requests) requests (\(ok) ok, \(manifest.requests - ok - failed) rejected, \(failed) errors), reserve p50 \(String(format: "%.2f", reserve.p50)) ms p99 \(String(format: "%.2f", reserve.p99)) ms, clock offset \(StrategyLoad.milliseconds(manifest.offsetMicroseconds)) ± \(StrategyLoad.milliseconds(manifest.uncertaintyMicroseconds)) ms"
    }
}
