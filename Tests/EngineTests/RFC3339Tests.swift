// Times on the wire are read as RFC 3339 from 1970 to 2099, exactly as /openapi.json's
// pattern says: the fuzzer found valid offsets (-19:35) that Foundation's parser refused.
import Engine
import Foundation
import Testing

@Suite struct RFC3339Tests {
    static let valid: [(String, Double)] = [
        ("2026-12-01T18:00:00Z", 1_796_148_000),
        ("2026-12-01T19:00:00.250+01:00", 1_796_148_000.25),
        ("2026-12-01T00:00:00-19:35", 1_796_148_000 - 64_800 + 70_500),
        ("1970-01-01T00:00:00Z", 0),
        ("2000-02-29T12:00:00.123456Z", 951_825_600.123456),
        ("2099-12-31T23:59:59+23:59", 4_102_444_799 - 86_340),
    ]

    @Test(arguments: valid)
    func validTimesParse(_ text: String, _ epochSeconds: Double) throws {
        let date = try #require(RFC3339.date(text))
        #expect(abs(date.timeIntervalSince1970 - epochSeconds) < 1e-5)
        #expect(text.range(of: RFC3339.pattern, options: .regularExpression) != nil)
    }

    @Test(arguments: [
        "2026-12-01 18:00:00Z", "2026-12-01T18:00:00", "2026-12-01t18:00:00z", "1969-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T18:00:60Z",
        "2026-12-01T18:00:00.Z", "2026-12-01T18:00:00+24:00", "2026-12-01T18:00:00+01:60", "2026-12-01T18:00:00Zjunk",
        "",
    ])
    func invalidTimesAreRefused(_ text: String) {
        #expect(RFC3339.date(text) == nil)
    }
}
