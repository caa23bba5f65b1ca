// Once SIGTERM's graceful shutdown begins, every answer says `Connection: close`: a keep-alive
// client that was not told sent its next request on a connection the server was closing, and
// lost it unanswered (a POST it cannot know was applied or not).
import Engine
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import Server

@Suite struct DrainingTests {
    @Test func answersCloseTheirConnectionOnceTheShutdownBegan() async throws {
        let fixture = try await ServerFixture("draining_close")
        let (application, parts) = try await buildApplication(fixture.configuration, clock: fixture.clock)
        try await application.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { #expect($0.headers[.connection] == nil) }
            // As SIGTERM does: the notice hears of the graceful shutdown and sets the flag.
            try await ShutdownNotice(logger: Logger(label: "test"), draining: parts.draining, sockets: nil)
                .runAsSIGTERMDoes()
            for (uri, method) in [("/health", HTTPRequest.Method.get), ("/v1/drops/1", .get), ("/nowhere", .get)] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.headers[.connection] == "close", "\(uri): \(response.status)")
                }
            }
            let headers = try await fixture.headers(7)
            try await client.execute(uri: "/v1/drops/1/reserve", method: .post, headers: headers) { response in
                #expect(response.headers[.connection] == "close", "reserve: \(response.status)")
            }
        }
    }
}
