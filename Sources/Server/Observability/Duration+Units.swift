// Durations in the units metrics and logs use.

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
    var milliseconds: Double { Double(nanoseconds) / 1e6 }
    var seconds: Double { Double(nanoseconds) / 1e9 }
}
