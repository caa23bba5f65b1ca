// Which slice of a scenario one load-generator process runs: shard `index` of `count`, as
// k6's execution segments split a test over machines. Every population's arrivals are dealt
// round-robin (arrival k goes to shard k mod count), so each shard's slice is spread evenly
// over the whole schedule (a ramp stays a ramp on every machine), the slices are disjoint
// and together are the scenario whatever the count, and a user keeps the global id and the
// seed it has in a run on one machine.
public struct ShardSpec: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// 0-based, like a Kubernetes Indexed Job's completion index.
    public let index: Int
    public let count: Int

    /// A shard that is the whole scenario.
    public static let whole = ShardSpec(uncheckedIndex: 0, count: 1)

    /// Shards are capped well past any fleet: each still mints and checks its own users.
    public static let maxCount = 10_000

    private init(uncheckedIndex index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// `i/n` with 0 ≤ i < n.
    public static func parse(_ text: String) -> Result<ShardSpec, ShardSpecError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            return .failure(ShardSpecError("`\(text)` is not i/n (for example 0/3: the first of three shards)"))
        }
        guard (1...maxCount).contains(count) else {
            return .failure(ShardSpecError("the shard count \(count) is not in 1…\(maxCount)"))
        }
        guard (0..<count).contains(index) else {
            return .failure(
                ShardSpecError(
                    "shard index \(index) is not in 0…\(count - 1): shards count from 0, like a Kubernetes completion index"
                ))
        }
        return .success(ShardSpec(uncheckedIndex: index, count: count))
    }

    /// Whether the population's `arrival`-th user (0-based, in schedule order) is this shard's.
    public func owns(arrival: Int) -> Bool { arrival % count == index }

    public var description: String { "\(index)/\(count)" }

    private enum CodingKeys: String, CodingKey { case index, count }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let index = try container.decode(Int.self, forKey: .index)
        let count = try container.decode(Int.self, forKey: .count)
        switch Self.parse("\(index)/\(count)") {
        case .success(let spec): self = spec
        case .failure(let error):
            throw DecodingError.dataCorruptedError(forKey: .index, in: container, debugDescription: error.message)
        }
    }
}

public struct ShardSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
