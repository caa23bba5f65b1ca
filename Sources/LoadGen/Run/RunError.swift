// Why a run could not start: a usage mistake (exit 64) or a target that is not there (69).
public enum RunError: Error, Sendable, CustomStringConvertible {
    case usage(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .usage(let message), .unavailable(let message): message
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage: ExitStatus.usage
        case .unavailable: ExitStatus.unavailable
        }
    }
}
