// A wall-clock instant as whole microseconds since 1970, the resolution of PostgreSQL's
// timestamptz: the one conversion behind bound timestamps, event versions, run files and
// clock samples.
import Foundation

extension Date {
    public var epochMicroseconds: Int64 { Int64((timeIntervalSince1970 * 1_000_000).rounded()) }
}
