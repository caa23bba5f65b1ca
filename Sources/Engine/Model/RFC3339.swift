// Times read by hand as RFC 3339 (`2026-12-01T18:00:00Z`, `2026-12-01T19:00:00.250+01:00`:
// any fraction, any offset up to ±23:59) with a year from 1970 to 2099: the API's `startsAt`
// (the same pattern is in /openapi.json, so a schema-valid time is never refused nor an invalid
// one taken) and the harness's scan of live frames' commit times. Foundation's ISO 8601 parser
// refuses valid offsets past ±18:00.
import Foundation

public enum RFC3339 {
    /// The pattern of accepted times, for the OpenAPI document.
    public static let pattern =
        #"^(19[7-9][0-9]|20[0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"#

    public static func date(_ string: String) -> Date? {
        let text = Array(string.utf8)
        guard text.count >= 20 else { return nil }
        func number(_ at: Int, _ length: Int) -> Int? {
            guard at + length <= text.count else { return nil }
            var value = 0
            for byte in text[at..<at + length] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        func byte(_ at: Int, is character: Character) -> Bool { at < text.count && text[at] == character.asciiValue }
        guard let year = number(0, 4), byte(4, is: "-"), let month = number(5, 2), byte(7, is: "-"),
            let day = number(8, 2),
            byte(10, is: "T"), let hour = number(11, 2), byte(13, is: ":"), let minute = number(14, 2),
            byte(16, is: ":"),
            let second = number(17, 2)
        else { return nil }
        var index = 19
        var fraction = 0.0
        if byte(index, is: ".") {
            let start = index + 1
            index = start
            while index < text.count, (0x30...0x39).contains(text[index]) { index += 1 }
            guard index > start, let value = Double("0." + String(decoding: text[start..<index], as: UTF8.self)) else {
                return nil
            }
            fraction = value
        }
        var offsetSeconds = 0
        if byte(index, is: "Z") {
            index += 1
        } else if byte(index, is: "+") || byte(index, is: "-") {
            guard let offsetHours = number(index + 1, 2), byte(index + 3, is: ":"),
                let offsetMinutes = number(index + 4, 2),
                offsetHours <= 23, offsetMinutes <= 59
            else { return nil }
            offsetSeconds = (byte(index, is: "-") ? -1 : 1) * (offsetHours * 3_600 + offsetMinutes * 60)
            index += 6
        } else {
            return nil
        }
        guard index == text.count, (1970...2099).contains(year), (1...12).contains(month),
            (1...CivilDate.daysIn(month: month, year: year)).contains(day), hour <= 23, minute <= 59, second <= 59
        else { return nil }
        let seconds =
            CivilDate.daysSinceEpoch(year: year, month: month, day: day) * 86_400 + hour * 3_600 + minute * 60 + second
            - offsetSeconds
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}
