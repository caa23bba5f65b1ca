// What a sharded run's setup step (k6's `setup()`) hands every shard: the drops it created,
// the scenario they belong to (its digest and seed), and the instant the schedule starts,
// which `startsIn` and every arrival count from. The merge reads what it needs to judge the
// run from it too (thresholds, tolerance, the longest TTL), so no shard and no merge needs
// anything the setup did not write down.
import Engine
import Foundation

public struct RunFile: Sendable, Codable, Equatable {
    public static let currentVersion = 1

    public var version = RunFile.currentVersion
    /// Random, written once by the setup: shards of different setups never merge.
    public var runID: String

    /// A new run's id: 16 hex digits, the `run_id` of its files and of its Prometheus series.
    public static func newRunID() -> String {
        (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
    public var scenario: String
    /// `Scenario.digest` of the scenario as set up (after --users, --stock, --duration, --seed).
    public var scenarioDigest: String
    public var seed: UInt64
    /// The scenario's drops, in its order.
    public var drops: [DropID]
    /// The schedule's zero on the wall clock: arrivals are offsets from it, and each drop opens
    /// its `startsIn` after it.
    public var startAtEpochMicroseconds: Int64
    /// Where the setup created the drops; a shard's default target.
    public var target: String
    public var createdAt: Date
    public var users: Int
    public var totalStock: Int
    public var thresholds: [String]
    public var clockToleranceMilliseconds: Double
    /// The merge waits this long past the last answer at most for holds to end before checking.
    public var longestReserveTTLMilliseconds: Int

    public init(scenario: Scenario, drops: [DropID], startAt: Date, target: String, createdAt: Date = Date()) {
        runID = Self.newRunID()
        self.scenario = scenario.name
        scenarioDigest = scenario.digest
        seed = scenario.seed
        self.drops = drops
        startAtEpochMicroseconds = startAt.epochMicroseconds
        self.target = target
        self.createdAt = createdAt
        users = scenario.userCount
        totalStock = scenario.drops.reduce(0) { $0 + $1.stock }
        thresholds = scenario.thresholds.map(\.expression)
        clockToleranceMilliseconds = scenario.limits.clockToleranceMilliseconds
        longestReserveTTLMilliseconds = scenario.longestReserveTTLMilliseconds
    }

    public var startAt: Date { Date(timeIntervalSince1970: Double(startAtEpochMicroseconds) / 1_000_000) }

    /// Why `scenario` is not the one this file was set up for, or nil when it is.
    public func mismatch(with scenario: Scenario) -> String? {
        if scenario.name != self.scenario {
            return "the run file is for scenario `\(self.scenario)`, not `\(scenario.name)`"
        }
        if scenario.seed != seed {
            return "the run file was set up with seed \(seed), this run has seed \(scenario.seed)"
        }
        if scenario.digest != scenarioDigest {
            return
                "the scenario differs from the one set up (digest \(scenario.digest), run file \(scenarioDigest)): use the same file and the same --users/--stock/--duration as the setup"
        }
        if scenario.drops.count != drops.count {
            return "the run file has \(drops.count) drop(s), the scenario \(scenario.drops.count)"
        }
        return nil
    }

    public func parsedThresholds() throws -> [Threshold] {
        try thresholds.map { text in
            switch Threshold.parse(text) {
            case .success(let threshold): return threshold
            case .failure(let error): throw RunError.usage("the run file's threshold `\(text)`: \(error.message)")
            }
        }
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public static func read(_ path: String) throws -> RunFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RunError.usage("cannot read the run file \(path): \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let file: RunFile
        do {
            file = try decoder.decode(RunFile.self, from: data)
        } catch {
            throw RunError.usage("\(path) is not a run file of `stockdrop run --setup-only`: \(error)")
        }
        guard file.version == currentVersion else {
            throw RunError.usage(
                "\(path) is a version \(file.version) run file; this binary reads version \(currentVersion)")
        }
        return file
    }
}

extension RunFile {
    /// `--start-at`: an RFC 3339 time (`2026-12-01T18:00:00Z`) or a delay from `now` (`+30s`,
    /// `+2m`); nil when it is neither.
    public static func startInstant(_ text: String, now: Date = Date()) -> Date? {
        if text.hasPrefix("+") {
            return ScenarioDuration.milliseconds(String(text.dropFirst())).map { now.addingTimeInterval($0 / 1_000) }
        }
        return RFC3339.date(text)
    }
}

extension Scenario {
    /// A digest of everything that decides who arrives when and does what (drops, populations,
    /// seed, limits, thresholds), not of where the load goes: shards may aim at different
    /// addresses of one deployment. 64-bit FNV-1a of the value's full description; the same
    /// binary gives the same digest for the same scenario.
    public var digest: String {
        var plan = self
        plan.target = .inProcess
        plan.strategies = []
        plan.watchers = 0
        plan.nemesis = nil
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in String(reflecting: plan).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return String(hash, radix: 16).leftPadded(to: 16)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
