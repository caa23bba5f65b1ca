// A run's errors say why: each HTTP answer that is not about the drop keeps its status, code and
// message as its cause, a rate limit's 429 is known to have applied nothing, the tally stays
// bounded whatever a target sends, shards' tallies add up, and the report leads with a rate
// limit that decided the run.
import Engine
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import LoadGen

@Suite struct ErrorCauseTests {
    static func answer(_ status: Int, _ body: String, _ operation: OperationKind = .reserve) -> Answer {
        HTTPTarget.answer(operation, status: status, body: ByteBuffer(string: body), retryAfterSeconds: 1)
    }

    static func errorBody(_ code: String, _ message: String) -> String {
        #"{"error":{"code":"\#(code)","message":"\#(message)"}}"#
    }

    @Test func anHTTPAnswerThatIsNotAboutTheDropKeepsItsCause() {
        let limited = Self.answer(429, Self.errorBody("rate_limited", "more than 500 requests/s per client address"))
        // Answered by the limiter before any route: nothing applied, so not indeterminate.
        #expect(limited.result == .failed)
        #expect(limited.cause == ErrorCause("429 rate_limited", "more than 500 requests/s per client address"))

        let unknown = Self.answer(503, Self.errorBody("outcome_unknown", "the answer was lost"), .purchase)
        #expect(unknown.result == .error)
        #expect(unknown.cause?.label == "503 outcome_unknown")

        let unavailable = Self.answer(503, Self.errorBody("unavailable", "database down"))
        #expect(unavailable.result == .failed)
        #expect(unavailable.cause?.label == "503 unavailable")

        let internalError = Self.answer(500, "oops")
        #expect(internalError.result == .error)
        #expect(internalError.cause == ErrorCause("HTTP 500", ""))

        let unreadable = Self.answer(201, "not json")
        #expect(unreadable.result == .error)
        #expect(unreadable.cause?.label == "unreadable 201")
    }

    @Test func aConnectFailureIsSaidInTheSystemsWords() {
        #expect(HTTPLane.connectFailure(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == "Connection refused")
        #expect(HTTPLane.connectFailure(ChannelError.connectTimeout(.seconds(1))) == "Connect timeout (1 s)")
    }

    @Test func answersAboutTheDropHaveNoCause() {
        let soldOut = Self.answer(409, Self.errorBody("sold_out", "no units left"))
        #expect(soldOut.result == .rejected(.soldOut))
        #expect(soldOut.cause == nil)
        let shed = Self.answer(503, Self.errorBody("overloaded", "past the latency target"))
        #expect(shed.result == .rejected(.overloaded))
        #expect(shed.cause == nil)
        #expect(shed.retryAfterMilliseconds == 1_000)
        // The code is found without the fast path's prefix too (another key first).
        let reordered = Self.answer(409, #"{"error":{"message":"no units left","code":"sold_out"}}"#)
        #expect(reordered.result == .rejected(.soldOut))
    }

    @Test func theLiveCountersTallyFailuresByCause() {
        let live = LiveCounters()
        live.record(Answer(.ok, reservationID: 1), .reserve)
        #expect(live.reading.commonestError == nil)
        live.record(.failure(.failed, ErrorCause("429 rate_limited", "first")), .reserve)
        live.record(.failure(.failed, ErrorCause("429 rate_limited", "second")), .purchase)
        live.record(.failure(.timeout, ErrorCause("timeout", "no answer within 10000 ms")), .cancel)
        // A failure without a cause (a target that gives none) is counted by its result.
        live.record(Answer(.error), .reserve)
        #expect(live.reading.errors == 4)
        #expect(live.reading.commonestError == "429 rate_limited")
        let causes = live.errorCauses
        #expect(causes.map(\.cause) == ["429 rate_limited", "error", "timeout"])
        #expect(causes[0].count == 2)
        #expect(causes[0].byOperation == ["reserve": 1, "purchase": 1])
        #expect(causes[0].example == "first")
        #expect(causes[0].hint?.contains("--no-rate-limit") == true)
        #expect(causes[1].hint == nil)
    }

    @Test func theTallyIsBoundedAndShardsAddUp() {
        var tally = ErrorTally()
        for index in 0..<(ErrorTally.limit + 10) {
            tally.add(ErrorCause("HTTP \(index)", "message \(index)"), .reserve)
        }
        tally.add(ErrorCause("HTTP 0"), .cancel)
        #expect(tally.sorted.count == ErrorTally.limit + 1)
        #expect(tally.sorted.first { $0.cause == "other" }?.count == 10)
        #expect(tally.sorted.first { $0.cause == "HTTP 0" }?.byOperation == ["reserve": 1, "cancel": 1])

        let merged = ErrorTally.merged([
            [ErrorCauseCount(cause: "timeout", count: 2, byOperation: ["reserve": 2], example: "a", hint: nil)],
            [
                ErrorCauseCount(cause: "timeout", count: 3, byOperation: ["reserve": 1, "purchase": 2], example: "b"),
                ErrorCauseCount(cause: "connection lost", count: 1, byOperation: ["cancel": 1], example: "c"),
            ],
        ])
        #expect(merged.map(\.cause) == ["timeout", "connection lost"])
        #expect(merged[0].count == 5)
        #expect(merged[0].byOperation == ["reserve": 3, "purchase": 2])
        #expect(merged[0].example == "a")
        #expect(merged[0].hint == ErrorCause.hints["timeout"])
    }

    @Test func aRateLimitLeadsTheReportAndEveryCauseIsListed() {
        let causes = [
            ErrorCauseCount(
                cause: ErrorCause.rateLimited, count: 7, byOperation: ["reserve": 6, "purchase": 1],
                example: "more than 500 requests/s per client address", hint: ErrorCause.hints[ErrorCause.rateLimited]),
            ErrorCauseCount(cause: "timeout", count: 1, byOperation: ["cancel": 1], example: "", hint: nil),
            // A balancer's 429 has no body of ours: a rate limit too, counted beside the server's.
            ErrorCauseCount(
                cause: ErrorCause.bareRateLimited, count: 2, byOperation: ["reserve": 2], example: "",
                hint: ErrorCause.hints[ErrorCause.bareRateLimited]),
        ]
        var run = StrategyResult.empty(records: [])
        run.errorCauses = causes
        let strategy = StrategyReport(run, thresholds: [])
        let report = RunReport(
            scenario: "limited", seed: 1, startedAt: Date(), pass: false, exitCode: ExitStatus.thresholdMissed,
            target: "http://127.0.0.1:1", strategies: [strategy], comparison: nil)
        #expect(report.limitedLines.first?.hasPrefix("RATE-LIMITED (actor): a rate limit refused 9 requests") == true)
        #expect(report.limitedLines.contains { $0.contains("--no-rate-limit") })
        #expect(report.limitedLines.contains { $0.contains("balancer or proxy") })
        #expect(report.limitedLines.contains("    2 × HTTP 429 (reserve 2)"))
        #expect(
            report.problemLines.contains(
                "actor: errors: 7 × 429 rate_limited (reserve 6, purchase 1), e.g. more than 500 requests/s per client address"
            ))
        #expect(report.problemLines.contains("actor: errors: 1 × timeout (cancel 1)"))
        #expect(report.markdown.contains("| 429 rate_limited | 7 | purchase 1, reserve 6 |"))
        #expect(report.markdown.contains("**RATE-LIMITED (actor)"))
        #expect(report.html.contains("<h3>Errors by cause</h3>"))
        #expect(report.html.contains("<p><strong>RATE-LIMITED (actor)"))
    }
}
