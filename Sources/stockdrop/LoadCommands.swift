// `stockdrop run` and `stockdrop check`.
import ArgumentParser
import Engine
import Foundation
import LoadGen

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Replay a scenario file, prove no oversell and report latency and throughput.",
        discussion:
            "Exit status: 0 pass, 1 an invariant broken, 2 a threshold missed, 64+ usage or configuration errors, 74 passed but --junit or --summary-md could not be written."
    )

    @Argument(help: "A scenario file, e.g. scenarios/flash-sale.yaml.") var scenario: String
    @Option(help: "actor | rowlock | both (default: the scenario's).") var strategy: StrategyChoice?
    @Option(
        help:
            "inprocess, a server URL, or several instances' URLs comma-separated (users are spread over them; default: the scenario's)."
    ) var target: String?
    @Option(help: "Seed for arrivals and choices (default: the scenario's).") var seed: UInt64?
    @Option(help: "Where report directories go.") var reportDir = "reports"
    @Option(help: "Override the total number of users (spread over populations).") var users: Int?
    @Option(help: "Override every drop's stock.") var stock: Int?
    @Option(help: "Override the run's maximum duration, in seconds.") var duration: Double?
    @Option(
        help: ArgumentHelp(
            "After the load, wait at most this many seconds for the holds the run left to end before checking.",
            discussion:
                "Default: the longest reserveTTL plus the purchase grace and 2 s, at most 63 s (the whole wait for holds of the default 60 s). Holds still live when the checker looks are checked as live; their expiry is not judged, and the report says how many."
        ))
    var drain: Double?
    @Option(help: "Connections of the rowlock strategy's pool.") var poolSize = Defaults.rowLockPoolSize
    @Option(
        help: ArgumentHelp(
            "The most connections the buyers may have open to each server at once (default: \(LoadDefaults.httpConnections), or fewer if the descriptor limit is lower).",
            discussion:
                "A buyer with a request out has a connection of its own, reused by the next buyer once answered; past the bound a request waits for a free one, and the report counts that wait as the harness's."
        ))
    var connections: Int?
    @Option(help: "WebSocket watchers of a server target's live feed (default: the scenario's).") var watchers: Int?
    @Option(help: "Per-request deadline for a server target, in milliseconds (a miss is a timeout).") var timeoutMs =
        LoadDefaults.httpRequestTimeoutMilliseconds
    @Flag(help: "Also write each strategy's client history (for `stockdrop check --history`).") var keepHistory = false
    @Option(
        help:
            "Faults to inject into a 3-instance cluster behind HAProxy that the run starts itself: kill-server, pause-server, restart-postgres, pause-postgres, kill-redis (comma-separated), or all."
    )
    var nemesis: String?
    @Option(help: "About how often a fault opens (e.g. 5s; default: the scenario's, else 5s).") var nemesisInterval:
        String?
    @Option(help: "How many `stockdrop serve` instances a nemesis run starts (1-9, default 3).") var nemesisInstances:
        Int?
    @Option(
        help:
            "The balancer configuration a nemesis run renders for its cluster (default: deploy/haproxy.cfg here or in the binary's checkout)."
    )
    var haproxyTemplate: String?
    @Flag(
        help:
            "Create the scenario's drops on the --target server, write --run-file for shards and exit (k6's setup())."
    )
    var setupOnly = false
    @Option(help: "The run file: written by --setup-only, read by --shard.") var runFile: String?
    @Option(
        help:
            "Run shard i of n (0 ≤ i < n, like a Kubernetes completion index): a fixed, disjoint slice of every population, against the run file's drops."
    )
    var shard: String?
    @Option(
        help:
            "When the schedule starts: an RFC 3339 time or +DELAY (e.g. +30s). --setup-only writes it to the run file (default +\(Int(LoadDefaults.shardStartLeadSeconds))s); a shard's overrides the run file's."
    )
    var startAt: String?
    @Flag(
        help:
            "Print the planned users (with --shard, that shard's) as `user drop-index arrival-µs` lines and exit; nothing is sent."
    )
    var planOnly = false
    @OptionGroup var verdictFiles: VerdictFileOptions
    @Option(
        help: ArgumentHelp(
            "Push the run's figures to this Prometheus remote-write URL (e.g. http://127.0.0.1:9090/api/v1/write).",
            discussion:
                "Every 5 s while the run goes and once at the end, each series labeled run_id, scenario, strategy and shard. A receiver that is slow or gone never fails or slows the run: each push is bounded, failures are counted and the first is said once."
        ))
    var prometheusRw: String?
    @Option(
        help: ArgumentHelp(
            "Serve a live dashboard of the run at HOST:PORT (e.g. 127.0.0.1:5665; loopback unless a host is given).",
            discussion:
                "The page at / shows requests, latency, each drop's units and the invariants judged as answers arrive (no oversell, per-user limits, acknowledged writes durable), then turns into the report; /events is its server-sent event stream (a JSON frame a second and one at the end)."
        ))
    var dashboard: String?
    @Option(help: "Keep serving the dashboard this many seconds after the run ends (default 0).")
    var dashboardLinger: Double = 0

    /// Every check of the options alone, before anything is read or sent (exit 64 with the
    /// usage); what needs the scenario file is checked in `run()`.
    func validate() throws {
        if let target, ScenarioTarget.parse(target) == nil {
            throw ValidationError("--target: `\(target)` is neither `inprocess` nor an http(s) URL")
        }
        for (name, value, least, most) in [
            ("--users", users, 1, LoadDefaults.maxUsers), ("--stock", stock, 0, Defaults.maxTotalStock),
        ]
        where value.map({ $0 < least || $0 > most }) ?? false {
            throw ValidationError("\(name) must be \(least)…\(most)")
        }
        if let duration, !(duration > 0 && duration <= 3_600) {
            throw ValidationError("--duration must be in (0, 3600] seconds")
        }
        try Self.validateDrain(drain)
        if let watchers, !(0...LoadDefaults.maxWatchers).contains(watchers) {
            throw ValidationError("--watchers must be 0…\(LoadDefaults.maxWatchers)")
        }
        guard (1...100_000).contains(connections ?? 1), (1...600_000).contains(timeoutMs) else {
            throw ValidationError("--connections must be 1…100000 and --timeout-ms 1…600000")
        }
        if let nemesis, case .failure(let error) = NemesisPlan.parseFaults(nemesis) {
            throw ValidationError("--nemesis: \(error)")
        }
        if let nemesisInstances, !(1...9).contains(nemesisInstances) {
            throw ValidationError("--nemesis-instances must be 1 to 9")
        }
        if let nemesisInterval, Self.nemesisIntervalMilliseconds(nemesisInterval) == nil {
            throw ValidationError("--nemesis-interval: `\(nemesisInterval)` is not a duration in 500ms…10m")
        }
        if nemesis != nil, target != nil {
            throw ValidationError("--target: a nemesis run starts its own cluster; drop --target")
        }
        if let shard, case .failure(let error) = ShardSpec.parse(shard) { throw ValidationError("--shard: \(error)") }
        if let prometheusRw {
            guard let url = URL(string: prometheusRw), ["http", "https"].contains(url.scheme ?? ""), url.host != nil
            else { throw ValidationError("--prometheus-rw: `\(prometheusRw)` is not an http(s) URL") }
        }
        if let dashboard, DashboardServer.parseAddress(dashboard) == nil {
            throw ValidationError("--dashboard: `\(dashboard)` is not HOST:PORT (e.g. 127.0.0.1:5665)")
        }
        guard dashboardLinger >= 0, dashboardLinger <= 86_400 else {
            throw ValidationError("--dashboard-linger must be 0…86400 seconds")
        }
        if dashboard == nil, dashboardLinger > 0 { throw ValidationError("--dashboard-linger needs --dashboard") }
        if planOnly, dashboard != nil { throw ValidationError("--dashboard watches a load: --plan-only sends none") }
        guard (1...200).contains(poolSize) else { throw ValidationError("--pool-size must be 1…200") }
        guard !planOnly else { return }
        if !setupOnly, let problem = ReportDirectoryOption.prepare(reportDir) {
            throw ValidationError("--report-dir: \(problem)")
        }
        if setupOnly, dashboard != nil {
            throw ValidationError("--dashboard watches a load: --setup-only sends none (give it to each --shard)")
        }
        if let startAt, RunFile.startInstant(startAt) == nil {
            throw ValidationError("--start-at: `\(startAt)` is neither an RFC 3339 time nor +DELAY (e.g. +30s)")
        }
        if setupOnly, shard != nil { throw ValidationError("--setup-only and --shard are two steps: run them apart") }
        if setupOnly || shard != nil, verdictFiles.asked {
            throw ValidationError(
                "--junit and --summary-md: a sharded run's verdict is the merge's; give them to `stockdrop report merge`"
            )
        }
        if setupOnly || shard != nil, drain != nil {
            throw ValidationError("--drain belongs to the run that checks: give it to `stockdrop report merge`")
        }
        if setupOnly || shard != nil {
            guard runFile != nil else {
                throw ValidationError("\(setupOnly ? "--setup-only" : "--shard") needs --run-file PATH")
            }
            guard nemesis == nil else { throw ValidationError("a sharded run cannot start a nemesis cluster") }
        } else {
            for (name, given) in [("--run-file", runFile != nil), ("--start-at", startAt != nil)] where given {
                throw ValidationError("\(name) belongs to --setup-only or --shard")
            }
        }
    }

    /// `--drain S`, of a run and of a sharded run's merge.
    static func validateDrain(_ drain: Double?) throws {
        if let drain, !(drain >= 0 && drain <= 86_400) {
            throw ValidationError("--drain must be in [0, 86400] seconds")
        }
    }

    static func nemesisIntervalMilliseconds(_ text: String) -> Int? {
        guard let milliseconds = ScenarioDuration.milliseconds(text), (500...600_000).contains(milliseconds) else {
            return nil
        }
        return Int(milliseconds)
    }

    func run() async throws {
        let parsed: Scenario
        switch ScenarioParser.parse(contentsOf: scenario) {
        case .success(let value): parsed = value
        case .failure(let error):
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(ExitStatus.badScenario)
        }
        var scenario = parsed.overriding(
            users: users.map { max(1, $0) }, stock: stock, durationSeconds: duration, seed: seed,
            strategies: strategy?.strategies, target: target.flatMap(ScenarioTarget.parse), watchers: watchers)
        if nemesis != nil || nemesisInterval != nil || nemesisInstances != nil {
            scenario.nemesis = try nemesisPlan(scenario.nemesis)
        }
        // The scenario file's own nemesis, against the options.
        if scenario.nemesis != nil, !planOnly, target != nil || setupOnly || shard != nil {
            let conflict =
                target != nil
                ? "--target: a nemesis run starts its own cluster; drop --target"
                : "a sharded run cannot start a nemesis cluster"
            FileHandle.standardError.write(Data("\(conflict)\n".utf8))
            throw ExitCode(ExitStatus.usage)
        }
        if scenario.watchers > 0, case .inProcess = scenario.target {
            FileHandle.standardError.write(
                Data("note: watchers need a server target (--target URL); none attached in process\n".utf8))
        }
        let environment = ProcessInfo.processInfo.environment
        var options = RunOptions(
            strategies: scenario.strategies, databaseURL: environment["DATABASE_URL"],
            rowLockPoolSize: poolSize, keepHistory: keepHistory,
            http: HTTPTargetOptions(
                secret: environment["STOCKDROP_JWT_SECRET"] ?? "", connections: connections,
                timeoutMilliseconds: timeoutMs),
            strategiesExplicit: strategy != nil)
        if scenario.nemesis != nil { options.nemesisLauncher = try nemesisLauncher() }
        options.drainSeconds = drain
        if planOnly {
            try printPlan(scenario)
            return
        }
        if setupOnly || shard != nil {
            try await runSharded(scenario, options: options)
            return
        }
        let interactive = isatty(STDERR_FILENO) == 1
        // On a terminal the live line is rewritten in place: a note first clears it.
        if interactive {
            options.note = { FileHandle.standardError.write(Data(("\r\u{1B}[K" + $0 + "\n").utf8)) }
        }
        print(
            "\(scenario.name): \(usersLabel(scenario)), \(scenario.drops.count) drop(s), \(scenario.drops.reduce(0) { $0 + $1.stock }) units, \(strategiesLabel(scenario)), seed \(scenario.seed)"
        )
        let exporter = prometheusRw.map {
            RemoteWriteExporter(
                url: $0,
                identity: RunSeries.Identity(
                    runID: RemoteWriteExporter.newRunID(), scenario: scenario.name, shard: ShardSpec.whole.description))
        }
        if let exporter { print("remote write to \(exporter.url), run_id \(exporter.identity.runID)") }
        let live = try await startDashboard(scenario: scenario.name, shard: .whole)
        options.board = live?.board
        let outcome: RunOutcome
        do {
            outcome = try await LoadRunner.run(scenario, options: options) { strategy, tick in
                let line = tick.line(strategy: strategy)
                FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
                if let exporter { Task { await exporter.observe(tick, strategy: strategy) } }
            }
        } catch {
            FileHandle.standardError.write(Data("\nrun failed: \(error)\n".utf8))
            live?.board.finish(failure: "\(error)")
            await endDashboard(live)
            throw ExitCode((error as? RunError)?.exitCode ?? ExitStatus.unavailable)
        }
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
        let report = outcome.report
        let directory: String
        do {
            directory = try ReportWriter.directory(
                root: reportDir, scenario: scenario.name, startedAt: report.startedAt)
            try ReportWriter.write(report, to: directory, histories: outcome.histories)
        } catch {
            live?.board.finish(failure: "the report could not be written: \(error)")
            await endDashboard(live)
            throw error
        }
        for line in report.limitedLines { print(line) }
        print(report.summaryTable)
        for line in report.problemLines { print(line) }
        print("report: \(directory)/report.html")
        if let headline = report.headline { print("comparison: \(headline)") }
        if let exporter {
            await exporter.finish(report)
            print(await exporter.summaryLine)
        }
        let status = verdictFiles.write(
            junit: JUnitDocument(run: report),
            summary: StepSummary.markdown(report, reportPath: "\(directory)/report.html"), verdict: report.exitCode)
        print(report.verdictLine)
        live?.board.finish(report, reportPath: "\(directory)/report.html")
        await endDashboard(live)
        throw ExitCode(status)
    }
}

extension RunCommand {
    /// `--setup-only` (drops and the run file) or `--shard i/n` (one slice of the load, its
    /// report directory for `stockdrop report merge`).
    func runSharded(_ given: Scenario, options: RunOptions) async throws {
        func fail(_ message: String, _ status: Int32) -> ExitCode {
            FileHandle.standardError.write(Data("\(message)\n".utf8))
            return ExitCode(status)
        }
        // validate() saw to the options: a run file, a well-formed --shard and --start-at.
        guard let runFile else { return }
        var scenario = given
        var live: (server: DashboardServer, board: LiveBoard)?
        let startInstant = startAt.flatMap { RunFile.startInstant($0) }
        do {
            if setupOnly {
                let start = startInstant ?? Date().addingTimeInterval(LoadDefaults.shardStartLeadSeconds)
                let file = try await LoadRunner.setUp(scenario, options: options, startAt: start)
                try file.write(to: runFile)
                print(
                    "set up \(file.drops.count) drop(s) \(file.drops.map(String.init).joined(separator: ",")) for \(file.scenario) (digest \(file.scenarioDigest), seed \(file.seed), \(file.users) users) on \(file.target)"
                )
                print(
                    "the schedule starts at \(ISO8601DateFormatter().string(from: file.startAt)); run file \(runFile) (run \(file.runID))"
                )
                return
            }
            guard let spec = parsedShard() else { return }
            let file = try RunFile.read(runFile)
            if target == nil, let choice = ScenarioTarget.parse(file.target) { scenario.target = choice }
            if scenario.watchers > 0 {
                FileHandle.standardError.write(
                    Data("note: shards attach no watchers (the live feed is judged by a run on one machine)\n".utf8))
                scenario.watchers = 0
            }
            let assignment = ShardAssignment(runFile: file, shard: spec, startAt: startInstant)
            live = try await startDashboard(scenario: scenario.name, shard: spec)
            var options = options
            options.board = live?.board
            let interactive = isatty(STDERR_FILENO) == 1
            // A shard pushes its live figures under its own `shard` label; the verdict's are
            // the merge's.
            let exporter = prometheusRw.map {
                RemoteWriteExporter(
                    url: $0,
                    identity: RunSeries.Identity(runID: file.runID, scenario: scenario.name, shard: spec.description))
            }
            var result = try await LoadRunner.runShard(
                scenario, options: options, assignment: assignment,
                report: { print($0) },
                progress: { strategy, tick in
                    let line = tick.line(strategy: strategy)
                    FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
                    if let exporter { Task { await exporter.observe(tick, strategy: strategy) } }
                })
            if let exporter {
                await exporter.close()
                print(await exporter.summaryLine)
            }
            if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
            result.path = try ReportWriter.directory(
                root: reportDir, scenario: "\(scenario.name)-shard-\(spec.index)-of-\(spec.count)",
                startedAt: file.startAt)
            try result.write()
            print(result.summaryLine)
            print("shard report: \(result.path) (merge every shard's with `stockdrop report merge DIR...`)")
            live?.board.finish(shardSummary: result.summaryLine)
            await endDashboard(live)
        } catch let exit as ExitCode {
            await endDashboard(live)
            throw exit
        } catch {
            live?.board.finish(failure: "\(error)")
            await endDashboard(live)
            // The database or the server could not be reached: not a verdict (1 and 2 are).
            throw fail("\nrun failed: \(error)", (error as? RunError)?.exitCode ?? ExitStatus.unavailable)
        }
    }

    /// `--dashboard`'s server and board, listening before any load is sent; a port it cannot
    /// listen on is a usage error (exit 64).
    func startDashboard(scenario: String, shard: ShardSpec) async throws -> (server: DashboardServer, board: LiveBoard)?
    {
        guard let dashboard, let address = DashboardServer.parseAddress(dashboard) else { return nil }
        let board = LiveBoard(scenario: scenario, shard: shard.description)
        do {
            let server = try await DashboardServer.start(host: address.host, port: address.port, board: board)
            // Written at once (print's buffer holds it until exit when stdout is a pipe): a
            // script or a person opens the page while the run goes.
            fflush(nil)
            FileHandle.standardOutput.write(Data("dashboard: \(server.url)\n".utf8))
            return (server, board)
        } catch {
            FileHandle.standardError.write(Data("--dashboard: \(error)\n".utf8))
            throw ExitCode(ExitStatus.usage)
        }
    }

    /// Serves the final frame (and the report) for `--dashboard-linger`, then stops.
    func endDashboard(_ live: (server: DashboardServer, board: LiveBoard)?) async {
        guard let live else { return }
        if dashboardLinger > 0 {
            print("dashboard: the final report stays at \(live.server.url) for \(dashboardLinger) s")
            try? await Task.sleep(for: .milliseconds(Int64(dashboardLinger * 1_000)))
        }
        await live.server.stop()
    }

    /// `--shard i/n`, or nil without it (validate() refused a malformed one).
    func parsedShard() -> ShardSpec? {
        guard let shard, case .success(let spec) = ShardSpec.parse(shard) else { return nil }
        return spec
    }

    /// Who arrives when (the whole scenario, or one shard's slice): what a sharded run's test
    /// compares across shards.
    func printPlan(_ scenario: Scenario) throws {
        let spec = parsedShard() ?? .whole
        let plan = LoadRunner.plan(scenario, shard: spec)
        let summary = PlanSummary(scenario, shard: spec, plan: plan).lines.joined(separator: "\n")
        FileHandle.standardError.write(Data((summary + "\n").utf8))
        var out = ""
        for user in plan {
            out += "\(user.user) \(user.dropIndex) \(user.arrivalMicroseconds)\n"
            if out.utf8.count > 1 << 16 {
                FileHandle.standardOutput.write(Data(out.utf8))
                out = ""
            }
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    /// The scenario's plan with the command line's faults and interval over it.
    func nemesisPlan(_ scenarioPlan: NemesisPlan?) throws -> NemesisPlan {
        var plan = scenarioPlan ?? NemesisPlan(faults: [])
        if let nemesis, case .success(let kinds) = NemesisPlan.parseFaults(nemesis) { plan.faults = kinds }
        if let milliseconds = nemesisInterval.flatMap(Self.nemesisIntervalMilliseconds) {
            plan.intervalMilliseconds = milliseconds
        }
        if let nemesisInstances { plan.instances = nemesisInstances }
        guard !plan.faults.isEmpty else {
            FileHandle.standardError.write(Data("--nemesis-interval needs faults (--nemesis or the scenario's)\n".utf8))
            throw ExitCode(ExitStatus.usage)
        }
        return plan
    }

    func nemesisLauncher() throws -> (binary: String, haproxyTemplate: String) {
        try ClusterFiles.locate(haproxyTemplate: haproxyTemplate)
    }
}

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run the oversell checker alone against a database (invariants 1–4; 5–6 with --history).",
        discussion:
            "Exit status: 0 every invariant holds, 1 one is broken, 64 the history cannot be read or the database does not hold what was asked (a drop id it has not, or a history of a run before the database was recreated), 69 the database is unreachable, 74 every invariant holds but --junit or --summary-md could not be written."
    )

    @Option(help: "The database (default: the history's, else DATABASE_URL, else the embedded one).") var url: String?
    @Option(help: "Only these drop ids (comma-separated); default: the history's drops, else every drop.") var drops:
        String?
    @Option(help: "A history-<strategy>.json from `run --keep-history`.") var history: String?
    @Option(help: "Clock tolerance in milliseconds.") var toleranceMs = LoadDefaults.clockToleranceMilliseconds
    @Option(
        help: ArgumentHelp(
            "How long past its expiry and grace a hold may still be ACTIVE before it counts as late, beyond the tolerance.",
            discussion:
                "A check can cut in while a server's sweeper is still expiring holds (the rowlock sweeper runs every 250 ms, the actor's idle sweep every second): such a hold is counted live and named, not judged late. 0 judges every hold as a finished run's check does."
        )) var sweepSlackMs = Double(LoadDefaults.drainSlackMilliseconds)
    @OptionGroup var verdictFiles: VerdictFileOptions

    func validate() throws {
        _ = try dropIDs()
        guard toleranceMs >= 0, toleranceMs <= 10_000 else {
            throw ValidationError("--tolerance-ms must be 0…10000 (limits.clockTolerance's range)")
        }
        guard sweepSlackMs >= 0, sweepSlackMs.isFinite else {
            throw ValidationError("--sweep-slack-ms: \(sweepSlackMs) is not a duration in milliseconds (0 or more)")
        }
    }

    /// `--drops` as ids; a part that is not one is a usage error.
    func dropIDs() throws -> [DropID]? {
        try drops.map { text in
            try text.split(separator: ",").map { part in
                guard let id = DropID(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--drops: `\(part)` is not a drop id")
                }
                return id
            }
        }
    }

    func run() async throws {
        let startedAt = Date()
        let clientHistory: ClientHistory?
        do {
            clientHistory = try history.map(ReportWriter.readHistory)
        } catch {
            FileHandle.standardError.write(
                Data("check refused: --history \(history ?? ""): \(error)\n".utf8))
            throw ExitCode(ExitStatus.usage)
        }
        var environment = ProcessInfo.processInfo.environment
        if let url = url ?? clientHistory?.databaseURL { environment["DATABASE_URL"] = url }
        let ids = try dropIDs()
        let report: CheckReport
        let database: String
        do {
            database = try await Database.prepare(environment: environment)
            // Never tighter than the run's own clocks were matched (its check was not either).
            let tolerance = Checker.tolerance(
                toleranceMs, uncertaintyMicroseconds: clientHistory?.clockUncertaintyMicroseconds)
            report = try await Checker(toleranceMilliseconds: tolerance, sweepSlackMilliseconds: sweepSlackMs).check(
                databaseURL: database, drops: ids ?? clientHistory?.drops, history: clientHistory)
        } catch let refusal as CheckRefusal {
            FileHandle.standardError.write(Data("check refused: \(refusal)\n".utf8))
            throw ExitCode(ExitStatus.usage)
        } catch {
            // Not a verdict: exit 1 says an invariant broke, so a database that cannot be read
            // is 69, as for `run`.
            FileHandle.standardError.write(Data("check failed: \(error)\n".utf8))
            throw ExitCode(ExitStatus.unavailable)
        }
        for invariant in report.invariants {
            let verdict = !invariant.checked ? "skipped" : invariant.ok ? "ok" : "BROKEN"
            print(
                "\(invariant.number). \(invariant.name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(verdict.padding(toLength: 7, withPad: " ", startingAt: 0)) \(invariant.detail)"
            )
            for example in invariant.counterexamples { print("     e.g. \(example)") }
        }
        print("drops \(report.dropsChecked), sold \(report.sold), unsold \(report.unsold), oversold \(report.oversold)")
        if let endState = report.endStateViolations {
            // What a count of the end state alone finds, beside the timeline's verdict above.
            print(
                "the end state alone: \(endState[InvariantName.noOversell] ?? 0) drops oversold, "
                    + "\(endState[InvariantName.perUserLimits] ?? 0) users past a per-user rule")
        }
        // Named by the database alone: its URL may carry a password.
        let name = URLComponents(string: database).map { String($0.path.drop { $0 == "/" }) } ?? ""
        let databaseName = name.isEmpty ? "database" : name
        let status = verdictFiles.write(
            junit: JUnitDocument(
                check: report, database: databaseName, startedAt: startedAt,
                seconds: Date().timeIntervalSince(startedAt)),
            summary: StepSummary.markdown(report, database: databaseName),
            verdict: report.ok ? ExitStatus.pass : ExitStatus.invariantBroken)
        throw ExitCode(status)
    }
}

/// How many users the run's opening line says will come: those who arrive, and how many of
/// the counted never do (`--users 3000` of ci.yaml said 3000, and 2500 came: its rate
/// population stops after its `for`).
private func usersLabel(_ scenario: Scenario) -> String {
    let arriving = scenario.arrivingUserCount
    guard arriving < scenario.userCount else { return "\(arriving) users" }
    return
        "\(arriving) users (\(scenario.userCount - arriving) of the \(scenario.userCount) counted never arrive: a rate population stops after its `for`)"
}

/// What the run's opening line says about strategies: a server runs its own.
private func strategiesLabel(_ scenario: Scenario) -> String {
    if case .servers = scenario.target { return "the strategy of the server at \(scenario.target)" }
    return "strategies " + scenario.strategies.map(\.rawValue).joined(separator: ", ")
}
