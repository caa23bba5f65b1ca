// Who is calling: the verified subject of a bearer token. There is no anonymous or default
// caller; routes that need one get it from a verified token or answer 401.
import Engine

public struct Caller: Sendable, Equatable {
    public enum Role: String, Sendable, Codable, CaseIterable {
        case user, admin
    }

    public let userID: UserID
    public let name: String
    public let role: Role

    public init(userID: UserID, name: String, role: Role) {
        self.userID = userID
        self.name = name
        self.role = role
    }
}
