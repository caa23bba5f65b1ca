// The pieces of `LocalCluster` that need no cluster: the balancer's configuration rendered
// from the reference file, a supervised process's stop (exit 0, a signal, or killed after
// its bound), and the reaping of what a dead harness left running. The cluster itself is
// tested with real instances in ClusterTests (STOCKDROP_CLUSTER_TESTS=1).
import Engine
import Foundation
import Testing

@testable import LoadGen

@Suite struct LocalClusterPartsTests {
    static let reference = FileManager.default.currentDirectoryPath + "/deploy/haproxy.cfg"

    @Test func theReferenceRendersToItself() throws {
        let template = try String(contentsOfFile: Self.reference, encoding: .utf8)
        let rendered = try HAProxyConfig.render(
            template: template, frontendPort: 8080, instancePorts: [8081, 8082, 8083])
        #expect(rendered == template)
    }

    @Test func eachBackendGetsOneServerPerInstance() async throws {
        let template = try String(contentsOfFile: Self.reference, encoding: .utf8)
        let rendered = try HAProxyConfig.render(
            template: template, frontendPort: 9000, instancePorts: [9101, 9102, 9103, 9104, 9105])
        let lines = rendered.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.contains("bind 127.0.0.1:9000"))
        #expect(!lines.contains { !$0.hasPrefix("#") && ($0.contains(":8080") || $0.contains(":8081")) })
        for instance in 1...5 {
            #expect(lines.contains("server s\(instance) 127.0.0.1:\(9100 + instance) id \(instance) check"))
            #expect(
                lines.contains(
                    "server s\(instance) 127.0.0.1:\(9100 + instance) id \(instance) track stockdrop_by_drop/s\(instance)"
                ))
        }
        #expect(lines.count { $0.hasPrefix("server ") } == 10)
        // HAProxy itself accepts it (setup.sh installs it; skipped where it is missing).
        if let haproxy = ChildSpawn.which("haproxy") {
            let path = NSTemporaryDirectory() + "stockdrop-haproxy-\(UUID().uuidString).cfg"
            try rendered.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let check = try await ChildSpawn.run(haproxy, ["-c", "-q", "-f", path], timeoutSeconds: 30)
            #expect(check.exit == .exited(0), "haproxy -c: \(check.output)")
        }
    }

    @Test func aTemplateWithoutItsShapeIsRefused() {
        #expect(throws: HAProxyConfig.Failure.self) {
            try HAProxyConfig.render(
                template: "frontend x\n    bind 127.0.0.1:80\n", frontendPort: 1, instancePorts: [2])
        }
        #expect(throws: HAProxyConfig.Failure.self) {
            try HAProxyConfig.render(
                template: "backend b\n    server s1 127.0.0.1:81 check\n", frontendPort: 1, instancePorts: [2])
        }
    }

    @Test func aStopTellsACleanExitFromASignalFromAHang() async throws {
        let directory = NSTemporaryDirectory() + "stockdrop-supervised-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func start(_ name: String, _ script: String) throws -> SupervisedProcess {
            try SupervisedProcess(
                name: name, executable: "/bin/sh", arguments: ["-c", script], environment: [:],
                logPath: "\(directory)/\(name).log")
        }
        let clean = try start("clean", "trap 'echo draining; exit 0' TERM; echo ready; while :; do sleep 0.05; done")
        let plain = try start("plain", "echo ready; exec sleep 30")
        let deaf = try start("deaf", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
        // Each has set its trap (a loaded machine may take a while to get there).
        for process in [clean, plain, deaf] {
            for _ in 0..<200 where !process.logTail().contains("ready") { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(clean.running && plain.running && deaf.running)

        let cleanStop = await clean.stop(seconds: 5)
        #expect(cleanStop == .exited(.exited(0)) && cleanStop.clean)
        #expect(clean.logTail().contains("draining"))
        #expect(await plain.stop(seconds: 5) == .exited(.signalled(SIGTERM)))
        let deafStop = await deaf.stop(seconds: 0.5)
        guard case .killedAfter = deafStop else {
            Issue.record("a process that ignores SIGTERM is killed after the bound, not \(deafStop)")
            return
        }
        #expect(deaf.exit == .signalled(SIGKILL))
        #expect(!deafStop.clean)
    }

    @Test func aStartReapsWhatADeadHarnessLeftInItsDirectory() async throws {
        let directory = NSTemporaryDirectory() + "stockdrop-reap-\(UUID().uuidString)"
        let elsewhere = directory + "-other"
        // One left by a harness in this directory, one belonging to another directory.
        let left = try ChildSpawn.start(
            "/bin/sleep", ["30"], environment: [ClusterDirectory.variable: directory], outputPath: "/dev/null")
        let other = try ChildSpawn.start(
            "/bin/sleep", ["30"], environment: [ClusterDirectory.variable: elsewhere], outputPath: "/dev/null")
        // Blocking waits and the reaper off the cooperative pool (two threads here).
        async let leftEnd = OffPool.run { ChildSpawn.wait(for: left) }
        await OffPool.run { ClusterDirectory.reapStale(directory: directory) }
        #expect(try await leftEnd == .signalled(SIGKILL))
        #expect(kill(other, 0) == 0, "a process of another directory is left alone")
        kill(other, SIGKILL)
        _ = await OffPool.run { ChildSpawn.wait(for: other) }
    }

    @Test func anInstanceIsFoundFromItsLeaseOwner() {
        #expect(LeaseOwner.name(ofIncarnation: "s2~k3j9x") == "s2")
        #expect(LeaseOwner.name(ofIncarnation: "s12") == "s12")
        #expect(LeaseOwner.name(ofIncarnation: LeaseOwner.incarnation(of: "s7").instance) == "s7")
    }
}
