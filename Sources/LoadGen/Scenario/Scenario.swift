// A load scenario as a validated value: what `stockdrop run` replays. Parsed from YAML by
// `ScenarioParser`; everything here has already been checked, so the runner never re-validates.
import Engine
import Foundation

public struct Scenario: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// The same seed gives the same arrival schedule and the same choices for every user.
    public var seed: UInt64
    public var target: TargetChoice
    public var strategies: [Strategy]
    public var drops: [DropPlan]
    public var populations: [Population]
    public var limits: RunLimits
    public var thresholds: [Threshold]
    /// WebSocket clients of a server target's live feed during the run (0: none).
    public var watchers: Int = 0
    /// Faults injected during the run into a cluster the harness starts (nil: none).
    public var nemesis: NemesisPlan? = nil

    public var userCount: Int { populations.reduce(0) { $0 + $1.count } }
    /// Users who will arrive: a `rate` population stops after its `for`, so its count may be
    /// more than `perSecond × for` lets in.
    public var arrivingUserCount: Int { populations.reduce(0) { $0 + $1.arrival.arrivals(outOf: $1.count) } }
    /// How long the longest-lived hold of the run lasts (0: no drops).
    public var longestReserveTTLMilliseconds: Int { drops.map(\.reserveTTLMilliseconds).max() ?? 0 }
}

public enum TargetChoice: Sendable, Equatable, CustomStringConvertible {
    case inProcess
    /// Running `stockdrop serve` instances, e.g. http://127.0.0.1:8080 (one server, or a load
    /// balancer in front of several), or several instances' URLs: users are spread over them.
    case servers([URL])

    public var description: String {
        switch self {
        case .inProcess: "inprocess"
        case .servers(let urls): urls.map(\.absoluteString).joined(separator: ",")
        }
    }
}

public enum ScenarioTarget {
    /// `inprocess`, or one or more comma-separated http(s) URLs with a host.
    public static func parse(_ text: String) -> TargetChoice? {
        if text == "inprocess" { return .inProcess }
        var urls: [URL] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            guard let url = URL(string: trimmed), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                return nil
            }
            urls.append(url)
        }
        return urls.isEmpty ? nil : .servers(urls)
    }
}

/// One drop the run creates before any user arrives.
public struct DropPlan: Sendable, Equatable {
    public var name: String
    public var priceCents: Int64
    public var stock: Int
    public var perUserLimit: Int
    public var reserveTTLMilliseconds: Int
    /// Opens this long after the run starts (users arriving earlier hear `not_started`).
    public var startsInMilliseconds: Int
}

/// A crowd of users who behave alike.
public struct Population: Sendable, Equatable {
    public enum DropChoice: Sendable, Equatable {
        /// Index into `Scenario.drops`.
        case one(Int)
        /// Each user picks one of the drops at random (seeded).
        case any
    }

    public var count: Int
    public var drop: DropChoice
    public var arrival: Arrival
    public var thinkTime: ThinkTime
    public var afterReserve: AfterReserve
    public var onRejected: RetryPolicy
    public var onError: RetryPolicy
}

public enum Arrival: Sendable, Equatable {
    /// Every user at the run's first instant.
    case burst
    /// The arrival rate climbs linearly from 0 to `toPerSecond` over `overSeconds`, then stays
    /// there until every user of the population has arrived.
    case ramp(toPerSecond: Double, overSeconds: Double)
    /// An open model: `perSecond` arrivals, evenly spaced, for `forSeconds` (or until the
    /// population's count is reached, whichever comes first).
    case rate(perSecond: Double, forSeconds: Double)
}

public enum ThinkTime: Sendable, Equatable {
    case none
    case fixed(milliseconds: Double)
    case uniform(minMilliseconds: Double, maxMilliseconds: Double)
    case exponential(meanMilliseconds: Double)

    /// A draw from the seeded generator, in milliseconds.
    public func draw(using random: inout SplitMix64) -> Double {
        switch self {
        case .none: return 0
        case .fixed(let ms): return ms
        case .uniform(let low, let high): return low == high ? low : Double.random(in: low...high, using: &random)
        case .exponential(let mean):
            let u = Double.random(in: Double.ulpOfOne..<1, using: &random)
            return -log(u) * mean
        }
    }
}

/// What a user does once their reserve succeeded; the three add up to 1.
public struct AfterReserve: Sendable, Equatable {
    public var purchase: Double
    public var cancel: Double
    public var abandon: Double

    public enum Choice: String, Sendable { case purchase, cancel, abandon }

    public func choose(using random: inout SplitMix64) -> Choice {
        let u = Double.random(in: 0..<1, using: &random)
        if u < purchase { return .purchase }
        if u < purchase + cancel { return .cancel }
        return .abandon
    }
}

/// Retries after a rejection (or an error): `retries` more attempts, waiting `backoff`,
/// doubling each time, with ±25% seeded jitter so retries do not arrive in lockstep.
public struct RetryPolicy: Sendable, Equatable {
    public var retries: Int
    public var backoffMilliseconds: Double

    public static let none = RetryPolicy(retries: 0, backoffMilliseconds: 0)

    public func delayMilliseconds(beforeRetry attempt: Int, using random: inout SplitMix64) -> Double {
        let base = backoffMilliseconds * Double(1 << min(attempt, 16))
        return base * Double.random(in: 0.75...1.25, using: &random)
    }
}

public struct RunLimits: Sendable, Equatable {
    /// No send is started after this; users still waiting are counted as dropped.
    public var maxDurationSeconds: Double
    /// Slack between the database's clock and ours when the checker compares a client's
    /// answer time with the rows' times (invariant 6).
    public var clockToleranceMilliseconds: Double

    /// The bound as the run's clock counts it: no send starts at or after it.
    public var maxDurationMicroseconds: Int64 { Int64(maxDurationSeconds * 1_000_000) }
}
