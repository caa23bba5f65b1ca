// A token bucket as a value: `rate` tokens a second up to `burst`; a request takes one.
// Time is a parameter, so the arithmetic is tested without waiting.
import Foundation

struct TokenBucket: Sendable, Equatable {
    private(set) var tokens: Double
    private(set) var updatedAt: Date

    init(burst: Double, now: Date) {
        tokens = burst
        updatedAt = now
    }

    /// Takes a token: nil when allowed, otherwise the seconds until one will be there.
    mutating func take(now: Date, rate: Double, burst: Double) -> TimeInterval? {
        let elapsed = max(0, now.timeIntervalSince(updatedAt))
        tokens = min(burst, tokens + elapsed * rate)
        updatedAt = max(updatedAt, now)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return (1 - tokens) / rate
    }

    /// Whether the bucket would be full by `now` (forgetting it changes nothing).
    func isIdle(now: Date, rate: Double, burst: Double) -> Bool {
        tokens + now.timeIntervalSince(updatedAt) * rate >= burst
    }
}
