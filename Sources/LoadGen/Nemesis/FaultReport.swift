// What each fault did to the buyers, read from the client history: the requests sent while
// it was open (and until the next fault or the end), how many got an answer and how many
// were left indeterminate, how long after the heal the system answered again, and the outage
// as buyers saw it: the last acknowledged claim before the fault, the first after it, and what
// the claims in between heard. For a failover, when the new primary served.
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
    /// The longest stretch without a new hold acknowledged that overlaps the fault (from its
    /// start to its heal or the promotion): the acknowledgement before it and the one that
    /// ended it (run seconds); nil when there was none.
    public var lastSuccessBeforeSeconds: Double? = nil
    public var firstSuccessAfterSeconds: Double? = nil
    /// Claims answered between those two: refused as nothing applied (503 `unavailable` and
    /// the like, or shed), and left in doubt (an error, a timeout, `outcome_unknown`).
    public var refusedInOutage: Int = 0
    public var inDoubtInOutage: Int = 0
    /// When a new primary served (`kill-primary`, `switchover`), in run seconds.
    public var promotedSeconds: Double? = nil
    /// No new hold was acknowledged after the fault until the run ended.
    public var outageOutlastedRun: Bool = false

    /// The outage buyers saw: the longest stretch without a new hold acknowledged around the
    /// fault.
    public var outageSeconds: Double? {
        guard let before = lastSuccessBeforeSeconds, let after = firstSuccessAfterSeconds else { return nil }
        return after - before
    }

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
            // A new hold is always a commit (a purchase replayed or a cancel found done may be
            // answered from memory): the outage is between reserves acknowledged.
            let committed = records.filter { $0.operation == .reserve && $0.result == .ok }
                .map(\.answeredMicroseconds).sorted()
            // The longest stretch without one, among those that overlap the fault (from its
            // start to its heal or the promotion, whichever is later).
            let faultEnd = max(fault.healedMicroseconds, fault.promotedMicroseconds ?? 0)
            var gap: (from: Int64, to: Int64)?
            for (from, to) in zip(committed, committed.dropFirst())
            where to >= fault.startedMicroseconds && from <= faultEnd && to - from > (gap.map { $0.to - $0.from } ?? -1)
            {
                gap = (from, to)
            }
            // No hold acknowledged after the fault at all: the outage outlasted the run.
            if !committed.contains(where: { $0 > fault.startedMicroseconds }), let last = committed.last {
                gap = (last, Int64.max)
            }
            let lastBefore = gap?.from
            let firstAfter = gap.flatMap { $0.to == Int64.max ? nil : $0.to }
            let between = records.filter {
                $0.answeredMicroseconds > (lastBefore ?? fault.startedMicroseconds)
                    && $0.answeredMicroseconds < (firstAfter ?? Int64.max)
            }
            var report = FaultReport(
                kind: fault.kind, target: fault.target, startSeconds: Double(fault.startedMicroseconds) / 1e6,
                healSeconds: Double(fault.healedMicroseconds) / 1e6, requests: inWindow.count,
                answered: inWindow.count { !$0.result.isIndeterminate },
                indeterminate: inWindow.count { $0.result.isIndeterminate },
                recoverySeconds: firstAnswer.map { Double(max(0, $0 - fault.healedMicroseconds)) / 1e6 },
                problem: fault.problem)
            report.lastSuccessBeforeSeconds = lastBefore.map { Double($0) / 1e6 }
            report.firstSuccessAfterSeconds = firstAfter.map { Double($0) / 1e6 }
            report.refusedInOutage = between.count { $0.result == .failed || $0.result == .rejected(.overloaded) }
            report.inDoubtInOutage = between.count { $0.result.isIndeterminate }
            report.promotedSeconds = fault.promotedMicroseconds.map { Double($0) / 1e6 }
            report.outageOutlastedRun = gap?.to == Int64.max
            return report
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
        if let outage = outageSeconds, let before = lastSuccessBeforeSeconds, let after = firstSuccessAfterSeconds {
            text +=
                "; outage \(String(format: "%.2f", outage)) s (holds acknowledged at \(String(format: "%.2f", before)) s "
                + "and again at \(String(format: "%.2f", after)) s; between: \(refusedInOutage) refused as nothing applied, "
                + "\(inDoubtInOutage) in doubt)"
        }
        if outageOutlastedRun, let before = lastSuccessBeforeSeconds {
            text +=
                "; no hold acknowledged after it (the last at \(String(format: "%.2f", before)) s; then \(refusedInOutage) "
                + "refused as nothing applied, \(inDoubtInOutage) in doubt)"
        }
        if let promoted = promotedSeconds {
            text += "; new primary serving at \(String(format: "%.2f", promoted)) s"
            if let after = firstSuccessAfterSeconds {
                text += ", the outage ended \(String(format: "%.2f", after - promoted)) s after it"
            }
        }
        if let problem { text += " (\(problem))" }
        return text
    }
}
