// The comparison's arithmetic and what it prints of a URL.
import Engine
import Testing

@testable import LoadGen

@Suite struct BenchComparisonTests {
    @Test func theRatioIsOfTheMediansOtherOverReference() {
        let comparison = BenchComparison(
            strategy: .actor, callers: 10, seconds: 1, reference: "a", other: "b",
            referenceClaimsPerSecond: [40_000, 10_000, 38_000], otherClaimsPerSecond: [30_000, 19_000, 90_000])
        #expect(BenchComparison.median([3, 1, 2]) == 2)
        #expect(BenchComparison.median([4, 1, 3, 2]) == 2.5)
        #expect(abs(comparison.ratioOfMedians - 30_000.0 / 38_000.0) < 1e-9)
        #expect(comparison.table.contains("other ÷ reference (medians): 0.79"))
    }

    @Test func aPrintedURLCarriesNoPassword() {
        let printed = RedactedURL.database("postgresql://app:s3cret@db.example:5432/stockdrop")
        #expect(!printed.contains("s3cret"))
        #expect(printed.contains("db.example:5432/stockdrop"))
        #expect(RedactedURL.database(nil) == "the embedded PostgreSQL")
        // libpq also takes the password as a parameter, and as a key=value string.
        let parameter = RedactedURL.of("postgresql://app@db.example/stockdrop?sslmode=require&password=s3cret")
        #expect(!parameter.contains("s3cret") && parameter.contains("sslmode=require"))
        #expect(!RedactedURL.of("host=db.example password=s3cret").contains("s3cret"))
        // A password URLComponents cannot parse (a raw space) is not printed either.
        #expect(!RedactedURL.of("postgresql://app:s3 cret@db.example/stockdrop").contains("s3 cret"))
        #expect(RedactedURL.of("http://127.0.0.1:9090/api/v1/write") == "http://127.0.0.1:9090/api/v1/write")
    }
}
