// Durations in scenario files are strings with a unit: `250ms`, `2s`, `1.5m`, `500us`.
import Foundation

public enum ScenarioDuration {
    /// Milliseconds, or nil when the text is not a number followed by a known unit.
    public static func milliseconds(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [
            ("us", 0.001), ("µs", 0.001), ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000),
        ]
        for (unit, scale) in units where trimmed.hasSuffix(unit) {
            let number = trimmed.dropLast(unit.count).trimmingCharacters(in: .whitespaces)
            // "ms" also ends in "s": only accept a number before the unit.
            guard let value = Double(number), value.isFinite, value >= 0 else { continue }
            return value * scale
        }
        return nil
    }

    static func text(milliseconds: Double) -> String {
        if milliseconds >= 1_000, milliseconds.truncatingRemainder(dividingBy: 1_000) == 0 {
            return "\(Int(milliseconds / 1_000))s"
        }
        if milliseconds == milliseconds.rounded() { return "\(Int(milliseconds))ms" }
        return String(format: "%.3gms", milliseconds)
    }
}
