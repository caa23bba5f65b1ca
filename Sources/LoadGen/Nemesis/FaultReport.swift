// What each fault did to the buyers, read from the client history: the requests sent while
// it was open (and until the next fault or the end), how many got an answer and how many
// were left indeterminate, and how long after the heal the system answered again.
import Engine

public struct FaultReport: Sendable, Codable, Equatable {
    public var kind: FaultKind
    public var target: String
    public var startSeconds: Double
    public var healSeconds: Double
    /// Requests sent from the fault's start until the next fault's (or the end of the load).
    public var requests: Int
    /// Of those, answered: ok, a rejection, or a 503 that applied nothing.
    public var answered: Int
    /// Of those, an error, a timeout or a reset: may or may not have taken effect.
    public var indeterminate: Int
    /// From the heal to the first answer about the drop (ok or a rejection, not a failure) to
    /// a request sent after it; nil when no request was sent after the heal.
    public var recoverySeconds: Double?
    public var problem: String?

    /// One report per fault, in order. Records are the run's whole history.
    public static func reports(_ faults: [FaultRecord], history records: [OperationRecord]) -> [FaultReport] {
        let bySent = records.sorted { $0.sentMicroseconds < $1.sentMicroseconds }
        return faults.enumerated().map { index, fault in
            let windowEnd = index + 1 < faults.count ? faults[index + 1].startedMicroseconds : Int64.max
            let inWindow = bySent.filter {
                $0.sentMicroseconds >= fault.startedMicroseconds && $0.sentMicroseconds < windowEnd
            }
            let firstAnswer = bySent.lazy
                .filter { $0.sentMicroseconds >= fault.healedMicroseconds && !$0.result.isFailure }
                .map(\.answeredMicroseconds)
                .min()
            return FaultReport(
                kind: fault.kind, target: fault.target, startSeconds: Double(fault.startedMicroseconds) / 1e6,
                healSeconds: Double(fault.healedMicroseconds) / 1e6, requests: inWindow.count,
                answered: inWindow.count { !$0.result.isIndeterminate },
                indeterminate: inWindow.count { $0.result.isIndeterminate },
                recoverySeconds: firstAnswer.map { Double(max(0, $0 - fault.healedMicroseconds)) / 1e6 },
                problem: fault.problem)
        }
    }
}

extension FaultReport {
    /// `kill-server s2 at 5.12 s, healed at 7.40 s: 812 requests, 790 answered, 22 indeterminate,
    /// answering again 0.31 s after the heal`.
    public var line: String {
        var text =
            "\(kind.rawValue) \(target) at \(String(format: "%.2f", startSeconds)) s, healed at "
            + "\(String(format: "%.2f", healSeconds)) s: \(requests) requests, \(answered) answered, "
            + "\(indeterminate) indeterminate, "
        text +=
            recoverySeconds.map { "answering again \(String(format: "%.2f", $0)) s after the heal" }
            ?? "no request after the heal"
        if let problem { text += " (\(problem))" }
        return text
    }
}
