// The system's reason a path a user named gives no contents, in words (Foundation's errors
// read "The file doesn't exist" with a domain and a code), and for a directory, a file in it
// the user may have meant.
import Foundation

enum UnreadableFile {
    /// `what` names the file wanted ("a scenario file"); `fits` picks the files of a directory
    /// worth suggesting.
    static func reason(_ path: String, what: String, fits: (String) -> Bool) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return "no such file"
        }
        if isDirectory.boolValue {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter(fits).sorted()
            let example = files.first.map { ", e.g. \((path as NSString).appendingPathComponent($0))" } ?? ""
            return "it is a directory (name \(what) in it\(example))"
        }
        return FileManager.default.isReadableFile(atPath: path) ? "it could not be read" : "permission denied"
    }
}
