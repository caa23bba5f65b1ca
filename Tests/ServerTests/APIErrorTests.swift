// The error body is written by hand for speed; it must still be JSON that says exactly the
// code and message, whatever the message holds.
import Engine
import Foundation
import NIOCore
import Testing

@testable import LoadGen
@testable import Server

@Suite struct APIErrorTests {
    @Test(arguments: [
        "plain", #"quotes " and \ backslash"#, "line\nbreak\ttab\r", "nul \u{0} bell \u{7} esc \u{1B}",
        "unicode ✓ 日本 🎉", "",
    ])
    func theBodyRoundTripsAnyMessage(message: String) throws {
        for code in APIError.Code.allCases {
            let body = APIError(code, message).jsonBody
            let decoded = try JSONDecoder().decode(ErrorBody.self, from: Data(body.utf8))
            #expect(decoded.error.code == code.rawValue)
            #expect(decoded.error.message == message)
        }
    }

    /// The load generator reads codes without a JSON decoder; it must read the server's bodies.
    @Test func theLoadGeneratorReadsEveryCodeTheServerWrites() {
        for code in APIError.Code.allCases {
            #expect(
                HTTPTarget.errorCode(ByteBuffer(string: APIError(code, #"a "quoted" message"#).jsonBody))
                    == code.rawValue)
        }
        #expect(HTTPTarget.errorCode(ByteBuffer(string: #"{"error": {"code": "sold_out"}}"#)) == nil)
    }

    @Test func everyCodeHasOneStatusAndFailuresAskForARetryLater() {
        for code in APIError.Code.allCases {
            let error = APIError(code, "x")
            #expect((error.retryAfterSeconds != nil) == (code.status == .serviceUnavailable), "\(code)")
            #expect(!code.meaning.isEmpty)
        }
        // The engine's rejection codes are the API's, string for string.
        for rejection in RejectionCode.allCases {
            #expect(APIError.Code(rawValue: rejection.rawValue) != nil, "\(rejection)")
        }
    }

    /// A failure says whether anything was applied: a lost answer is `outcome_unknown`, which the
    /// load generator records as indeterminate; a refusal that applied nothing is `unavailable`.
    @Test func aLostAnswerIsNotNothingApplied() {
        let lost = APIError(engineError: EngineError(.outcomeUnknown, "connection lost after sending"))
        #expect(lost.code == .outcomeUnknown && lost.status == .serviceUnavailable && lost.retryAfterSeconds != nil)
        #expect(!HTTPTarget.nothingApplied.contains(lost.code.rawValue))
        for code in [EngineError.Code.batchFailed, .storeUnavailable] {
            #expect(APIError(engineError: EngineError(code, "refused")).code == .unavailable)
        }
        #expect(APIError(engineError: EngineError(.shuttingDown, "draining")).code == .shuttingDown)
        // A claim for a drop whose lease is changing hands applied nothing anywhere.
        for code in [EngineError.Code.notOwner, .fenced] {
            #expect(APIError(engineError: EngineError(code, "moved", owner: "s2")).code == .ownerChanging)
        }
        #expect(APIError(engineError: EngineError(.leased, "owned by s1", owner: "s1")).code == .unavailable)
        #expect(
            APIError(engineError: EngineError(EngineError.Code(rawValue: "new_in_a_later_build"), "?")).code
                == .outcomeUnknown,
            "a failure not known to have applied nothing may have applied")
        #expect(
            HTTPTarget.nothingApplied
                == [
                    APIError.Code.unavailable.rawValue, APIError.Code.shuttingDown.rawValue,
                    APIError.Code.ownerChanging.rawValue,
                ])
    }
}
