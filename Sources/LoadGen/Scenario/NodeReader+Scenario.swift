// The scenario's own fields, read with `NodeReader`'s located checks. Defaults follow
// scenarios/README.md.
import Engine
import Foundation
import Yams

extension NodeReader {
    static let topFields = [
        "name", "description", "seed", "target", "strategy", "drops", "users", "limits", "thresholds", "watchers",
        "nemesis",
    ]
    static let dropFields = ["name", "priceCents", "stock", "perUserLimit", "reserveTTL", "startsIn"]
    static let userFields = ["count", "drop", "arrival", "thinkTime", "afterReserve", "onRejected", "onError"]
    static let limitFields = ["maxDuration", "clockTolerance"]

    mutating func scenario(_ root: Node) -> Scenario? {
        guard let top = fields(root, "", known: Self.topFields, required: ["name", "drops", "users"]) else {
            return nil
        }
        let name = string(top, "name") ?? ""
        let seed = top.values["seed"].flatMap { integer($0, "seed", in: 0...Int.max) }.map(UInt64.init) ?? 1
        let target = self.target(top)
        let strategies = strategy(top)
        let drops = (sequence(top, "drops") ?? []).enumerated().compactMap { dropPlan($1, "drops[\($0)]") }
        if top.values["drops"] != nil, drops.isEmpty, problems.isEmpty {
            problem(at: top.values["drops"], "drops", "list at least one drop")
        }
        var seen: Set<String> = []
        for (index, drop) in drops.enumerated() where !seen.insert(drop.name).inserted {
            problem(at: sequence(top, "drops")?[index], "drops[\(index)].name", "`\(drop.name)` names two drops")
        }
        let populations = (sequence(top, "users") ?? []).enumerated().compactMap {
            population($1, "users[\($0)]", drops: drops)
        }
        if top.values["users"] != nil, populations.isEmpty, problems.isEmpty {
            problem(at: top.values["users"], "users", "list at least one population")
        }
        let limits = self.limits(top)
        let thresholds = (sequence(top, "thresholds") ?? []).enumerated().compactMap {
            threshold($1, "thresholds[\($0)]")
        }
        let watchers = top.values["watchers"].flatMap { integer($0, "watchers", in: 0...LoadDefaults.maxWatchers) } ?? 0
        var plan: NemesisPlan?
        if let node = top.values["nemesis"] { plan = nemesisPlan(node) }
        guard let target, let strategies, let limits else { return nil }
        var scenario = Scenario(
            name: name, description: string(top, "description"), seed: seed, target: target, strategies: strategies,
            drops: drops, populations: populations, limits: limits, thresholds: thresholds, watchers: watchers)
        scenario.nemesis = plan
        return scenario
    }

    /// `nemesis: {faults: [kill-server, pause-postgres], interval: 5s, count: 1}` (faults may
    /// also be one comma-separated string, or `all`; count caps the faults of the run).
    private mutating func nemesisPlan(_ node: Node) -> NemesisPlan? {
        guard let f = fields(node, "nemesis", known: ["faults", "interval", "count"], required: ["faults"]) else {
            return nil
        }
        let count = f.values["count"] == nil ? nil : integer(f, "count", in: 1...1_000)
        var names: [String] = []
        if case .sequence(let items)? = f.values["faults"] {
            names = items.compactMap(\.string)
        } else if let text = string(f, "faults") {
            names = [text]
        }
        let interval = duration(f, "interval", in: 500...600_000) ?? Double(LoadDefaults.nemesisIntervalMilliseconds)
        switch NemesisPlan.parseFaults(names.joined(separator: ",")) {
        case .success(let kinds):
            var plan = NemesisPlan(faults: kinds, intervalMilliseconds: Int(interval))
            plan.maxFaults = count
            return plan
        case .failure(let error):
            problem(at: f.values["faults"], f.path("faults"), error.description)
            return nil
        }
    }

    private mutating func target(_ top: Fields) -> TargetChoice? {
        guard let text = string(top, "target") else { return top.values["target"] == nil ? .inProcess : nil }
        return ScenarioTarget.parse(text)
            ?? {
                problem(
                    at: top.values["target"], "target",
                    "`\(text)` is neither `inprocess` nor an http(s) URL such as http://127.0.0.1:8080")
                return nil
            }()
    }

    private mutating func strategy(_ top: Fields) -> [Strategy]? {
        guard let text = string(top, "strategy") else { return top.values["strategy"] == nil ? Strategy.allCases : nil }
        if text == "both" { return Strategy.allCases }
        if let one = Strategy(rawValue: text) { return [one] }
        problem(at: top.values["strategy"], "strategy", "`\(text)` is not one of actor, rowlock, both")
        return nil
    }

    private mutating func dropPlan(_ node: Node, _ path: String) -> DropPlan? {
        guard let f = fields(node, path, known: Self.dropFields, required: ["name", "stock"]) else { return nil }
        let name = string(f, "name")
        if let name, name.count > 200 { problem(at: f.values["name"], f.path("name"), "at most 200 characters") }
        if let name, name.allSatisfy(\.isWhitespace) {
            problem(at: f.values["name"], f.path("name"), "must not be blank")
        }
        if name == "any" {
            problem(
                at: f.values["name"], f.path("name"),
                "`any` is reserved: a population's `drop: any` picks a drop at random")
        }
        let price =
            f.values["priceCents"].flatMap { integer($0, f.path("priceCents"), in: 0...Int(Defaults.maxPriceCents)) }
            ?? 1_000
        let stock = integer(f, "stock", in: 0...Defaults.maxTotalStock)
        let limit = integer(f, "perUserLimit", in: 1...Defaults.maxPerUserLimit) ?? 1
        let ttl =
            duration(
                f, "reserveTTL",
                in: Double(Defaults.minReserveTTLMilliseconds)...Double(Defaults.maxReserveTTLMilliseconds))
            ?? Double(Defaults.reserveTTLMilliseconds)
        let startsIn = duration(f, "startsIn", in: 0...3_600_000) ?? 0
        // A drop with a bad field still has its name: kept (the file is refused anyway), so the
        // checks of names (two drops of one name, a population's drop) still run and a wrong
        // field does not hide them or read as "no drop is named" it.
        guard let name else { return nil }
        return DropPlan(
            name: name, priceCents: Int64(price), stock: stock ?? 0, perUserLimit: limit,
            reserveTTLMilliseconds: Int(ttl), startsInMilliseconds: Int(startsIn))
    }

    private mutating func population(_ node: Node, _ path: String, drops: [DropPlan]) -> Population? {
        guard let f = fields(node, path, known: Self.userFields, required: ["count"]) else { return nil }
        let problemsBefore = problems.count
        let count = integer(f, "count", in: 1...LoadDefaults.maxUsers)
        var choice: Population.DropChoice?
        if let name = string(f, "drop") {
            if name == "any" {
                choice = .any
            } else if let index = drops.firstIndex(where: { $0.name == name }) {
                choice = .one(index)
            } else {
                let hint =
                    Suggestion.nearest(to: name, among: drops.map(\.name)).map { "; did you mean `\($0)`?" } ?? ""
                problem(at: f.values["drop"], f.path("drop"), "no drop is named `\(name)`\(hint)")
            }
        } else if f.values["drop"] == nil {
            if drops.count == 1 {
                choice = .one(0)
            } else {
                problem(at: node, f.path("drop"), "is required when there are several drops (a name, or `any`)")
            }
        }
        let arrival = f.values["arrival"].map { self.arrival($0, f.path("arrival")) } ?? .burst
        let think = f.values["thinkTime"].map { thinkTime($0, f.path("thinkTime")) } ?? ThinkTime.none
        let after =
            f.values["afterReserve"].map { afterReserve($0, f.path("afterReserve")) }
            ?? AfterReserve(purchase: 1, cancel: 0, abandon: 0)
        let onRejected = f.values["onRejected"].map { retryPolicy($0, f.path("onRejected")) } ?? RetryPolicy.none
        let onError = f.values["onError"].map { retryPolicy($0, f.path("onError")) } ?? onRejected
        if let count, let arrival, case .rate(let perSecond, let seconds) = arrival,
            Double(count) > (perSecond * seconds).rounded(.up)
        {
            problem(
                at: f.values["arrival"], f.path("arrival"),
                "\(count) users cannot arrive at \(perSecond)/s within \(seconds) s; raise `for` or lower `count`")
        }
        guard problems.count == problemsBefore, let count, let choice, let arrival, let think, let after,
            let onRejected, let onError
        else { return nil }
        return Population(
            count: count, drop: choice, arrival: arrival, thinkTime: think, afterReserve: after,
            onRejected: onRejected, onError: onError)
    }

    private mutating func arrival(_ node: Node, _ path: String) -> Arrival? {
        if case .scalar = node {
            if node.string == "burst" { return .burst }
            problem(at: node, path, "expected `burst`, {ramp: {to, over}} or {rate: {perSecond, for}}")
            return nil
        }
        guard let (kind, body) = variant(node, path, known: ["burst", "ramp", "rate"]) else { return nil }
        let bodyPath = "\(path).\(kind)"
        switch kind {
        case "ramp":
            guard let f = fields(body, bodyPath, known: ["to", "over"], required: ["to", "over"]),
                let to = number(f, "to", in: 1...LoadDefaults.maxArrivalsPerSecond),
                let over = duration(f, "over", in: 1...3_600_000)
            else { return nil }
            return .ramp(toPerSecond: to, overSeconds: over / 1_000)
        case "rate":
            guard let f = fields(body, bodyPath, known: ["perSecond", "for"], required: ["perSecond", "for"]),
                let perSecond = number(f, "perSecond", in: 0.001...LoadDefaults.maxArrivalsPerSecond),
                let duration = duration(f, "for", in: 1...3_600_000)
            else { return nil }
            return .rate(perSecond: perSecond, forSeconds: duration / 1_000)
        default:
            return .burst
        }
    }

    private mutating func thinkTime(_ node: Node, _ path: String) -> ThinkTime? {
        let range = 0...LoadDefaults.maxThinkMilliseconds
        if case .scalar = node {
            if node.string == "none" { return ThinkTime.none }
            return duration(node, path, in: range).map { .fixed(milliseconds: $0) }
        }
        guard let (kind, body) = variant(node, path, known: ["fixed", "uniform", "exponential"]) else { return nil }
        let bodyPath = "\(path).\(kind)"
        switch kind {
        case "uniform":
            guard case .sequence(let bounds) = body, bounds.count == 2 else {
                problem(at: body, bodyPath, "expected [min, max], e.g. [50ms, 300ms]")
                return nil
            }
            guard let low = duration(bounds[0], "\(bodyPath)[0]", in: range),
                let high = duration(bounds[1], "\(bodyPath)[1]", in: range)
            else { return nil }
            guard low <= high else {
                problem(at: body, bodyPath, "min is above max")
                return nil
            }
            return .uniform(minMilliseconds: low, maxMilliseconds: high)
        case "exponential":
            return duration(body, bodyPath, in: range).map { .exponential(meanMilliseconds: $0) }
        default:
            return duration(body, bodyPath, in: range).map { .fixed(milliseconds: $0) }
        }
    }

    private mutating func afterReserve(_ node: Node, _ path: String) -> AfterReserve? {
        guard let f = fields(node, path, known: ["purchase", "cancel", "abandon"]) else { return nil }
        let purchase = number(f, "purchase", in: 0...1) ?? 0
        let cancel = number(f, "cancel", in: 0...1) ?? 0
        let abandon = number(f, "abandon", in: 0...1) ?? 0
        guard abs(purchase + cancel + abandon - 1) < 1e-9 else {
            problem(
                at: node, path,
                "purchase + cancel + abandon must add up to 1 (they add up to \(purchase + cancel + abandon))")
            return nil
        }
        return AfterReserve(purchase: purchase, cancel: cancel, abandon: abandon)
    }

    private mutating func retryPolicy(_ node: Node, _ path: String) -> RetryPolicy? {
        guard let f = fields(node, path, known: ["retries", "backoff"]) else { return nil }
        let retries = integer(f, "retries", in: 0...LoadDefaults.maxRetries) ?? 0
        let backoff = duration(f, "backoff", in: 0...60_000) ?? 0
        return RetryPolicy(retries: retries, backoffMilliseconds: backoff)
    }

    private mutating func limits(_ top: Fields) -> RunLimits? {
        var limits = RunLimits(
            maxDurationSeconds: LoadDefaults.maxDurationSeconds,
            clockToleranceMilliseconds: LoadDefaults.clockToleranceMilliseconds)
        guard let node = top.values["limits"] else { return limits }
        guard let f = fields(node, "limits", known: Self.limitFields) else { return nil }
        if let max = duration(f, "maxDuration", in: 100...3_600_000) { limits.maxDurationSeconds = max / 1_000 }
        if let tolerance = duration(f, "clockTolerance", in: 0...10_000) {
            limits.clockToleranceMilliseconds = tolerance
        }
        return limits
    }

    private mutating func threshold(_ node: Node, _ path: String) -> Threshold? {
        guard case .scalar = node, let text = node.string else {
            problem(at: node, path, "expected an expression such as `p99(reserve) < 50ms`")
            return nil
        }
        switch Threshold.parse(text) {
        case .success(let threshold): return threshold
        case .failure(let error):
            problem(at: node, path, error.message)
            return nil
        }
    }
}
