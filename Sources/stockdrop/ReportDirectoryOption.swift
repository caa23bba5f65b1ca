// `--report-dir`: made before anything is sent, so a path that cannot be a directory is refused
// with the usage (exit 64) instead of found out after the whole load, with no verdict printed
// and exit 1, the status of a broken invariant.
import Foundation

enum ReportDirectoryOption {
    /// Makes `path` (and its parents) if missing; why it cannot hold reports, or nil.
    static func prepare(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            do {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                return "cannot make the directory \(path): \(obstacle(path))"
            }
            return nil
        }
        guard isDirectory.boolValue else { return "\(path) is not a directory" }
        return access(path, W_OK) == 0 ? nil : "the directory \(path) is not writable"
    }

    /// The part of `path` in the way: the deepest existing one that is not a directory, or the
    /// system's reason the first missing one cannot be made.
    private static func obstacle(_ path: String) -> String {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: prefix, isDirectory: &isDirectory) {
                if !isDirectory.boolValue { return "\(prefix) is a file" }
                continue
            }
            // The first missing part is the one that failed (those before it exist).
            guard mkdir(prefix, 0o755) == 0 else { return String(cString: strerror(errno)) }
            rmdir(prefix)
            break
        }
        return "it could not be made"
    }
}
