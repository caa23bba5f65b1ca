// What this process has used of the machine, read from the kernel: CPU time (getrusage, user
// plus system, every thread) and memory (resident now from /proc/self/statm, peak from
// getrusage). The server exposes it on /metrics so a load run can charge the server's CPU to
// the requests it answered; the harness reads its own for the peak RSS of a run.
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

public struct ProcessUsage: Sendable, Equatable, Codable {
    /// User plus system CPU time since the process started, in microseconds.
    public var cpuMicroseconds: Int64
    /// Resident memory now.
    public var residentBytes: Int
    /// The most resident memory the process has had.
    public var peakResidentBytes: Int

    public init(cpuMicroseconds: Int64, residentBytes: Int, peakResidentBytes: Int) {
        self.cpuMicroseconds = cpuMicroseconds
        self.residentBytes = residentBytes
        self.peakResidentBytes = peakResidentBytes
    }

    public static func now() -> ProcessUsage {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func micros(_ time: timeval) -> Int64 { Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_usec) }
        return ProcessUsage(
            cpuMicroseconds: micros(usage.ru_utime) + micros(usage.ru_stime),
            residentBytes: residentBytesNow(),
            // ru_maxrss is in kilobytes on Linux.
            peakResidentBytes: Int(usage.ru_maxrss) * 1024)
    }

    /// Resident pages × page size, from /proc/self/statm (0 where it cannot be read).
    public static func residentBytesNow() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
