// At most one `stock.changed` per drop per interval under load, always ending on the latest
// value: a change inside the interval is held (replacing any held before it) and sent when the
// interval ends. A value, driven with explicit times, so it is tested without waiting.
import Engine

struct StockCoalescer: Sendable {
    let intervalSeconds: Double
    private var lastSentAt: [DropID: Double] = [:]
    private(set) var held: [DropID: LiveEvent] = [:]

    init(intervalSeconds: Double) {
        self.intervalSeconds = intervalSeconds
    }

    /// The event to send now, or nil when it is held for the end of the drop's interval.
    mutating func offer(_ event: LiveEvent, now: Double) -> LiveEvent? {
        guard let drop = event.dropId else { return event }
        if let last = lastSentAt[drop], now - last < intervalSeconds {
            held[drop] = event
            return nil
        }
        held[drop] = nil
        lastSentAt[drop] = now
        return event
    }

    /// Held events whose interval has ended, to send now.
    mutating func due(now: Double) -> [LiveEvent] {
        var ready: [LiveEvent] = []
        for (drop, event) in held where now - (lastSentAt[drop] ?? 0) >= intervalSeconds {
            ready.append(event)
            lastSentAt[drop] = now
        }
        for event in ready { held[event.dropId!] = nil }
        return ready
    }

    /// When the earliest held event becomes due, if any is held.
    func nextDue() -> Double? {
        held.keys.compactMap { lastSentAt[$0].map { $0 + intervalSeconds } }.min()
    }
}
