// What is wrong with a scenario file, located precisely enough to fix without guessing.
import Foundation

public struct ScenarioProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// A dotted path such as `users[0].arrival.ramp.to`.
    public var field: String
    public var message: String

    public var description: String {
        "\(file):\(line):\(column): \(field.isEmpty ? "" : "\(field): ")\(message)"
    }
}

/// Every problem of a scenario at once, so one edit fixes them all.
public struct ScenarioError: Error, Sendable, CustomStringConvertible {
    public var problems: [ScenarioProblem]

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
