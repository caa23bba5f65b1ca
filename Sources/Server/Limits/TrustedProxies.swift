// Which peers may tell us the client's address in `X-Forwarded-For`. Anyone can send that
// header, so it is read only when the TCP peer is a configured proxy (an IP or a CIDR range),
// and then from the right: the nearest address that is not itself a trusted proxy.
import Foundation

public struct TrustedProxies: Sendable, Equatable {
    struct Range: Sendable, Equatable {
        let bytes: [UInt8]
        let prefixBits: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var remaining = prefixBits
            for (index, byte) in bytes.enumerated() where remaining > 0 {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                if address[index] & mask != byte & mask { return false }
                remaining -= bits
            }
            return true
        }
    }

    let ranges: [Range]
    public static let none = TrustedProxies(ranges: [])

    init(ranges: [Range]) { self.ranges = ranges }

    /// Parses `10.0.0.1,10.1.0.0/16,::1`; throws naming the first entry that is not an IP or CIDR.
    public init(_ list: String) throws {
        ranges = try list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { entry in
                let parts = entry.split(separator: "/", maxSplits: 1).map(String.init)
                guard let bytes = Self.bytes(of: parts[0]) else {
                    throw ServerConfigurationError(
                        message: "--trusted-proxies: \"\(entry)\" is not an IP address or CIDR range")
                }
                let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
                guard let prefix, prefix >= 0, prefix <= bytes.count * 8 else {
                    throw ServerConfigurationError(message: "--trusted-proxies: \"\(entry)\" has a bad prefix length")
                }
                return Range(bytes: bytes, prefixBits: prefix)
            }
    }

    func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(of: address) else { return false }
        return ranges.contains { $0.contains(bytes) }
    }

    /// The client behind `peer`, given the request's X-Forwarded-For values.
    func client(peer: String, forwardedFor: String?) -> String {
        guard contains(peer), let forwardedFor else { return peer }
        let hops = forwardedFor.split(separator: ",").map { Self.host(of: $0.trimmingCharacters(in: .whitespaces)) }
            .filter { !$0.isEmpty }
        for hop in hops.reversed() where !contains(hop) {
            return Self.bytes(of: hop) == nil ? peer : hop
        }
        return hops.first ?? peer
    }

    /// A hop without its port: `203.0.113.9:41234` and `[2001:db8::1]:443` as proxies write them.
    static func host(of hop: String) -> String {
        if hop.hasPrefix("["), let close = hop.firstIndex(of: "]") {
            return String(hop[hop.index(after: hop.startIndex)..<close])
        }
        let parts = hop.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 2 ? String(parts[0]) : hop
    }

    /// The address's bytes; an IPv4-mapped IPv6 address (`::ffff:10.0.0.5`, how IPv4 peers
    /// appear on a dual-stack socket) as its 4 IPv4 bytes, so IPv4 ranges match it.
    static func bytes(of address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return Array(bytes[12...])
        }
        return bytes
    }
}
