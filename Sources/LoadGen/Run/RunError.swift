// Why a run could not start: a usage mistake (exit 64), a scenario the target refuses (65, as
// a scenario file's own problems), or a target that is not there (69).
public enum RunError: Error, Sendable, CustomStringConvertible {
    case usage(String)
    /// The scenario is valid as a file, but the target refuses it (a server's own rules).
    case refusedScenario(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .usage(let message), .refusedScenario(let message), .unavailable(let message): message
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage: ExitStatus.usage
        case .refusedScenario: ExitStatus.badScenario
        case .unavailable: ExitStatus.unavailable
        }
    }
}
