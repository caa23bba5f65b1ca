// The live line: elapsed, sent, ok, rejected, errors, stock left, rate.
import Engine
import Foundation

extension ProgressTick {
    public func line(strategy: Strategy) -> String {
        let c = counters
        return String(
            format: "%@ %6.1fs  users %d  sent %d  ok %d  rejected %d  errors %d  stock left %d  %.0f req/s",
            strategy.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0), elapsedSeconds,
            c.arrived, c.sent, c.ok, c.rejected, c.errors, availableStock, sentPerSecond)
    }
}
