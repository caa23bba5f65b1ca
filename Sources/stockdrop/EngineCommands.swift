// `stockdrop bench` and `stockdrop simulate`.
import ArgumentParser
import Engine
import Foundation
import LoadGen

extension Strategy: ExpressibleByArgument {}

enum StrategyChoice: String, ExpressibleByArgument, CaseIterable {
    case actor, rowlock, both
    var strategies: [Strategy] { self == .both ? [.actor, .rowlock] : [Strategy(rawValue: rawValue)!] }
}

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "One hot drop, N concurrent callers for S seconds: committed claims/s, rejections/s, latency.")

    @Option(help: "actor | rowlock | both") var strategy: StrategyChoice = .both
    @Option(help: "Concurrent callers.") var callers = 1_000
    @Option(help: "Seconds per phase (commit, then sold-out).") var seconds = 5.0
    @Option(help: "Connections of the rowlock strategy's pool.") var poolSize = Defaults.rowLockPoolSize
    @Option(help: "Batches a drop's actor may have in flight (1: each waits for the last one's verdict).")
    var batchesInFlight = Defaults.maxBatchesInFlight
    @Flag(help: "Print JSON for machines instead of the table.") var json = false
    @Option(
        help: ArgumentHelp(
            "A second database: the bench of one strategy (actor unless --strategy rowlock) against both, alternated round by round, and the ratio.",
            valueName: "URL")) var compareUrl: String?
    @Option(help: "Rounds of each database with --compare-url.") var rounds = 3
    @Option(
        help:
            "Pairs of slices measured in turn, each ratio the pairs' median: ceilings (a) and (b), the actor's committed claims and (a), its sold-out rejections and (c) (0: none)."
    )
    var pairedRounds = 5

    func validate() throws {
        if compareUrl != nil {
            guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be 1…20") }
        }
        guard callers > 0, callers <= 100_000 else { throw ValidationError("--callers must be 1…100000") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard poolSize > 0, poolSize <= 200 else { throw ValidationError("--pool-size must be 1…200") }
        guard (1...2).contains(batchesInFlight) else { throw ValidationError("--batches-in-flight must be 1 or 2") }
        guard (0...50).contains(pairedRounds) else { throw ValidationError("--paired-rounds must be 0…50") }
    }

    func run() async throws {
        let options = BenchOptions(
            strategies: strategy.strategies, callers: callers, seconds: seconds, rowLockPoolSize: poolSize,
            batchesInFlight: batchesInFlight, pairedRounds: pairedRounds,
            databaseURL: ProcessInfo.processInfo.environment["DATABASE_URL"])
        let progress: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        if let compareUrl {
            let comparison = try await Bench.compare(options, with: compareUrl, rounds: rounds, progress: progress)
            print(json ? try Self.json(comparison) : comparison.table)
            return
        }
        let report = try await Bench.run(options, progress: progress)
        print(json ? try Self.json(report) : report.table)
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Deterministic simulation with injected faults; prints the seed and step of any broken invariant.")

    @Option(help: "The seed to run (or the first of --seeds).") var seed: UInt64 = 1
    @Option(help: "Steps per seed.") var steps = 1_000
    @Option(help: "How many consecutive seeds to run.") var seeds = 1

    func run() async throws {
        for offset in 0..<UInt64(max(1, seeds)) {
            do {
                print(try await Simulator(seed: seed + offset).run(steps: steps))
            } catch let failure as SimulationFailure {
                FileHandle.standardError.write(Data("\(failure)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
