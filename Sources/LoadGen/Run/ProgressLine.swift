// The live line: elapsed, users, sent, answers by kind, stock left, rate, and the last second's
// p99 both ways: from the intended send (what a buyer felt) and from the actual send (the
// network and the server), with the sends the harness itself held late: when the two p99s
// part and late sends grow, the queue is the harness's, not the server's. Once the load is
// over, the units still held while the run waits for them to end before checking.
import Engine
import Foundation

extension ProgressTick {
    public func line(strategy: Strategy) -> String {
        let c = counters
        var line = String(
            format: "%@ %6.1fs  users %d  sent %d  ok %d  rejected %d  shed %d  errors %d",
            strategy.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0), elapsedSeconds,
            c.arrived, c.sent, c.ok, c.rejected, c.shed, c.errors)
        // What most errors were, so a run failing for a reason the operator can fix says so
        // while it goes (a rate limit, a wrong address).
        if let cause = c.commonestError { line += " (most \(cause))" }
        line += String(format: "  stock left %@  %.0f req/s", availableStock.map(String.init) ?? "?", sentPerSecond)
        if let p99 = lastSecondP99 {
            line += String(
                format: "  p99 %@ (from send %@)", Self.duration(p99.fromIntended), Self.duration(p99.fromSend))
        }
        line += "  late \(c.late)"
        if draining {
            let held = drops.map { String($0.reduce(0) { $0 + $1.reserved }) } ?? "?"
            line += "  draining: \(held) held"
        }
        return line
    }

    static func duration(_ milliseconds: Double) -> String {
        milliseconds >= 1_000 ? String(format: "%.2fs", milliseconds / 1_000) : String(format: "%.1fms", milliseconds)
    }
}
