// The one place where outcomes and failures become HTTP: every error code has exactly one
// status and one body shape, `{"error":{"code","message"}}`. docs/server.md lists the codes; the
// OpenAPI document is generated from `APIError.Code.allCases`.
import Engine
import Foundation
import HTTPTypes
import Hummingbird

public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, Codable {
        // Rejections of a claim: normal answers, with the engine's stable codes.
        case soldOut = "sold_out"
        case alreadyHolding = "already_holding"
        case limitReached = "limit_reached"
        case notStarted = "not_started"
        case noActiveReservation = "no_active_reservation"
        case expired = "expired"
        case idempotencyKeyReused = "idempotency_key_reused"
        case unknownDrop = "unknown_drop"
        case overloaded = "overloaded"
        // Requests the server refuses before any work.
        case invalidJSON = "invalid_json"
        case invalidParameter = "invalid_parameter"
        case validationFailed = "validation_failed"
        case unknownField = "unknown_field"
        case payloadTooLarge = "payload_too_large"
        case unsupportedMediaType = "unsupported_media_type"
        case unauthorized
        case forbidden
        case notFound = "not_found"
        case methodNotAllowed = "method_not_allowed"
        case upgradeRequired = "upgrade_required"
        case rateLimited = "rate_limited"
        // Failures: nothing was acknowledged; retrying later is safe.
        case unavailable
        case outcomeUnknown = "outcome_unknown"
        case ownerChanging = "owner_changing"
        case shuttingDown = "shutting_down"
        case internalError = "internal_error"

        public var status: HTTPResponse.Status {
            switch self {
            case .soldOut, .alreadyHolding, .limitReached, .notStarted, .noActiveReservation, .expired,
                .idempotencyKeyReused:
                .conflict
            case .unknownDrop, .notFound: .notFound
            case .invalidJSON, .invalidParameter: .badRequest
            case .validationFailed, .unknownField: .unprocessableContent
            case .payloadTooLarge: .contentTooLarge
            case .unsupportedMediaType: .unsupportedMediaType
            case .unauthorized: .unauthorized
            case .forbidden: .forbidden
            case .methodNotAllowed: .methodNotAllowed
            case .upgradeRequired: .upgradeRequired
            case .rateLimited: .tooManyRequests
            case .overloaded, .unavailable, .outcomeUnknown, .ownerChanging, .shuttingDown: .serviceUnavailable
            case .internalError: .internalServerError
            }
        }

        /// What docs/server.md and the OpenAPI document say about the code.
        public var meaning: String {
            switch self {
            case .soldOut: "every unit is sold or held"
            case .alreadyHolding: "the caller already holds a unit of this drop"
            case .limitReached: "the caller's reservations and purchases reached the drop's per-user limit"
            case .notStarted: "the drop has not started yet"
            case .noActiveReservation: "the caller holds no active reservation on this drop"
            case .expired: "the caller's hold expired before the purchase"
            case .idempotencyKeyReused:
                "the Idempotency-Key names the caller's purchase on another drop; the hold here is untouched and can be bought with another key"
            case .unknownDrop: "no drop has this id"
            case .overloaded:
                "the server is past its latency target, or the drop's line is full; nothing was applied, retry after Retry-After"
            case .invalidJSON: "the body is not a JSON object"
            case .invalidParameter: "a path or query parameter is malformed or out of range"
            case .validationFailed: "a field has the wrong type, is missing, or is out of range"
            case .unknownField: "the body has a field the route does not accept"
            case .payloadTooLarge: "the body is larger than the server accepts"
            case .unsupportedMediaType: "the body is not application/json"
            case .unauthorized: "no valid bearer token (missing, malformed, forged or expired)"
            case .forbidden: "the token's role may not do this"
            case .notFound: "no such route"
            case .methodNotAllowed: "the route does not accept this method"
            case .upgradeRequired:
                "the route is a WebSocket: ask for the upgrade (Connection: Upgrade, Upgrade: websocket)"
            case .rateLimited: "too many requests from this user or address; retry after Retry-After"
            case .unavailable: "the database is unreachable or refused the statement; nothing was applied"
            case .outcomeUnknown:
                "the claim reached the database but its answer was lost, so it may have been applied; retrying is safe: "
                    + "a reserve finds the hold (already_holding with it) or makes one, a purchase with the same Idempotency-Key "
                    + "replays, a cancel finds the hold cancelled or cancels it"
            case .ownerChanging:
                "the drop's lease is changing hands between server instances; nothing was applied, retry after Retry-After"
            case .shuttingDown: "the server is draining for shutdown; retry on another instance"
            case .internalError: "a bug; the request id in the logs tells which"
            }
        }
    }

    public let code: Code
    public let message: String
    public var retryAfterSeconds: Int?
    /// With `already_holding`: the caller's live hold, so a client that lost the answer to its
    /// reserve (`outcome_unknown`, a timeout) learns which reservation to buy or cancel.
    var holding: ReservationResponse?

    public init(_ code: Code, _ message: String, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterSeconds =
            retryAfterSeconds ?? (code.status == .serviceUnavailable ? ServerDefaults.overloadedRetryAfterSeconds : nil)
    }

    public var status: HTTPResponse.Status { code.status }
    public var description: String { "\(code.rawValue): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let retryAfterSeconds { headers[.retryAfter] = String(retryAfterSeconds) }
        if code == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        if code == .upgradeRequired { headers[.upgrade] = "websocket" }
        let body =
            holding == nil && message == code.meaning ? Self.meaningBodies[code]! : ByteBuffer(string: jsonBody)
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// Each code's body with its standard message, encoded once: rejections are most of a
    /// drop's answers (`sold_out` after the sale), and they carry exactly this.
    private static let meaningBodies: [Code: ByteBuffer] = Dictionary(
        uniqueKeysWithValues: Code.allCases.map { ($0, ByteBuffer(string: APIError($0, $0.meaning).jsonBody)) })

    /// `{"error":{"code","message"}}`, written by hand: rejections are most of the answers in a
    /// drop, and JSONEncoder cost 7% of the server's CPU for them. A hold, when there is one,
    /// follows as `"reservation"` (rare: only a caller who reserves twice gets it).
    var jsonBody: String {
        let error = #"{"error":{"code":""# + code.rawValue + #"","message":"# + Self.jsonString(message) + "}"
        guard let holding, let encoded = try? JSONEncoder().encode(holding) else { return error + "}" }
        return error + #","reservation":"# + String(decoding: encoded, as: UTF8.self) + "}"
    }

    static func jsonString(_ text: String) -> String {
        var escaped = "\""
        escaped.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case let control where control.value < 0x20:
                escaped +=
                    "\\u" + String(repeating: "0", count: 4 - String(control.value, radix: 16).count)
                    + String(control.value, radix: 16)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped + "\""
    }
}

extension APIError {
    static func unauthorized(_ message: String) -> APIError { APIError(.unauthorized, message) }

    /// A claim's rejection, with the engine's stable code.
    init(rejection: RejectionCode) {
        let code = Code(rawValue: rejection.rawValue) ?? .internalError
        self.init(code, code.meaning)
    }

    /// A failure thrown by the engine: nothing was acknowledged.
    init(engineError: EngineError) {
        switch engineError.code {
        case .shuttingDown: self.init(.shuttingDown, engineError.message)
        case .notOwner, .fenced: self.init(.ownerChanging, Code.ownerChanging.meaning)
        case .invalidDrop: self.init(.validationFailed, engineError.message)
        case let code where code.appliedNothing: self.init(.unavailable, Code.unavailable.meaning)
        default: self.init(.outcomeUnknown, Code.outcomeUnknown.meaning)
        }
    }
}
