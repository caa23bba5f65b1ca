// `stockdrop cluster`: the scale-out reference setup on this machine, in the foreground until
// Ctrl-C or SIGTERM (N instances, Redis and HAProxy: `LocalCluster`), for people and scripts
// (`make bench-cluster`). The tests and the nemesis hold a `LocalCluster` themselves.
import ArgumentParser
import Dispatch
import Engine
import Foundation
import LoadGen

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "N `stockdrop serve` instances, Redis and HAProxy on loopback, until Ctrl-C or SIGTERM.",
        discussion: """
            Uses DATABASE_URL, else the embedded database, and STOCKDROP_JWT_SECRET, else a generated \
            one. Prints the balancer's URL, and writes DIR/env for scripts (`. DIR/env`: BALANCER_URL, \
            INSTANCE_URLS, INSTANCE_IDS, INSTANCE_PIDS, DATABASE_URL, REDIS_URL, STOCKDROP_JWT_SECRET, \
            LEASE_MS). Options after `--` go to every `stockdrop serve`. On Ctrl-C or SIGTERM every \
            instance gets SIGTERM; exit status 0 when each exited 0, 1 otherwise.
            """)

    @Option(help: "How many instances (1-99).") var instances = 3
    @Option(help: "The instances' lease in ms (default: the server's).") var leaseMs: Int?
    @Option(help: "The state directory: logs, the balancer's configuration, the env file.") var dir =
        ".stockdrop/cluster"
    @Option(help: "The balancer's template (default: deploy/haproxy.cfg here or in the binary's checkout).")
    var haproxyTemplate: String?
    @Argument(parsing: .postTerminator, help: "More `stockdrop serve` options.") var serveOptions: [String] = []

    func validate() throws {
        guard (1...99).contains(instances) else { throw ValidationError("--instances must be 1 to 99") }
    }

    func run() async throws {
        let (binary, template) = try ClusterFiles.locate(haproxyTemplate: haproxyTemplate)
        let environment = ProcessInfo.processInfo.environment
        let secret =
            environment["STOCKDROP_JWT_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let directory = URL(fileURLWithPath: dir).standardized.path
        let stop = StopSignals()
        let cluster: LocalCluster
        do {
            cluster = try await LocalCluster.start(
                LocalClusterOptions(
                    binary: binary, instances: instances, databaseURL: try await Database.prepare(), secret: secret,
                    directory: directory, haproxyTemplate: template, leaseMilliseconds: leaseMs,
                    serveArguments: serveOptions))
        } catch {
            FileHandle.standardError.write(Data("cluster: \(error)\n".utf8))
            throw ExitCode(ExitStatus.unavailable)
        }
        var lines = cluster.instanceURLs.enumerated().map { index, url in
            "instance s\(index + 1): \(url.absoluteString) (pid \(cluster.pid(ofInstance: index + 1) ?? 0))"
        }
        lines.append("state in \(directory) (. \(directory)/env); Ctrl-C stops it")
        lines.append("balancer: \(cluster.balancerURL.absoluteString)")
        try await Foreground.hold(
            "cluster", directory: directory, environment: cluster.environmentFile, banner: lines, signals: stop,
            stopped: "stopped: every instance exited 0; logs in \(directory)"
        ) { try await cluster.stop() }
    }
}

/// What the foreground commands do once their cluster runs: write DIR/env (0600: it may carry
/// the JWT secret), say where things are (written at once, not through print's buffer, so a
/// script reading a pipe sees it now), wait for Ctrl-C or SIGTERM, then remove the env file and
/// stop the cluster, exiting 1 when the stop found a problem.
enum Foreground {
    static func hold(
        _ name: String, directory: String, environment: String, banner: [String], signals: StopSignals,
        stopped: String, stop: () async throws -> Void
    ) async throws {
        FileManager.default.createFile(
            atPath: directory + "/env", contents: Data(environment.utf8), attributes: [.posixPermissions: 0o600])
        FileHandle.standardOutput.write(Data((banner.joined(separator: "\n") + "\n").utf8))
        await signals.wait()
        try? FileManager.default.removeItem(atPath: directory + "/env")
        do {
            try await stop()
            print(stopped)
        } catch {
            FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Where a cluster's pieces are: this very binary, and the balancer's template (given, else in
/// the working directory, else in the checkout the binary was built in,
/// `.build/<configuration>/stockdrop`).
enum ClusterFiles {
    static func locate(haproxyTemplate: String?) throws -> (binary: String, haproxyTemplate: String) {
        let binary =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let checkout = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("../../..")
            .standardized.path
        let candidates =
            haproxyTemplate.map { [$0] } ?? [
                FileManager.default.currentDirectoryPath + "/deploy/haproxy.cfg", checkout + "/deploy/haproxy.cfg",
            ]
        guard let template = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            FileHandle.standardError.write(
                Data("no balancer template at \(candidates.joined(separator: " or ")); pass --haproxy-template\n".utf8))
            throw ExitCode(ExitStatus.usage)
        }
        return (binary, template)
    }
}

/// The first SIGINT or SIGTERM, instead of the default (ending the process at once).
final class StopSignals {
    private let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    func wait() async {
        for await _ in stream { return }
    }
}
