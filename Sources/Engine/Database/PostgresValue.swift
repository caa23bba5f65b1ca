// Query parameters and their wire encoding. Numbers, bytes and bigint arrays travel in
// PostgreSQL's binary format (no text formatting or parsing on either side, which matters
// for batches of thousands of ids); the rest travel as text with an explicit type.
import Foundation

public enum PostgresValue: Sendable, Equatable {
    case null
    case text(String)
    case int32(Int32)
    case int64(Int64)
    case bool(Bool)
    case double(Double)
    case bytes([UInt8])
    case timestamp(Date)
    case int64Array([Int64])
    /// Elements may be NULL.
    case textArray([String?])

    /// A parameter as libpq wants it: type OID, bytes (nil for NULL) and format (0 text, 1 binary).
    struct Encoded {
        var typeOID: UInt32
        var bytes: [UInt8]?
        var format: Int32
    }

    enum TypeOID {
        static let bool: UInt32 = 16
        static let bytea: UInt32 = 17
        static let int8: UInt32 = 20
        static let int4: UInt32 = 23
        static let text: UInt32 = 25
        static let float8: UInt32 = 701
        static let int8Array: UInt32 = 1016
        static let textArray: UInt32 = 1009
        static let timestamptz: UInt32 = 1184
    }

    var encoded: Encoded {
        switch self {
        case .null:
            return Encoded(typeOID: 0, bytes: nil, format: 0)
        case .text(let string):
            return Encoded(typeOID: TypeOID.text, bytes: Array(string.utf8), format: 0)
        case .int32(let value):
            return Encoded(typeOID: TypeOID.int4, bytes: Self.bigEndian(value), format: 1)
        case .int64(let value):
            return Encoded(typeOID: TypeOID.int8, bytes: Self.bigEndian(value), format: 1)
        case .bool(let value):
            return Encoded(typeOID: TypeOID.bool, bytes: [value ? 1 : 0], format: 1)
        case .double(let value):
            return Encoded(typeOID: TypeOID.float8, bytes: Self.bigEndian(value.bitPattern), format: 1)
        case .bytes(let bytes):
            return Encoded(typeOID: TypeOID.bytea, bytes: bytes, format: 1)
        case .timestamp(let date):
            return Encoded(typeOID: TypeOID.timestamptz, bytes: Array(PostgresTimestamp.format(date).utf8), format: 0)
        case .int64Array(let values):
            return Encoded(typeOID: TypeOID.int8Array, bytes: Self.binaryArray(values), format: 1)
        case .textArray(let values):
            return Encoded(typeOID: TypeOID.textArray, bytes: Array(Self.textArrayLiteral(values).utf8), format: 0)
        }
    }

    private static func bigEndian<I: FixedWidthInteger>(_ value: I) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }

    /// PostgreSQL's binary array format: ndim, has-null flag, element type, then per
    /// dimension (length, lower bound), then each element as (length, bytes).
    private static func binaryArray(_ values: [Int64]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20 + values.count * 12)
        if values.isEmpty {
            out += bigEndian(Int32(0)) + bigEndian(Int32(0)) + bigEndian(TypeOID.int8)
            return out
        }
        out += bigEndian(Int32(1)) + bigEndian(Int32(0)) + bigEndian(TypeOID.int8)
        out += bigEndian(Int32(values.count)) + bigEndian(Int32(1))
        for value in values {
            out += bigEndian(Int32(8))
            out += bigEndian(value)
        }
        return out
    }

    /// `{"a",NULL,"b \"c\""}`: every element quoted, backslashes and quotes escaped.
    private static func textArrayLiteral(_ values: [String?]) -> String {
        let elements = values.map { value -> String in
            guard let value else { return "NULL" }
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }
        return "{" + elements.joined(separator: ",") + "}"
    }
}

/// Timestamps as PostgreSQL prints them with `DateStyle=ISO` and `TimeZone=UTC`, which every
/// connection sets on open: `2026-11-25 12:13:41.123456+00`.
enum PostgresTimestamp {
    static func format(_ date: Date) -> String {
        let micros = date.epochMicroseconds
        var seconds = time_t(micros.floorDivided(by: 1_000_000))
        let fraction = micros - Int64(seconds) * 1_000_000
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
            Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(fraction))
    }

    static func parse(_ text: String) -> Date? {
        // yyyy-MM-dd HH:mm:ss[.ffffff](+|-)HH[:MM]
        let bytes = Array(text.utf8)
        guard bytes.count >= 19 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let digit = Int(bytes[index]) - 48
                guard (0...9).contains(digit) else { return nil }
                value = value * 10 + digit
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        var index = 19
        var micros = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, (48...57).contains(bytes[index]) {
                if digits < 6 {
                    micros = micros * 10 + Int(bytes[index]) - 48
                    digits += 1
                }
                index += 1
            }
            while digits < 6 {
                micros *= 10
                digits += 1
            }
        }
        var offsetSeconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard index + 3 <= bytes.count, let hours = number(index + 1..<index + 3) else { return nil }
            var minutes = 0
            if index + 6 <= bytes.count, bytes[index + 3] == UInt8(ascii: ":") {
                minutes = number(index + 4..<index + 6) ?? 0
            }
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epochSeconds = Int(timegm(&parts)) - offsetSeconds
        return Date(timeIntervalSince1970: Double(epochSeconds) + Double(micros) / 1_000_000)
    }
}

extension Int64 {
    func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor < 0) ? quotient - 1 : quotient
    }
}
