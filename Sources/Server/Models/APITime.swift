// Times on the wire: written as ISO 8601 in UTC with milliseconds, read as RFC 3339 from 1970
// to 2099 (`RFC3339`, whose pattern /openapi.json gives for `startsAt`).
import Foundation

enum APITime {
    static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
