// A server's address read back as a URL: an IPv6 literal needs its brackets.
import Engine
import Foundation
import Testing

@Suite struct HTTPAddressTests {
    @Test func anIPv6HostIsBracketed() {
        #expect(HTTPAddress.url(host: "::1", port: 8080) == "http://[::1]:8080")
        #expect(HTTPAddress.url(host: "127.0.0.1", port: 80) == "http://127.0.0.1:80")
        #expect(HTTPAddress.url(host: "localhost", port: 1) == "http://localhost:1")
        // Foundation reads it back with the host and the port apart.
        let url = URL(string: HTTPAddress.url(host: "::1", port: 8080))
        #expect(url?.port == 8080)
    }
}
