// When to give a drop back. After a failover the instance the balancer hashes a drop to is
// often not its owner (it was down when another took the drop over), and every claim then
// takes two hops for as long as the owner lives. An owner that sees a drop's claims arrive
// only forwarded, all from one instance, for a while, hands the lease to that instance.
// Pure: the middleware feeds it each claim the owner answered, with the time.
import Engine

struct HandBackPolicy {
    /// Forwarded claims from one instance, and none from anywhere else, at least this many...
    let claimsToHandBack: Int
    /// ...over at least this long: a burst whose claims reach other instances for a moment (a
    /// balancer's retry, buyers spread over instances) must not move the drop, only a load
    /// that has moved does. Handing a drop over refuses its claims for a moment
    /// (`owner_changing`), so a flap costs buyers answers.
    let sustainedSeconds: Double
    /// A pause longer than this between the drop's claims ends the streak.
    let gapSeconds: Double
    /// A drop handed back is not handed back again this soon (no flapping between two
    /// instances that both receive its claims).
    let cooldownSeconds: Double

    private struct Streak {
        var sender: String
        var since: Double
        var last: Double
        var count: Int
    }
    private var streaks: [DropID: Streak] = [:]
    private var cooling: [DropID: Double] = [:]

    init(
        claimsToHandBack: Int = ServerDefaults.handBackForwardedClaims,
        sustainedSeconds: Double = Double(ServerDefaults.handBackSustainedMilliseconds) / 1000,
        gapSeconds: Double = Double(ServerDefaults.handBackGapMilliseconds) / 1000,
        cooldownSeconds: Double = Double(ServerDefaults.handBackCooldownMilliseconds) / 1000
    ) {
        self.claimsToHandBack = claimsToHandBack
        self.sustainedSeconds = sustainedSeconds
        self.gapSeconds = gapSeconds
        self.cooldownSeconds = cooldownSeconds
    }

    /// A claim on `drop` this owner answered, forwarded by `sender` (nil: it came directly).
    /// Returns the instance to hand the drop to, once.
    mutating func answered(_ drop: DropID, forwardedBy sender: String?, now: Double) -> String? {
        if let until = cooling[drop] {
            guard now >= until else { return nil }
            cooling[drop] = nil
        }
        // A claim that came directly: the balancer does send the drop's claims here.
        guard let sender else {
            streaks[drop] = nil
            return nil
        }
        // Bounded: streaks of drops nobody claims any more are forgotten all at once.
        if streaks.count >= ServerDefaults.handBackTrackedDrops, streaks[drop] == nil { streaks.removeAll() }
        // Another sender, or a pause, starts the streak again.
        var streak =
            streaks[drop].flatMap { $0.sender == sender && now - $0.last <= gapSeconds ? $0 : nil }
            ?? Streak(sender: sender, since: now, last: now, count: 0)
        streak.count += 1
        streak.last = now
        guard streak.count >= claimsToHandBack, now - streak.since >= sustainedSeconds else {
            streaks[drop] = streak
            return nil
        }
        streaks[drop] = nil
        cooling[drop] = now + cooldownSeconds
        return sender
    }
}
