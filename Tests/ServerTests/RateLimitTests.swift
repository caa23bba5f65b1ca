// Token buckets per user and per client address, with time driven by a manual clock.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LoadGen
import Testing

@testable import Server

@Suite struct RateLimitTests {
    @Test func aBucketRefillsAtItsRateUpToItsBurst() {
        let start = Date(timeIntervalSince1970: 1_000)
        var bucket = TokenBucket(burst: 2, now: start)
        #expect(bucket.take(now: start, rate: 4, burst: 2) == nil)
        #expect(bucket.take(now: start, rate: 4, burst: 2) == nil)
        #expect(bucket.take(now: start, rate: 4, burst: 2) == 0.25)
        #expect(bucket.take(now: start.addingTimeInterval(0.25), rate: 4, burst: 2) == nil)
        // Idle for a minute: back to the burst, never past it.
        let later = start.addingTimeInterval(60)
        #expect(bucket.isIdle(now: later, rate: 4, burst: 2))
        #expect(bucket.take(now: later, rate: 4, burst: 2) == nil)
        #expect(bucket.take(now: later, rate: 4, burst: 2) == nil)
        #expect(bucket.take(now: later, rate: 4, burst: 2) != nil)
    }

    @Test func theLimiterForgetsOnlyIdleBuckets() {
        let clock = ManualClock()
        let limiter = RateLimiter(limit: RateLimit(requestsPerSecond: 1, burst: 1), clock: clock, maxBuckets: 3)
        #expect(limiter.admit("a") == nil)
        #expect(limiter.admit("b") == nil)
        #expect(limiter.admit("c") == nil)
        #expect(limiter.admit("a") == 1)
        clock.advance(by: 5)
        #expect(limiter.admit("c") == nil)  // c is active again; a and b are idle
        #expect(limiter.admit("d") == nil)
        #expect(limiter.bucketCount == 2)
        #expect(limiter.admit("c") == 1)  // c's bucket survived the pruning
    }

    @Test func usersPastTheirLimitGet429WithRetryAfter() async throws {
        let clock = ManualClock(start: Date())
        let fixture = try await ServerFixture(
            "user_limit", userRateLimit: RateLimit(requestsPerSecond: 1, burst: 2), clock: clock)
        try await fixture.application().test(.router) { client in
            let alice = try await fixture.headers(10)
            let bob = try await fixture.headers(11)
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/reservations/me", method: .get, headers: alice) {
                    #expect($0.status == .ok)
                }
            }
            try await client.execute(uri: "/v1/reservations/me", method: .get, headers: alice) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.errorCode == "rate_limited")
                #expect(response.headers[.retryAfter] == "1")
            }
            // Another user is not slowed by Alice; probes are never limited.
            try await client.execute(uri: "/v1/reservations/me", method: .get, headers: bob) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/health", method: .get, headers: alice) { #expect($0.status == .ok) }
            clock.advance(by: 1)
            try await client.execute(uri: "/v1/reservations/me", method: .get, headers: alice) {
                #expect($0.status == .ok)
            }
        }
    }

    @Test func addressesPastTheirLimitGet429EvenWithoutAToken() async throws {
        let clock = ManualClock(start: Date())
        let fixture = try await ServerFixture(
            "address_limit", addressRateLimit: RateLimit(requestsPerSecond: 1, burst: 3), clock: clock)
        try await fixture.application().test(.router) { client in
            for _ in 0..<3 { try await client.execute(uri: "/v1/drops", method: .get) { #expect($0.status == .ok) } }
            try await client.execute(uri: "/v1/drops/1/reserve", method: .post) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "1")
            }
        }
    }

    @Test func forwardedForIsTrustedOnlyFromConfiguredProxies() throws {
        let proxies = try TrustedProxies("10.0.0.0/8, 192.168.1.5, fd00::/8")
        // A direct client cannot claim another address.
        #expect(proxies.client(peer: "203.0.113.9", forwardedFor: "1.2.3.4") == "203.0.113.9")
        // Through a proxy: the nearest address that is not itself a proxy.
        #expect(proxies.client(peer: "10.1.2.3", forwardedFor: "1.2.3.4, 198.51.100.7") == "198.51.100.7")
        #expect(proxies.client(peer: "192.168.1.5", forwardedFor: "198.51.100.7, 10.0.0.2") == "198.51.100.7")
        #expect(proxies.client(peer: "fd00::1", forwardedFor: "2001:db8::5") == "2001:db8::5")
        #expect(proxies.client(peer: "192.168.1.6", forwardedFor: "1.2.3.4") == "192.168.1.6")
        // Dual-stack sockets show IPv4 peers as IPv4-mapped IPv6; proxies write ports and brackets.
        #expect(proxies.client(peer: "::ffff:10.0.0.5", forwardedFor: "198.51.100.7") == "198.51.100.7")
        #expect(proxies.client(peer: "10.0.0.5", forwardedFor: "198.51.100.7:41234") == "198.51.100.7")
        #expect(proxies.client(peer: "10.0.0.5", forwardedFor: "[2001:db8::9]:443") == "2001:db8::9")
        // Garbage in the header never becomes a bucket key.
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: "not-an-ip") == "10.0.0.1")
        #expect(throws: ServerConfigurationError.self) { try TrustedProxies("10.0.0.0/33") }
        #expect(throws: ServerConfigurationError.self) { try TrustedProxies("proxy.internal") }
    }
}

extension RateLimitTests {
    @Test func aFloodOfActiveKeysResetsTheLimiterInsteadOfGrowingIt() {
        let clock = ManualClock()
        let limiter = RateLimiter(limit: RateLimit(requestsPerSecond: 1, burst: 1), clock: clock, maxBuckets: 3)
        for key in ["a", "b", "c"] { #expect(limiter.admit(key) == nil) }
        #expect(limiter.admit("d") == nil)
        #expect(limiter.bucketCount == 1)
    }
}

@Suite struct TokenAuthorityTests {
    /// A cached token is still refused once it expires.
    @Test func aCachedTokenExpiresOnTime() async throws {
        let clock = ManualClock(start: Date())
        let authority = try await TokenAuthority(secret: ServerFixture.secret, clock: clock)
        let token = try await TokenMinter.forTests().mint(
            Caller(userID: 8, name: "eight", role: .user), lifetimeSeconds: 60, issuedAt: clock.now())
        #expect(try await authority.verify(token).userID == 8)
        #expect(try await authority.verify(token).userID == 8)
        clock.advance(by: 61)
        await #expect(throws: TokenError.self) { _ = try await authority.verify(token) }
    }

    @Test func shortSecretsAreRefused() async {
        await #expect(throws: TokenError.self) {
            _ = try await TokenAuthority(secret: String(repeating: "s", count: 31))
        }
    }
}
