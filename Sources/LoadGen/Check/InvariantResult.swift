// One invariant's verdict, with concrete counterexamples a person can look up in the tables.
public struct InvariantResult: Sendable, Codable, Equatable {
    /// docs/design.md's number for the invariant (1 to 6).
    public var number: Int
    public var name: String
    public var ok: Bool
    public var detail: String
    /// False when the invariant could not be checked (e.g. no client history for `check`).
    public var checked: Bool
    /// At most `CheckerLimits.counterexamples` of them; `violations` counts them all.
    public var counterexamples: [String]
    public var violations: Int

    static func passed(_ number: Int, _ name: String, _ detail: String) -> InvariantResult {
        InvariantResult(
            number: number, name: name, ok: true, detail: detail, checked: true, counterexamples: [], violations: 0)
    }

    static func skipped(_ number: Int, _ name: String, _ detail: String) -> InvariantResult {
        InvariantResult(
            number: number, name: name, ok: true, detail: detail, checked: false, counterexamples: [], violations: 0)
    }

    static func verdict(
        _ number: Int, _ name: String, violations: [String], ok okDetail: String, broken brokenDetail: String
    ) -> InvariantResult {
        InvariantResult(
            number: number, name: name, ok: violations.isEmpty,
            detail: violations.isEmpty ? okDetail : "\(violations.count) \(brokenDetail)",
            checked: true, counterexamples: Array(violations.prefix(CheckerLimits.counterexamples)),
            violations: violations.count)
    }
}

enum CheckerLimits {
    /// Counterexamples kept per invariant: enough to debug, bounded for a broken run of 100k users.
    static let counterexamples = 20
}

/// Stable names: reports, tests and users' scripts refer to them.
public enum InvariantName {
    public static let noOversell = "no-oversell"
    public static let countersMatchRows = "counters-match-rows"
    public static let purchasesMatchHolds = "purchases-match-holds"
    public static let perUserLimits = "per-user-limits"
    public static let holdsExpire = "holds-expire"
    public static let acknowledgedWritesDurable = "acknowledged-writes-durable"
    public static let noUndersell = "no-undersell"
}
