// When to give a drop back. After a failover the instance the balancer hashes a drop to is
// often not its owner (it was down when another took the drop over), and every claim then
// takes two hops for as long as the owner lives. An owner that sees a drop's claims arrive
// only forwarded, all from one instance, for a while, hands the lease to that instance.
// Pure: the middleware feeds it each claim the owner answered, with the time.
import Engine

struct HandBackPolicy {
    /// Forwarded claims from one instance, and none from anywhere else, within one window.
    let claimsToHandBack: Int
    let windowSeconds: Double
    /// A drop handed back is not handed back again this soon (no flapping between two
    /// instances that both receive its claims).
    let cooldownSeconds: Double

    private struct Window {
        var startedAt: Double
        var sender: String?
        var count = 0
        /// A claim came directly, or from a second instance: the balancer does send it here.
        var mixed = false
    }
    private var windows: [DropID: Window] = [:]
    private var cooling: [DropID: Double] = [:]

    init(
        claimsToHandBack: Int = ServerDefaults.handBackForwardedClaims,
        windowSeconds: Double = Double(ServerDefaults.handBackWindowMilliseconds) / 1000,
        cooldownSeconds: Double = Double(ServerDefaults.handBackCooldownMilliseconds) / 1000
    ) {
        self.claimsToHandBack = claimsToHandBack
        self.windowSeconds = windowSeconds
        self.cooldownSeconds = cooldownSeconds
    }

    /// A claim on `drop` this owner answered, forwarded by `sender` (nil: it came directly).
    /// Returns the instance to hand the drop to, once.
    mutating func answered(_ drop: DropID, forwardedBy sender: String?, now: Double) -> String? {
        if let until = cooling[drop] {
            guard now >= until else { return nil }
            cooling[drop] = nil
        }
        // Bounded: windows of drops nobody claims any more are forgotten all at once.
        if windows.count >= ServerDefaults.handBackTrackedDrops, windows[drop] == nil { windows.removeAll() }
        var window = windows[drop].flatMap { now - $0.startedAt <= windowSeconds ? $0 : nil } ?? Window(startedAt: now)
        if let sender, window.sender == nil || window.sender == sender {
            window.sender = sender
        } else {
            window.mixed = true
        }
        window.count += 1
        guard !window.mixed, window.count >= claimsToHandBack, let target = window.sender else {
            windows[drop] = window
            return nil
        }
        windows[drop] = nil
        cooling[drop] = now + cooldownSeconds
        return target
    }
}
