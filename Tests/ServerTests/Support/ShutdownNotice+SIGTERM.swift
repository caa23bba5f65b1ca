// A test's SIGTERM for the shutdown notice alone: the graceful shutdown of a service group that
// runs only the notice, so a test can see what the server does from that instant.
import Logging
import ServiceLifecycle

@testable import Server

extension ShutdownNotice {
    /// Runs the notice until it has heard the graceful shutdown (triggered until it has: a
    /// trigger before the group runs it is lost) and done what it does then.
    func runAsSIGTERMDoes() async throws {
        let group = ServiceGroup(configuration: .init(services: [self], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        while !draining.isDraining {
            await group.triggerGracefulShutdown()
            try await Task.sleep(for: .milliseconds(5))
        }
        try await running.value
    }
}
