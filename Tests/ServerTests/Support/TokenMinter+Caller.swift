// The server's tests mint with the one minter (LoadGen's `TokenMinter`), naming a `Caller`.
import Foundation
import LoadGen
import Server

extension TokenMinter {
    /// A minter with the tests' shared secret.
    static func forTests(secret: String = ServerFixture.secret) async -> TokenMinter {
        await TokenMinter(secret: secret, lifetimeSeconds: TimeInterval(ServerDefaults.tokenLifetimeSeconds))
    }

    func mint(_ caller: Caller, lifetimeSeconds: Int? = nil, issuedAt: Date = Date()) async throws -> String {
        try await mint(
            user: caller.userID, name: caller.name, role: caller.role.rawValue,
            lifetimeSeconds: lifetimeSeconds.map(TimeInterval.init), issuedAt: issuedAt)
    }
}
