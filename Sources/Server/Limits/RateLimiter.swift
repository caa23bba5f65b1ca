// Token buckets by key (a user id or a client address). Memory follows active clients: past
// `maxBuckets` the full (idle) buckets are forgotten, which is exact, since a full bucket
// and a missing one admit the same requests; if every bucket is active, all are forgotten.
import Engine
import Foundation
import Synchronization

public struct RateLimit: Sendable, Equatable {
    public var requestsPerSecond: Double
    public var burst: Double

    /// A rate at or below zero is taken as one request per thousand seconds (turn a limit off
    /// by passing no RateLimit); a zero rate would divide by zero computing Retry-After.
    public init(requestsPerSecond: Double, burst: Double) {
        self.requestsPerSecond = max(0.001, requestsPerSecond)
        self.burst = max(1, burst)
    }
}

final class RateLimiter: Sendable {
    let limit: RateLimit
    private let clock: any WallClock
    private let maxBuckets: Int
    private let buckets = Mutex<[String: TokenBucket]>([:])

    init(limit: RateLimit, clock: any WallClock, maxBuckets: Int = ServerDefaults.maxRateLimitBuckets) {
        self.limit = limit
        self.clock = clock
        self.maxBuckets = maxBuckets
    }

    /// nil when admitted; otherwise the whole seconds to wait (for Retry-After).
    func admit(_ key: String) -> Int? {
        let now = clock.now()
        let wait: TimeInterval? = buckets.withLock { buckets in
            if buckets.count >= maxBuckets, buckets[key] == nil {
                buckets = buckets.filter {
                    !$0.value.isIdle(now: now, rate: limit.requestsPerSecond, burst: limit.burst)
                }
                // Still full of active clients (a flood of distinct addresses): forget them all
                // rather than scan the map on every request. Limits restart from full buckets.
                if buckets.count >= maxBuckets { buckets.removeAll(keepingCapacity: true) }
            }
            var bucket = buckets[key] ?? TokenBucket(burst: limit.burst, now: now)
            let wait = bucket.take(now: now, rate: limit.requestsPerSecond, burst: limit.burst)
            buckets[key] = bucket
            return wait
        }
        return wait.map { max(1, Int($0.rounded(.up))) }
    }

    var bucketCount: Int { buckets.withLock { $0.count } }
}
