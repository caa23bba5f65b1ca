// What a server target's URL may be: its root, over plain HTTP.
import Foundation
import Testing

@testable import LoadGen

@Suite struct TargetURLTests {
    /// The harness calls /v1/… and /health at a server's root: a URL with a path or a query
    /// (a proxy's prefix) is refused before anything is sent, never silently dropped.
    @Test(arguments: ["http://127.0.0.1:1/api", "http://127.0.0.1:1/v1", "http://127.0.0.1:1?x=1"])
    func aTargetWithAPathIsRefusedNotDropped(url: String) async throws {
        let options = HTTPTargetOptions(secret: "0123456789abcdef0123456789abcdef")
        do {
            _ = try await HTTPTarget.connect([URL(string: url)!], databaseURL: "", options: options)
            Issue.record("\(url) was accepted")
        } catch let error as RunError {
            #expect(error.exitCode == ExitStatus.usage)
            #expect(error.description.contains("a server's URL is its root"), "\(error)")
        }
    }
}
