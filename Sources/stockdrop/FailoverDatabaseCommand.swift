// `stockdrop ha`: PostgreSQL that fails over on this machine (`PatroniCluster`). `start` (the
// default) runs it in the foreground and starts a killed node again once another one leads, as
// a service manager would; `status`, `kill-leader`, `switchover` and `stop` act on the cluster
// a `start` runs in the same state directory, from another shell or a script.
import ArgumentParser
import Engine
import Foundation
import LoadGen

struct FailoverDatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha",
        abstract: "PostgreSQL that fails over: etcd, Patroni nodes and HAProxy on loopback.",
        discussion: """
            `stockdrop ha` (or `ha start`) runs the cluster until Ctrl-C or SIGTERM; from another shell, \
            `ha status`, `ha kill-leader`, `ha switchover` and `ha stop` act on it (same --dir). Patroni's \
            own tool works too: `patronictl -c DIR/pg1.yml list`.
            """,
        subcommands: [Start.self, Status.self, KillLeader.self, Switchover.self, Stop.self],
        defaultSubcommand: Start.self)

    struct Place: ParsableArguments {
        @Option(
            help: ArgumentHelp(
                "The state directory: data, logs, Patroni's configurations, ha.json (default: ha beside the embedded database, .stockdrop/ha in a checkout the postgres user can enter).",
                valueName: "dir")) var dir: String?

        var directory: String {
            URL(fileURLWithPath: dir ?? (((try? EmbeddedPostgres())?.home ?? ".stockdrop") + "/ha")).standardized.path
        }

        /// The running cluster's control, or exit 69 saying there is none.
        func control() throws -> PatroniControl {
            let addresses: PatroniAddresses
            do {
                addresses = try PatroniAddresses.read(directory: directory)
            } catch {
                throw FailoverDatabaseCommand.fail(error)
            }
            guard addresses.supervisorRuns else {
                throw FailoverDatabaseCommand.fail(
                    "the cluster in \(directory) is not running (its `stockdrop ha`, pid \(addresses.supervisor), is gone): "
                        + "`stockdrop ha stop` kills what it left")
            }
            return PatroniControl(addresses)
        }
    }

    /// Says what went wrong and exits 69.
    static func fail(_ error: any Error) -> ExitCode { fail("\(error)") }

    static func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("ha: \(message)\n".utf8))
        return ExitCode(ExitStatus.unavailable)
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the cluster and keep it in the foreground until Ctrl-C or SIGTERM.",
            discussion: """
                Synchronous replication in strict mode unless --async. Creates the database `stockdrop`, \
                migrates it, prints its DATABASE_URL (HAProxy: always the primary) and writes DIR/env. A node \
                whose Patroni dies is started again as a replica once another node leads.
                """)

        @Option(help: "PostgreSQL nodes (2-9).") var nodes = 3
        @Flag(help: "Asynchronous replication (the last commits may be lost at a failover).") var async = false
        @OptionGroup var place: Place

        func validate() throws {
            guard (2...9).contains(nodes) else { throw ValidationError("--nodes must be 2 to 9") }
        }

        func run() async throws {
            let directory = place.directory
            let stop = StopSignals()
            let cluster: PatroniCluster
            let url: String
            do {
                cluster = try await PatroniCluster.start(
                    PatroniClusterOptions(directory: directory, nodes: nodes, synchronous: !async))
            } catch {
                throw FailoverDatabaseCommand.fail(error)
            }
            do {
                let admin = try await PostgresConnection.connect(cluster.url())
                try await admin.execute("CREATE DATABASE stockdrop")
                await admin.close()
                url = try await Database.prepare(environment: ["DATABASE_URL": cluster.url(database: "stockdrop")])
            } catch {
                try? await cluster.stop()
                throw FailoverDatabaseCommand.fail(error)
            }
            let leader = await cluster.control.leader().map(PatroniCluster.nodeName) ?? "?"
            let standby = await cluster.control.synchronousStandby().map(PatroniCluster.nodeName) ?? "none"
            let rejoin = Task { await Self.rejoinKilledNodes(cluster) }
            try await Foreground.hold(
                "ha", directory: directory, environment: "export DATABASE_URL='\(url)'\n",
                banner: [
                    "primary \(leader), synchronous standby \(standby); state in \(directory) (. \(directory)/env); Ctrl-C stops it",
                    "DATABASE_URL=\(url)",
                ], signals: stop, stopped: "stopped; logs in \(directory)"
            ) {
                rejoin.cancel()
                await rejoin.value
                try await cluster.stop()
            }
        }

        /// A node whose Patroni ended (`ha kill-leader`, a crash) is started again once another
        /// node leads, and rejoins as its replica (rewound if it must be): the killed machine
        /// coming back, as its service manager would bring it. When no other node can lead (in
        /// strict mode only the synchronous standby may be promoted, and there may be none),
        /// it comes back after three leader-key TTLs and takes up its place again.
        static func rejoinKilledNodes(_ cluster: PatroniCluster) async {
            var downSince: [Int: ContinuousClock.Instant] = [:]
            let patience = Duration.seconds(3 * cluster.options.ttlSeconds)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                for node in 1...cluster.options.nodes where !Task.isCancelled {
                    guard !cluster.isRunning(node: node) else {
                        downSince[node] = nil
                        continue
                    }
                    let since = downSince[node] ?? .now
                    downSince[node] = since
                    let leader = await cluster.control.leader()
                    guard leader.map({ $0 != node }) ?? (ContinuousClock.now - since > patience) else { continue }
                    do {
                        try await cluster.restart(node: node)
                        downSince[node] = nil
                        // At once, not through print's buffer: a script reading the log waits for it.
                        let line =
                            "\(PatroniCluster.nodeName(node)) started again"
                            + (leader.map { ": a replica of \(PatroniCluster.nodeName($0))" }
                                ?? " (no other node could lead)")
                        FileHandle.standardOutput.write(Data((line + "\n").utf8))
                    } catch {
                        FileHandle.standardError.write(Data("ha: \(error)\n".utf8))
                    }
                }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Each node's role, state, timeline and lag, and whether the balancer leads to a writable primary.",
            discussion:
                "Exit status 0 when a primary takes writes through the balancer, 1 when none does, 69 when no cluster runs in the directory."
        )

        @OptionGroup var place: Place

        func run() async throws {
            let control = try place.control()
            let members = await control.members()
            let standby = await control.synchronousStandby()
            print("member  role          state     TL  replay lag")
            for member in members {
                let role =
                    member.node == standby
                    ? "sync standby" : member.role == "master" ? "primary" : member.role ?? "no answer"
                print(
                    PatroniCluster.nodeName(member.node).padding(toLength: 8, withPad: " ", startingAt: 0)
                        + role.padding(toLength: 14, withPad: " ", startingAt: 0)
                        + (member.state ?? "-").padding(toLength: 10, withPad: " ", startingAt: 0)
                        + (member.timeline.map(String.init) ?? "-").padding(toLength: 4, withPad: " ", startingAt: 0)
                        + (member.replayLagBytes.map { "\($0) bytes" } ?? ""))
            }
            let writable = (try? await control.waitWritable(seconds: 2)) != nil
            print(
                "balancer 127.0.0.1:\(control.addresses.balancerPort): "
                    + (writable ? "a primary takes writes" : "no writable primary"))
            await control.close()
            if !writable { throw ExitCode(1) }
        }
    }

    struct KillLeader: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kill-leader",
            abstract: "SIGKILL the primary's Patroni, postmaster and backends at once, as if its machine vanished.",
            discussion: """
                Then waits (up to --wait-seconds; 0 does not wait) for another node to take writes through the \
                balancer and prints how long that took: mostly Patroni's leader-key TTL. The killed node is \
                started again as a replica by the `ha start` that runs the cluster.
                """)

        @OptionGroup var place: Place
        @Option(help: "Seconds to wait for the new primary (0: return at once).") var waitSeconds = 60.0

        func run() async throws {
            let control = try place.control()
            let standby = control.addresses.synchronous ? await control.synchronousStandby() : nil
            let killed: PatroniControl.Killed
            do {
                killed = try await control.killLeader()
            } catch {
                await control.close()
                throw FailoverDatabaseCommand.fail(error)
            }
            print(
                "killed \(PatroniCluster.nodeName(killed.node)): Patroni pid \(killed.patroni), "
                    + "postmaster \(killed.postmaster.map { "pid \($0)" } ?? "not running"), \(killed.backends) backends"
            )
            // In strict mode only the synchronous standby may be promoted: with none, writes
            // wait for the killed node to come back (the running `ha` brings it after 3 TTLs).
            let noStandby = control.addresses.synchronous && standby == nil
            if noStandby {
                print(
                    "no node was synchronous standby at the kill: in strict mode Patroni promotes none of the others, "
                        + "so writes wait for \(PatroniCluster.nodeName(killed.node)) to come back")
            }
            guard waitSeconds > 0 else { return await control.close() }
            let leader = await control.waitForNewPrimary(away: noStandby ? nil : killed.node, seconds: waitSeconds)
            await control.close()
            guard let leader else {
                throw FailoverDatabaseCommand.fail("no primary took writes within \(waitSeconds) s of the kill")
            }
            print(
                "\(PatroniCluster.nodeName(leader)) takes writes through the balancer "
                    + String(format: "%.2f s after the kill", (ContinuousClock.now - killed.at).seconds))
        }
    }

    struct Switchover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A planned change of primary: Patroni hands over to the synchronous standby.",
            discussion: "Returns once the new primary takes writes through the balancer, and prints how long it took.")

        @OptionGroup var place: Place

        func run() async throws {
            let control = try place.control()
            let started = ContinuousClock.now
            let moved: (from: Int, to: Int)
            do {
                moved = try await control.switchover()
            } catch {
                await control.close()
                throw FailoverDatabaseCommand.fail(error)
            }
            await control.close()
            print(
                "\(PatroniCluster.nodeName(moved.from)) -> \(PatroniCluster.nodeName(moved.to)): writes through the balancer "
                    + String(format: "%.2f s after the request", (ContinuousClock.now - started).seconds))
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the cluster the `ha start` in this directory runs (SIGTERM to it), and wait for it.")

        @OptionGroup var place: Place
        /// Each node's Patroni has 30 s to stop its PostgreSQL, one after another.
        @Option(help: "Seconds to wait for it to stop.") var waitSeconds = 150.0

        func run() async throws {
            let directory = place.directory
            let addresses: PatroniAddresses
            do {
                addresses = try PatroniAddresses.read(directory: directory)
            } catch {
                throw FailoverDatabaseCommand.fail(error)
            }
            let supervisor = addresses.supervisor
            guard addresses.supervisorRuns else {
                // Its supervisor died: what it started there goes, and nothing else.
                _ = await PatroniCluster.reapLeftovers(directory: directory)
                print("the cluster's `stockdrop ha` (pid \(supervisor)) was gone; killed what it left in \(directory)")
                return
            }
            // The pid is the lock holder's: the start that holds the lock wrote this ha.json.
            kill(supervisor, SIGTERM)
            let deadline = ContinuousClock.now.advanced(by: .seconds(waitSeconds))
            while addresses.supervisorRuns {
                guard ContinuousClock.now < deadline else {
                    throw FailoverDatabaseCommand.fail("pid \(supervisor) still runs \(waitSeconds) s after SIGTERM")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            // Nothing is left after a clean stop; whatever a stop that failed half-way left goes.
            _ = await PatroniCluster.reapLeftovers(directory: directory)
            print("stopped the cluster in \(directory)")
        }
    }
}
