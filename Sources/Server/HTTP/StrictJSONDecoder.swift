// Request bodies: JSON objects only, bounded in size, no unknown fields, and every decoding
// failure a 400 or 422 naming the field; never a 500, and never after anything was written.
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

public struct StrictJSONDecoder: RequestDecoder {
    public init() {}

    public func decode<T: Decodable>(
        _ type: T.Type, from request: Request, context: some RequestContext
    ) async throws -> T {
        if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, "Content-Type must be application/json, not \(contentType)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            // Hummingbird's own 413 (HTTPError) is shaped by ErrorMiddleware; NIO's is not.
            throw APIError(.payloadTooLarge, "the body is larger than \(context.maxUploadSize) bytes")
        }
        return try Self.decode(type, from: Data(buffer: buffer))
    }

    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws -> T {
        // A UTF-8 byte-order mark, which some editors and Windows tools write, is not content
        // (RFC 8259 §8.1 lets a parser ignore it); it was "the body must be a JSON object".
        let data = body.starts(with: [0xEF, 0xBB, 0xBF]) ? body.dropFirst(3) : body
        guard data.first(where: { !$0.isASCIIWhitespace }) == UInt8(ascii: "{") else {
            throw APIError(.invalidJSON, "the body must be a JSON object")
        }
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as APIError {
            throw error
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            // A number that is fractional or does not fit is reported without a path; the
            // body is then valid JSON with a bad value, not malformed.
            guard Self.isJSON(data) else {
                throw APIError(.invalidJSON, "the body is not valid JSON")
            }
            // Foundation's words here ("The given data was not valid JSON.") say the opposite.
            throw APIError(.validationFailed, "a number is fractional or out of range for its field")
        } catch let DecodingError.typeMismatch(expected, context) {
            throw APIError(.validationFailed, "\(context.fieldName): expected \(Self.jsonName(of: expected))")
        } catch let DecodingError.valueNotFound(expected, context) {
            throw APIError(.validationFailed, "\(context.fieldName): expected \(Self.jsonName(of: expected)), got null")
        } catch let DecodingError.keyNotFound(key, context) {
            throw APIError(
                .validationFailed, "\((context.codingPath + [key]).map(\.stringValue).joined(separator: ".")): required"
            )
        } catch let DecodingError.dataCorrupted(context) {
            // Foundation says "The given data was not valid JSON." of a valid body whose number
            // does not fit its field (1.5 for an integer, 10^23 for a price).
            guard context.debugDescription.contains("not valid JSON"),
                Self.isJSON(data)
            else {
                throw APIError(.validationFailed, "\(context.fieldName): \(context.debugDescription)")
            }
            throw APIError(.validationFailed, "\(context.fieldName): a number is fractional or out of range for it")
        } catch {
            throw APIError(.invalidJSON, "the body could not be read as JSON")
        }
    }

    /// Whether the body is JSON at all: a decoding error of one that is names a bad value, not
    /// malformed input.
    private static func isJSON(_ data: Data) -> Bool {
        (try? JSONSerialization.jsonObject(with: data)) != nil
    }

    private static func jsonName(of type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "a boolean"
        default: "a value of another type"
        }
    }
}

extension DecodingError.Context {
    var fieldName: String { codingPath.isEmpty ? "body" : codingPath.map(\.stringValue).joined(separator: ".") }
}

extension UInt8 {
    fileprivate var isASCIIWhitespace: Bool { self == 0x20 || self == 0x09 || self == 0x0A || self == 0x0D }
}

/// Any key, to list what a JSON object holds.
struct AnyCodingKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Throws `unknown_field` when the object holds a key the type does not accept: a typo in a
    /// field name must not silently fall back to a default.
    func rejectUnknownKeys<Key: CodingKey & CaseIterable>(_ known: Key.Type) throws {
        let allowed = Set(Key.allCases.map(\.stringValue))
        let present = try container(keyedBy: AnyCodingKey.self).allKeys.map(\.stringValue)
        if let unknown = present.filter({ !allowed.contains($0) }).sorted().first {
            throw APIError(
                .unknownField, "unknown field \"\(unknown)\"; accepted: \(allowed.sorted().joined(separator: ", "))")
        }
    }
}
