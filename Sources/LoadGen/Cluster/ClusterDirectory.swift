// The state directory of a cluster the harness runs (`LocalCluster`, `PatroniCluster`): one
// harness at a time holds its lock; every process started there carries the directory in its
// environment, so what a harness that died left running is found and killed by the next one.
// And the small helpers both clusters need: free loopback ports, blocking work off the pool.
import Engine
import Foundation

enum ClusterDirectory {
    /// Creates the directory, takes its lock (held open, close-on-exec, until the caller closes
    /// the returned descriptor), and kills what a dead harness left there.
    static func claim(_ directory: String) async throws -> Int32 {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let lock = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if lock >= 0 { close(lock) }
            throw LocalCluster.Failure(
                description: "another harness runs a cluster in \(directory); stop it, or use another directory")
        }
        await OffPool.run { reapStale(directory: directory) }
        return lock
    }

    static let variable = "STOCKDROP_CLUSTER_DIR"

    /// Whether a harness holds the directory's lock now (its cluster runs): the lock goes with
    /// its process, so a pid that was reused or a stale file never says "running".
    static func isHeld(_ directory: String) -> Bool {
        let lock = open(directory + "/lock", O_RDONLY | O_CLOEXEC)
        guard lock >= 0 else { return false }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { return errno == EWOULDBLOCK }
        flock(lock, LOCK_UN)
        return false
    }

    /// Kills what an earlier harness started in `directory` and left running (it died before
    /// its stop): every process whose environment names the directory, and its Redis (which
    /// rewrites its process title over its environment, but names its socket in the title).
    static func reapStale(directory: String) {
        let marker = Self.marker(directory)
        let redisTitle = Data("unixsocket:\(directory)/redis.sock".utf8)
        let stale = processes(where: { environment, title in
            environment.range(of: marker) != nil
                || (title.range(of: Data("redis-server".utf8)) != nil && title.range(of: redisTitle) != nil)
        })
        for pid in stale { kill(pid, SIGKILL) }
        // Gone, or a zombie its new parent has yet to reap (it holds nothing any more).
        for pid in stale {
            for _ in 0..<100 where kill(pid, 0) == 0 && !isZombie(pid) { usleep(50_000) }
        }
    }

    private static func isZombie(_ pid: pid_t) -> Bool { statFields(of: pid)?.first == "Z" }

    /// What every process started in `directory` carries in its environment.
    private static func marker(_ directory: String) -> Data { Data("\(variable)=\(directory)\0".utf8) }

    /// The live processes started in `directory` (their environment names it) with an
    /// argument holding `text`: a node's Patroni is found by its configuration file.
    static func processes(in directory: String, commandLineContaining text: String) -> [pid_t] {
        let marker = Self.marker(directory)
        let needle = Data(text.utf8)
        return processes(where: { environment, commandLine in
            environment.range(of: marker) != nil && commandLine.range(of: needle) != nil
        }).filter { !isZombie($0) }
    }

    /// Every other process whose environment and command line (empty when unreadable) match.
    private static func processes(where matches: (_ environment: Data, _ commandLine: Data) -> Bool) -> [pid_t] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = pid_t(entry), pid != me else { return nil }
            let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ") ?? Data()
            let commandLine = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") ?? Data()
            return matches(environment, commandLine) ? pid : nil
        }
    }

    /// The processes whose parent is `pid` (a postmaster's backends).
    static func children(of pid: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let child = pid_t(entry), let fields = statFields(of: child), fields.count > 1 else { return nil }
            return pid_t(fields[1]) == pid ? child : nil
        }
    }

    /// The fields of /proc/PID/stat after the command name (state, parent pid, …): the name
    /// is in parentheses and may hold spaces, so the fields start after its last `)`.
    static func statFields(of pid: pid_t) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// `count` distinct free loopback ports: each socket stays bound until all are picked. A
    /// port can still be taken between this and the bind; that start then fails and cleans up.
    static func freeLoopbackPorts(_ count: Int) throws -> [Int] {
        var descriptors: [Int32] = []
        defer { descriptors.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw LocalCluster.Failure(description: "socket(): errno \(errno)") }
            descriptors.append(descriptor)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
                }
            }
            guard bound else { throw LocalCluster.Failure(description: "no free loopback port: errno \(errno)") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
