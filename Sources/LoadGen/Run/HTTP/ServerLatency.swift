// The server's own view of its claims' latency: the `stockdrop_http_request_duration_seconds`
// histogram on /metrics, read before and after the load and subtracted, summed over the
// instances. It starts when the server's handler has the request and ends when the answer is
// written, so set beside the harness's send→answer it tells the two apart: a harness whose
// own p99 is far above the server's is queueing on its side, or in the server's sockets.
import Foundation

/// Cumulative bucket counts per claim operation, as Prometheus's text format gives them.
struct ServerHistogram: Sendable, Equatable {
    /// operation → [(upper bound in seconds, cumulative count)], sorted by bound, +Inf last.
    var buckets: [OperationKind: [(bound: Double, count: Double)]] = [:]

    static let family = "stockdrop_http_request_duration_seconds_bucket"

    /// The routes of the claims, as the server labels them (route templates).
    static let routes: [String: OperationKind] = [
        "POST /v1/drops/{id}/reserve": .reserve,
        "POST /v1/drops/{id}/purchase": .purchase,
        "DELETE /v1/drops/{id}/reservation": .cancel,
    ]

    static func == (a: ServerHistogram, b: ServerHistogram) -> Bool {
        a.buckets.keys == b.buckets.keys
            && a.buckets.allSatisfy { key, value in
                guard let other = b.buckets[key], other.count == value.count else { return false }
                return zip(value, other).allSatisfy { $0.bound == $1.bound && $0.count == $1.count }
            }
    }

    /// The claim routes' buckets in one /metrics text (other families and routes are skipped).
    static func parse(_ text: String) -> ServerHistogram {
        var byOperation: [OperationKind: [Double: Double]] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix(family + "{") {
            guard let close = line.lastIndex(of: "}"),
                let count = Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces))
            else { continue }
            let labels = Self.labels(line[line.index(line.startIndex, offsetBy: family.count + 1)..<close])
            guard let route = labels["route"], let method = labels["method"], let le = labels["le"],
                let operation = routes["\(method) \(route)"]
            else { continue }
            let bound = le == "+Inf" ? Double.infinity : (Double(le) ?? .nan)
            guard !bound.isNaN else { continue }
            byOperation[operation, default: [:]][bound, default: 0] += count
        }
        var histogram = ServerHistogram()
        for (operation, counts) in byOperation {
            histogram.buckets[operation] = counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        return histogram
    }

    /// `name="value"` pairs (values may hold escaped quotes, commas and braces).
    static func labels(_ text: Substring) -> [String: String] {
        var labels: [String: String] = [:]
        var rest = text[...]
        while let equals = rest.firstIndex(of: "=") {
            let name = rest[..<equals].trimmingCharacters(in: CharacterSet(charactersIn: ", "))
            var index = rest.index(after: equals)
            guard index < rest.endIndex, rest[index] == "\"" else { break }
            index = rest.index(after: index)
            var value = ""
            while index < rest.endIndex, rest[index] != "\"" {
                if rest[index] == "\\", rest.index(after: index) < rest.endIndex { index = rest.index(after: index) }
                value.append(rest[index])
                index = rest.index(after: index)
            }
            labels[name] = value
            rest = index < rest.endIndex ? rest[rest.index(after: index)...] : ""
        }
        return labels
    }

    /// Each bucket's count here less `earlier`'s: what happened between the two reads.
    func subtracting(_ earlier: ServerHistogram) -> ServerHistogram {
        var result = ServerHistogram()
        for (operation, buckets) in self.buckets {
            let before = Dictionary(
                (earlier.buckets[operation] ?? []).map { ($0.bound, $0.count) }, uniquingKeysWith: +)
            result.buckets[operation] = buckets.map { ($0.bound, max(0, $0.count - (before[$0.bound] ?? 0))) }
        }
        return result
    }

    func adding(_ other: ServerHistogram) -> ServerHistogram {
        var sums: [OperationKind: [Double: Double]] = [:]
        for histogram in [self, other] {
            for (operation, buckets) in histogram.buckets {
                for bucket in buckets { sums[operation, default: [:]][bucket.bound, default: 0] += bucket.count }
            }
        }
        var result = ServerHistogram()
        for (operation, counts) in sums {
            result.buckets[operation] = counts.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
        return result
    }

    /// Requests counted, and percentiles estimated as Prometheus's histogram_quantile does:
    /// linear within the bucket the rank falls in (the +Inf bucket answers its lower bound).
    func figures(_ operation: OperationKind) -> ServerLatency? {
        guard let buckets = buckets[operation], let total = buckets.last?.count, total > 0 else { return nil }
        func quantile(_ q: Double) -> Double {
            let rank = q * total
            var lowerBound = 0.0
            var lowerCount = 0.0
            for bucket in buckets {
                if bucket.count >= rank {
                    guard bucket.bound.isFinite else { return lowerBound * 1_000 }
                    let inBucket = bucket.count - lowerCount
                    let fraction = inBucket > 0 ? (rank - lowerCount) / inBucket : 1
                    return (lowerBound + (bucket.bound - lowerBound) * fraction) * 1_000
                }
                lowerBound = bucket.bound
                lowerCount = bucket.count
            }
            return lowerBound * 1_000
        }
        return ServerLatency(count: Int(total), p50Milliseconds: quantile(0.5), p99Milliseconds: quantile(0.99))
    }
}

/// One claim operation as the server measured it.
public struct ServerLatency: Sendable, Codable, Equatable {
    public var count: Int
    public var p50Milliseconds: Double
    public var p99Milliseconds: Double
}
