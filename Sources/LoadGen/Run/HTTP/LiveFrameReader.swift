// What a watcher needs from a live frame (each event's type, a stock event's drop and available
// units, the commit time) read by scanning the frame's bytes, not by decoding it: a thousand
// watchers receive tens of thousands of events a second, and JSONDecoder plus a date parser per
// event cost the harness most of a core on the machine it shares with the server it measures.
// Snapshots (one per socket) are decoded in full by the caller.
import Engine
import Foundation

struct LiveFrameEvent: Equatable {
    var type: Substring
    var dropID: Int64?
    var availableStock: Int?
    /// Seconds since 1970 of `committedAt` (the server writes `2026-11-27T19:04:48.159Z`).
    var committedAtSeconds: Double?
}

enum LiveFrameReader {
    /// The events of a frame: one object, or an array of them.
    static func events(in text: String) -> [LiveFrameEvent] {
        objects(in: Array(text.utf8)).map(event)
    }

    /// The top-level objects: the frame itself, or the elements of a top-level array.
    static func objects(in bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        guard let first = bytes.firstIndex(where: { !Self.isSpace($0) }) else { return [] }
        guard bytes[first] == UInt8(ascii: "[") else { return [bytes[first...]] }
        var objects: [ArraySlice<UInt8>] = []
        var depth = 0
        var inString = false
        var escaped = false
        var start = 0
        for index in (first + 1)..<bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                if depth == 0 { start = index }
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { objects.append(bytes[start...index]) }
                if depth < 0 { return objects }
            default: break
            }
        }
        return objects
    }

    static func event(_ object: ArraySlice<UInt8>) -> LiveFrameEvent {
        let type = string(after: "\"type\":\"", in: object) ?? ""
        var event = LiveFrameEvent(type: type)
        if let committed = string(after: "\"committedAt\":\"", in: object) {
            event.committedAtSeconds = seconds(of: committed)
        }
        if type == "stock.changed" {
            event.dropID = integer(after: "\"dropId\":", in: object).map(Int64.init)
            event.availableStock = integer(after: "\"availableStock\":", in: object)
        }
        return event
    }

    /// The text between `prefix` (which ends with an opening quote) and the next quote.
    static func string(after prefix: String, in object: ArraySlice<UInt8>) -> Substring? {
        guard let start = position(after: prefix, in: object),
            let end = object[start...].firstIndex(of: UInt8(ascii: "\""))
        else { return nil }
        return Substring(String(decoding: object[start..<end], as: UTF8.self))
    }

    static func integer(after prefix: String, in object: ArraySlice<UInt8>) -> Int? {
        guard var index = position(after: prefix, in: object) else { return nil }
        var negative = false
        if index < object.endIndex, object[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var value = 0
        var digits = 0
        while index < object.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(object[index]) {
            value = value * 10 + Int(object[index] - UInt8(ascii: "0"))
            digits += 1
            index += 1
        }
        return digits > 0 ? (negative ? -value : value) : nil
    }

    private static func position(after prefix: String, in object: ArraySlice<UInt8>) -> Int? {
        let needle = Array(prefix.utf8)
        guard object.count >= needle.count else { return nil }
        var index = object.startIndex
        while index <= object.endIndex - needle.count {
            if object[index] == needle[0], object[index..<(index + needle.count)].elementsEqual(needle) {
                return index + needle.count
            }
            index += 1
        }
        return nil
    }

    /// Seconds since 1970 of a commit time as the server writes it (`RFC3339`).
    static func seconds(of text: Substring) -> Double? {
        RFC3339.date(String(text))?.timeIntervalSince1970
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
            || byte == UInt8(ascii: "\t")
    }
}
