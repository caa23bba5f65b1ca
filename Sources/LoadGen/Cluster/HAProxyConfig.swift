// The balancer's configuration for a local cluster, rendered from the reference file
// (`deploy/haproxy.cfg`) so that what the tests run is what operators read: the frontend's
// `bind 127.0.0.1:PORT` line gets the balancer's port, and each backend's block of `server sK
// 127.0.0.1:PORT …` lines becomes one line per instance, copied from its first (s1 -> sK, the
// port, `id 1` -> `id K`, `track backend/s1` -> `track backend/sK`). Rendering the reference
// with its own ports (8080; 8081, 8082, 8083) gives the file back unchanged (a test checks it).
import Foundation

public enum HAProxyConfig {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func render(template: String, frontendPort: Int, instancePorts: [Int]) throws -> String {
        precondition(!instancePorts.isEmpty, "a balancer has at least one instance")
        var lines: [String] = []
        var binds = 0
        var blocks = 0
        var inBlock = false
        for line in template.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.count == 2, words[0] == "bind", port(in: words[1]) != nil {
                binds += 1
                inBlock = false
                lines.append(line.replacingOccurrences(of: String(words[1]), with: "127.0.0.1:\(frontendPort)"))
                continue
            }
            let isServer = words.count >= 3 && words[0] == "server" && port(in: words[2]) != nil
            if isServer, words[1] == "s1" {
                blocks += 1
                inBlock = true
                for (index, port) in instancePorts.enumerated() {
                    lines.append(expand(line, words: words, instance: index + 1, port: port))
                }
                continue
            }
            if isServer, inBlock, words[1].hasPrefix("s") { continue }
            inBlock = false
            lines.append(line)
        }
        guard binds == 1, blocks >= 1 else {
            throw Failure(
                description:
                    "the HAProxy template needs one `bind 127.0.0.1:PORT` line and a `server s1 127.0.0.1:PORT` block per backend (found \(binds) and \(blocks))"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// The port of `127.0.0.1:PORT`.
    private static func port(in word: Substring) -> Int? {
        guard word.hasPrefix("127.0.0.1:") else { return nil }
        return Int(word.dropFirst("127.0.0.1:".count))
    }

    /// The first server line of a block, for instance `instance` on `port`.
    private static func expand(_ line: String, words: [Substring], instance: Int, port: Int) -> String {
        let indent = line.prefix { $0 == " " || $0 == "\t" }
        var expanded = words.map(String.init)
        expanded[1] = "s\(instance)"
        expanded[2] = "127.0.0.1:\(port)"
        for index in expanded.indices.dropFirst(3) {
            if expanded[index - 1] == "id", expanded[index] == "1" { expanded[index] = String(instance) }
            if expanded[index - 1] == "track", expanded[index].hasSuffix("/s1") {
                expanded[index] = expanded[index].dropLast(2) + "s\(instance)"
            }
        }
        return indent + expanded.joined(separator: " ")
    }
}
