// `stockdrop run`: a scenario against each chosen strategy, each on a fresh database, checked,
// summarised and compared. Exit codes follow docs/design.md: 0 pass, 1 an invariant broken,
// 2 a threshold missed (64 a usage error and 65 a bad scenario, both before anything runs; 69 a database or
// target that could not be reached or failed the run, with no verdict).
import Engine
import Foundation

public struct RunOptions: Sendable {
    public var strategies: [Strategy]
    /// DATABASE_URL: used as is (runs keep apart by their new drops). Unset: the embedded
    /// cluster, with a fresh database per strategy.
    public var databaseURL: String?
    public var rowLockPoolSize: Int
    /// Keep each strategy's client history (every request and answer) for `check --history`.
    public var keepHistory: Bool
    /// How to reach a server target (its secret, connections, deadline); nil for in-process.
    public var http: HTTPTargetOptions?
    /// Whether the strategies were asked for on the command line. A server runs one strategy:
    /// asked-for strategies must match it, the scenario's own are replaced by it.
    public var strategiesExplicit: Bool
    /// What a nemesis run starts its cluster with: the `stockdrop` binary and the balancer's
    /// template (`deploy/haproxy.cfg`).
    public var nemesisLauncher: (binary: String, haproxyTemplate: String)?
    /// The live dashboard's board (`run --dashboard`): sees every answer and second.
    public var board: LiveBoard?
    /// The most the run waits after its load for the holds it left to end (`--drain`); nil:
    /// the longest TTL and the grace, at most `LoadDefaults.maxDrainMilliseconds`.
    public var drainSeconds: Double?
    /// What the run says before its load about the target (a server's rate limit), one line
    /// each: standard error unless the caller takes them.
    public var note: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }

    public init(
        strategies: [Strategy], databaseURL: String?, rowLockPoolSize: Int = Defaults.rowLockPoolSize,
        keepHistory: Bool = false,
        http: HTTPTargetOptions? = nil, strategiesExplicit: Bool = false
    ) {
        self.strategies = strategies
        self.databaseURL = databaseURL
        self.rowLockPoolSize = rowLockPoolSize
        self.keepHistory = keepHistory
        self.http = http
        self.strategiesExplicit = strategiesExplicit
    }
}

public enum ExitStatus {
    public static let pass: Int32 = 0
    public static let invariantBroken: Int32 = 1
    public static let thresholdMissed: Int32 = 2
    public static let usage: Int32 = 64
    public static let badScenario: Int32 = 65
    public static let unavailable: Int32 = 69
    /// The verdict passed, but a file asked for (`--junit`, `--summary-md`) could not be written.
    public static let cannotWrite: Int32 = 74
}

public struct RunOutcome: Sendable {
    public var report: RunReport
    /// Strategy name → client history, when `RunOptions.keepHistory`.
    public var histories: [String: ClientHistory]
}

public enum LoadRunner {
    public static func run(
        _ scenario: Scenario, options: RunOptions, progress: @escaping @Sendable (Strategy, ProgressTick) -> Void
    ) async throws -> RunOutcome {
        if let plan = scenario.nemesis {
            return try await runWithNemesis(plan, scenario, options: options, progress: progress)
        }
        let startedAt = Date()
        var reports: [StrategyReport] = []
        var histories: [String: ClientHistory] = [:]
        // A server runs one strategy, connected up front; in-process, one fresh engine each.
        var server: HTTPTarget?
        if case .servers(let urls) = scenario.target { server = try await serverTarget(urls, options: options) }
        for strategy in server.map({ [$0.strategy] }) ?? options.strategies {
            let target: any LoadTarget
            if let server {
                target = server
            } else {
                target = try await makeTarget(strategy: strategy, options: options)
            }
            do {
                let run = try await StrategyLoad(
                    scenario: scenario, target: target, live: LiveCounters(board: options.board),
                    drainBoundSeconds: options.drainSeconds, note: options.note
                ) {
                    progress(strategy, $0)
                }.run()
                await target.close()
                reports.append(StrategyReport(run, thresholds: scenario.thresholds))
                if options.keepHistory { histories[strategy.rawValue] = run.history }
            } catch {
                await target.close()
                throw error
            }
        }
        let exitCode = judge(&reports)
        let report = RunReport(
            scenario: scenario.name, seed: scenario.seed, startedAt: startedAt, pass: exitCode == 0, exitCode: exitCode,
            target: scenario.target.description, strategies: reports, comparison: comparison(reports))
        return RunOutcome(report: report, histories: histories)
    }

    /// The scenario against a cluster the harness starts (`NemesisCluster`), faults injected on
    /// the plan's seeded schedule. Its thresholds are its own: nothing oversold, no acknowledged
    /// write lost, every invariant holding (errors and timeouts are what faults cause), and
    /// every fault opened and healed.
    static func runWithNemesis(
        _ plan: NemesisPlan, _ scenario: Scenario, options: RunOptions,
        progress: @escaping @Sendable (Strategy, ProgressTick) -> Void
    ) async throws -> RunOutcome {
        guard let launcher = options.nemesisLauncher else {
            throw RunError.usage("a nemesis run needs the binary and deploy/haproxy.cfg")
        }
        guard options.databaseURL?.isEmpty ?? true else {
            throw RunError.usage("a nemesis run crashes and pauses the embedded PostgreSQL: unset DATABASE_URL")
        }
        let startedAt = Date()
        let given = options.http?.secret ?? ""
        let secret =
            given.utf8.count >= 32
            ? given : (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let cluster = try await NemesisCluster.start(
            binary: launcher.binary, haproxyTemplate: launcher.haproxyTemplate,
            instances: plan.instances, secret: secret,
            failover: plan.faults.contains(where: \.needsFailoverDatabase))
        var http = options.http ?? HTTPTargetOptions(secret: secret)
        http.secret = secret
        let run: StrategyResult
        do {
            let target = try await HTTPTarget.connect(
                [cluster.balancerURL], databaseURL: cluster.databaseURL, options: http)
            let nemesis = Nemesis(plan: plan, cluster: cluster, seed: scenario.seed)
            do {
                run = try await StrategyLoad(
                    scenario: scenario, target: target, live: LiveCounters(board: options.board), nemesis: nemesis,
                    drainBoundSeconds: options.drainSeconds, note: options.note
                ) {
                    progress(target.strategy, $0)
                }.run()
                await target.close()
            } catch {
                await target.close()
                throw error
            }
        } catch {
            try? await cluster.stop()
            throw error
        }
        var report = StrategyReport(run, thresholds: Threshold.nemesis)
        // A run whose faults could not be opened (or healed) proved nothing about them.
        let failedFaults = run.faults.count { $0.problem != nil }
        report.thresholds.append(
            ThresholdResult(
                expression: "every fault opened and healed (at least one)",
                ok: failedFaults == 0 && !run.faults.isEmpty,
                actual: Double(failedFaults)))
        // An instance that outlives its shutdown bound after the faults is a finding with the
        // instance's last log lines, not the verdict: the verdict is the three thresholds above
        // (what was acknowledged, sold and held). `scripts/cluster-e2e.sh` fails on it.
        do {
            try await cluster.stop()
        } catch {
            report.findings = ["an instance did not exit 0 after SIGTERM at the end: \(error)"]
        }
        let exitCode = verdict([report])
        let summary = RunReport(
            scenario: scenario.name, seed: scenario.seed, startedAt: startedAt, pass: exitCode == 0, exitCode: exitCode,
            target:
                "nemesis \(plan.faults.map(\.rawValue).joined(separator: ",")) on \(cluster.instances) instances behind HAProxy",
            strategies: [report], comparison: nil)
        return RunOutcome(report: summary, histories: options.keepHistory ? [run.strategy.rawValue: run.history] : [:])
    }

    /// The verdict is the product's: beside the actor, the rowlock baseline's broken
    /// invariants and missed thresholds are findings of the comparison. Gives each report its
    /// role and returns the run's exit status.
    static func judge(_ reports: inout [StrategyReport]) -> Int32 {
        if reports.count > 1, reports.contains(where: { $0.strategy == .actor }) {
            for index in reports.indices where reports[index].strategy != .actor { reports[index].role = .baseline }
        }
        return verdict(reports)
    }

    /// 1 when a product strategy broke an invariant, 69 when its target was gone when the load
    /// ended (the run could not judge it whole), 2 when it missed a threshold, else 0.
    static func verdict(_ reports: [StrategyReport]) -> Int32 {
        let judged = reports.filter { $0.role == .product }
        if judged.contains(where: { $0.invariantsBroken > 0 }) { return ExitStatus.invariantBroken }
        if judged.contains(where: { $0.targetDown != nil }) { return ExitStatus.unavailable }
        if judged.contains(where: { $0.thresholds.contains { !$0.ok } }) { return ExitStatus.thresholdMissed }
        return ExitStatus.pass
    }

    static func comparison(_ reports: [StrategyReport]) -> StrategyComparison? {
        guard let actor = reports.first(where: { $0.strategy == .actor }),
            let rowlock = reports.first(where: { $0.strategy == .rowlock })
        else { return nil }
        func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }
        let actorP99 = actor.operations["reserve"]?.latencyMilliseconds.p99 ?? 0
        let rowlockP99 = rowlock.operations["reserve"]?.latencyMilliseconds.p99 ?? 0
        var soldOutRatio: Double?
        if let actorSoldOut = actor.throughput.timeToSellOutSeconds,
            let rowlockSoldOut = rowlock.throughput.timeToSellOutSeconds
        {
            soldOutRatio = ratio(rowlockSoldOut, actorSoldOut)
        }
        return StrategyComparison(
            answersPerSecondRatio: ratio(actor.throughput.answersPerSecond, rowlock.throughput.answersPerSecond),
            timeToSellOutRatio: soldOutRatio,
            committedClaimsPerSecondRatio: ratio(
                actor.throughput.committedClaimsPerSecond, rowlock.throughput.committedClaimsPerSecond),
            requestsPerSecondRatio: ratio(actor.throughput.requestsPerSecond, rowlock.throughput.requestsPerSecond),
            p99ReserveLatencyRatio: ratio(rowlockP99, actorP99),
            durationRatio: ratio(rowlock.durationSeconds, actor.durationSeconds))
    }

    static func makeTarget(strategy: Strategy, options: RunOptions) async throws -> any LoadTarget {
        let url = try await FreshDatabase.url(for: "run", strategy, configured: options.databaseURL)
        return InProcessTarget(strategy: strategy, databaseURL: url, rowLockPoolSize: options.rowLockPoolSize)
    }

    /// A running server: the checker reads its database (DATABASE_URL, else the embedded one
    /// that `stockdrop serve` uses by default); the run's drops keep it apart from other rows.
    static func serverTarget(_ urls: [URL], options: RunOptions) async throws -> HTTPTarget {
        guard let http = options.http, !http.secret.isEmpty else {
            throw RunError.usage("a server target needs the server's STOCKDROP_JWT_SECRET to mint its users' tokens")
        }
        guard http.secret.utf8.count >= 32 else {
            throw RunError.usage(
                "STOCKDROP_JWT_SECRET must be at least 32 bytes (HS256 needs a key as long as its hash)")
        }
        let databaseURL = try await Database.prepare(
            environment: options.databaseURL.map { ["DATABASE_URL": $0] } ?? [:])
        let target = try await HTTPTarget.connect(urls, databaseURL: databaseURL, options: http)
        for line in target.notes { options.note(line) }
        if options.strategiesExplicit, options.strategies != [target.strategy] {
            await target.close()
            throw RunError.usage(
                "the server at \(TargetChoice.servers(urls)) runs \(target.strategy.rawValue); a server runs one strategy, start one per strategy"
            )
        }
        return target
    }
}

extension Scenario {
    /// The command line's overrides for the numbers users tweak most.
    public func overriding(
        users: Int? = nil, stock: Int? = nil, durationSeconds: Double? = nil, seed: UInt64? = nil,
        strategies: [Strategy]? = nil, target: TargetChoice? = nil, watchers: Int? = nil
    ) -> Scenario {
        var copy = self
        if let watchers { copy.watchers = watchers }
        if let users {
            // Spread over the populations in proportion to their counts, at least one each.
            let total = Double(userCount)
            for index in copy.populations.indices {
                copy.populations[index].count = max(
                    1, Int((Double(users) * Double(populations[index].count) / total).rounded()))
            }
        }
        if let stock { for index in copy.drops.indices { copy.drops[index].stock = stock } }
        if let durationSeconds { copy.limits.maxDurationSeconds = durationSeconds }
        if let seed { copy.seed = seed }
        if let strategies { copy.strategies = strategies }
        if let target { copy.target = target }
        return copy
    }
}
