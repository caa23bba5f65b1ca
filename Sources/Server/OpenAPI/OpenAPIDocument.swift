// The OpenAPI 3.1 document served at /openapi.json, assembled from a table of the routes.
// Error responses come from `APIError.Code`, so a new code cannot be left out of it, and a
// test fails when a route the router registers is missing here.
import Engine
import Foundation

enum OpenAPIDocument {
    struct Operation {
        enum Access { case open, user, admin }
        let method: String
        let path: String
        let summary: String
        let access: Access
        let success: (status: Int, description: String, schema: JSONValue?)
        var alternative: (status: Int, description: String)? = nil
        var parameters: [JSONValue] = []
        var requestBody: JSONValue? = nil
        var codes: [APIError.Code] = []
    }

    static let dropID: JSONValue = [
        "name": "id", "in": "path", "required": true, "description": "A drop id (positive 64-bit integer)",
        "schema": ["type": "integer", "format": "int64", "minimum": 1],
    ]

    static let operations: [Operation] = [
        Operation(
            method: "get", path: "/health", summary: "Liveness: the process answers", access: .open,
            success: (200, "Alive", ref("Health"))),
        Operation(
            method: "get", path: "/ready",
            summary: "Readiness: database reachable, writable (the primary) and migrations current",
            access: .open,
            success: (200, "Ready", ref("Readiness")), alternative: (503, "Not ready (same body, ready false)")),
        Operation(
            method: "get", path: "/metrics", summary: "Prometheus metrics (text exposition format)", access: .open,
            success: (200, "Metrics", ["type": "string"])),
        Operation(
            method: "get", path: "/openapi.json", summary: "This document", access: .open,
            success: (200, "The OpenAPI document", ["type": "object"])),
        Operation(
            method: "get", path: "/",
            summary: "The live drop page (HTML, CSS and JavaScript; nothing fetched from the network)", access: .open,
            success: (200, "The page", ["type": "string"])),
        Operation(
            method: "get", path: RoutePaths.live,
            summary:
                "WebSocket of live events (JSON text frames, each one event or an array of the events that were pending together): first a `snapshot` of every drop, then `drop.created`, `stock.changed` (coalesced per drop, ending on the committed value), `purchase.completed`, and to their owner only `reservation.expired` and `reservation.purchased`. Token in the Authorization header or, for browsers, `?token=`.",
            access: .user, success: (101, "Switching Protocols: the socket is open", nil),
            parameters: [
                [
                    "name": "token", "in": "query",
                    "description": "The bearer token, for clients that cannot set headers",
                    "schema": ["type": "string"],
                ]
            ],
            codes: [.upgradeRequired]),
        Operation(
            method: "get", path: RoutePaths.drops,
            summary: "List drops by id, with stock figures and the last \(Defaults.recentPurchases) purchases",
            access: .open,
            success: (200, "A page of drops", ref("DropPage")),
            parameters: [
                [
                    "name": "after", "in": "query",
                    "description": "Cursor: the nextCursor of the previous page (a drop id)",
                    "schema": ["type": "integer", "format": "int64", "minimum": 1],
                ],
                [
                    "name": "limit", "in": "query", "description": "Drops per page",
                    "schema": [
                        "type": "integer", "minimum": 1, "maximum": .integer(ServerDefaults.maxPageLimit),
                        "default": .integer(ServerDefaults.pageLimit),
                    ],
                ],
            ],
            codes: [.invalidParameter]),
        Operation(
            method: "post", path: RoutePaths.drops, summary: "Create a drop (admin)", access: .admin,
            success: (201, "Created", ref("Drop")),
            requestBody: ["required": true, "content": ["application/json": ["schema": ref("CreateDrop")]]],
            codes: [
                .invalidJSON, .validationFailed, .unknownField, .payloadTooLarge, .unsupportedMediaType, .forbidden,
                .unavailable, .outcomeUnknown,
            ]),
        Operation(
            method: "get", path: RoutePaths.drop,
            summary:
                "One drop, from its committed state in memory (at most \(ServerDefaults.dropReadMaxAgeMilliseconds) ms behind the database); a weak ETag of its figures and latest purchases, Cache-Control: public, no-cache",
            access: .open,
            success: (200, "The drop", ref("Drop")),
            alternative: (304, "Not modified: If-None-Match names the drop's current ETag"),
            parameters: [
                dropID,
                [
                    "name": "If-None-Match", "in": "header",
                    "description": "An ETag of an earlier answer: 304 while the drop has not changed since",
                    "schema": ["type": "string"],
                ],
            ],
            codes: [.invalidParameter, .unknownDrop]),
        Operation(
            method: "post", path: RoutePaths.reserve, summary: "Hold one unit for the drop's TTL", access: .user,
            success: (201, "Reserved; committed to the database before this answer", ref("Reservation")),
            parameters: [dropID],
            codes: [
                .invalidParameter, .unknownDrop, .soldOut, .alreadyHolding, .limitReached, .notStarted,
                .overloaded, .unavailable, .ownerChanging, .outcomeUnknown, .shuttingDown,
            ]),
        Operation(
            method: "post", path: RoutePaths.purchase, summary: "Buy the unit the caller holds; idempotent",
            access: .user,
            success: (201, "Purchased", ref("Purchase")),
            alternative: (200, "A replay: the earlier purchase, header Idempotent-Replayed: true"),
            parameters: [
                dropID,
                [
                    "name": "Idempotency-Key", "in": "header", "description": "Same key, same purchase, never two",
                    "schema": ["type": "string", "pattern": "^[!-~]{1,255}$"],
                ],
            ],
            codes: [
                .invalidParameter, .unknownDrop, .noActiveReservation, .expired, .idempotencyKeyReused,
                .overloaded, .unavailable, .ownerChanging, .outcomeUnknown, .shuttingDown,
            ]),
        Operation(
            method: "delete", path: RoutePaths.cancel,
            summary: "Cancel the caller's hold; the unit is available at once", access: .user,
            success: (200, "Cancelled (a retry: the hold it cancelled)", ref("Reservation")), parameters: [dropID],
            codes: [
                .invalidParameter, .unknownDrop, .noActiveReservation, .overloaded, .unavailable,
                .ownerChanging, .outcomeUnknown, .shuttingDown,
            ]),
        Operation(
            method: "get", path: RoutePaths.myReservations, summary: "The caller's reservations, newest first",
            access: .user,
            success: (200, "Reservations", ref("ReservationList"))),
    ]

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    static var document: JSONValue {
        var paths: [(String, JSONValue)] = []
        for path in operations.map(\.path).withoutDuplicates() {
            paths.append((path, .object(operations.filter { $0.path == path }.map { ($0.method, operation($0)) })))
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "stockdrop", "version": "1.0.0",
                "description":
                    "Limited-stock drops without oversell. Every rejection is {\"error\":{\"code\",\"message\"}} with a stable code; already_holding adds the caller's live hold as \"reservation\".",
            ],
            "servers": [["url": "/"]],
            "paths": .object(paths),
            "components": [
                "securitySchemes": [
                    "bearer": [
                        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                        "description":
                            "HS256 with STOCKDROP_JWT_SECRET; claims sub (user id), name, role (user|admin), exp",
                    ]
                ],
                "schemas": schemas,
            ],
        ]
    }

    static func operation(_ operation: Operation) -> JSONValue {
        var codes = operation.codes
        if operation.path.hasPrefix("/v1") {
            // A token that is present but invalid is refused on the public reads too; every
            // route under /v1 needs the database (503 with Retry-After while it does not
            // answer); a body past the limit is refused on any route that is sent one.
            codes += [.unauthorized, .rateLimited, .unavailable, .internalError]
            if operation.method != "get" { codes.append(.payloadTooLarge) }
        } else if operation.access != .open {
            codes += [.unauthorized, .rateLimited]
        }
        var responses: [(String, JSONValue)] = []
        var success: JSONValue = ["description": .string(operation.success.description)]
        if let schema = operation.success.schema {
            let type =
                operation.path == "/metrics" ? "text/plain" : operation.path == "/" ? "text/html" : "application/json"
            success = [
                "description": .string(operation.success.description),
                "content": .object([(type, JSONValue.object([("schema", schema)]))]),
            ]
        }
        responses.append((String(operation.success.status), success))
        if let alternative = operation.alternative {
            responses.append((String(alternative.status), ["description": .string(alternative.description)]))
        }
        for status in Set(codes.map { Int($0.status.code) }).sorted() {
            let named = codes.filter { Int($0.status.code) == status }.map(\.rawValue).withoutDuplicates()
            responses.append(
                (
                    String(status),
                    [
                        "description": .string("error codes: " + named.joined(separator: ", ")),
                        "content": ["application/json": ["schema": ref("Error")]],
                    ]
                ))
        }
        var members: [(String, JSONValue)] = [
            (
                "operationId",
                .string(
                    operation.method
                        + operation.path.split(separator: "/").map {
                            $0.replacingOccurrences(of: "{", with: "").replacingOccurrences(of: "}", with: "")
                                .replacingOccurrences(of: ".", with: "_").capitalized
                        }.joined())
            ),
            ("summary", .string(operation.summary)),
            ("responses", .object(responses)),
        ]
        if !operation.parameters.isEmpty { members.append(("parameters", .array(operation.parameters))) }
        if let body = operation.requestBody { members.append(("requestBody", body)) }
        if operation.access != .open { members.append(("security", [["bearer": []]])) }
        return .object(members)
    }

    static let time: JSONValue = ["type": "string", "format": "date-time"]
    static let int64: JSONValue = ["type": "integer", "format": "int64"]

    static var schemas: JSONValue {
        [
            "Error": [
                "type": "object", "required": ["error"],
                "properties": [
                    "error": [
                        "type": "object", "required": ["code", "message"],
                        "properties": [
                            "code": [
                                "type": "string", "enum": .array(APIError.Code.allCases.map { .string($0.rawValue) }),
                                "description": .string(
                                    APIError.Code.allCases.map { "\($0.rawValue) (\($0.status.code)): \($0.meaning)" }
                                        .joined(separator: "; ")),
                            ],
                            "message": ["type": "string"],
                        ],
                    ],
                    "reservation": [
                        "$ref": "#/components/schemas/Reservation",
                        "description":
                            "With already_holding: the caller's live hold (absent if it ended as the answer was written, or could not be read then)",
                    ],
                ],
            ],
            "Health": [
                "type": "object", "required": ["status", "strategy", "rateLimits"],
                "properties": [
                    "status": ["type": "string"], "strategy": ["type": "string", "enum": ["actor", "rowlock"]],
                    "rateLimits": [
                        "type": "object",
                        "description":
                            "The request limits in force; a member absent: that limit is off (--no-rate-limit)",
                        "properties": ["perClientAddress": ref("RateLimit"), "perUser": ref("RateLimit")],
                    ],
                ],
            ],
            "RateLimit": [
                "type": "object", "required": ["requestsPerSecond", "burst"],
                "properties": ["requestsPerSecond": ["type": "number"], "burst": ["type": "number"]],
            ],
            "Readiness": [
                // schemaVersion is absent while the database does not answer.
                "type": "object", "required": ["ready", "database", "expectedSchemaVersion"],
                "properties": [
                    "ready": ["type": "boolean"],
                    "database": ["type": "string", "enum": ["ok", "unreachable", "read_only"]],
                    "schemaVersion": ["type": ["integer", "null"]], "expectedSchemaVersion": ["type": "integer"],
                    "problem": ["type": ["string", "null"]],
                ],
            ],
            "CreateDrop": [
                "type": "object", "additionalProperties": false, "required": ["name", "priceCents", "totalStock"],
                "properties": [
                    "name": [
                        "type": "string", "minLength": 1, "maxLength": 200,
                        // Not blank, no control characters (DropSpec.problems).
                        "pattern": #"^[^\u0000-\u001F\u007F]*[^\s\u0000-\u001F\u007F][^\u0000-\u001F\u007F]*$"#,
                    ],
                    "priceCents": ["type": "integer", "minimum": 0, "maximum": .integer(Int(Defaults.maxPriceCents))],
                    "totalStock": ["type": "integer", "minimum": 1, "maximum": .integer(Defaults.maxTotalStock)],
                    "startsAt": [
                        "type": ["string", "null"], "format": "date-time", "pattern": .string(RFC3339.pattern),
                    ],
                    // null, as absent: the default.
                    "perUserLimit": [
                        "type": ["integer", "null"], "minimum": 1, "maximum": .integer(Defaults.maxPerUserLimit),
                        "default": 1,
                    ],
                    "reserveTTLMilliseconds": [
                        "type": ["integer", "null"], "minimum": .integer(Defaults.minReserveTTLMilliseconds),
                        "maximum": .integer(Defaults.maxReserveTTLMilliseconds),
                        "default": .integer(Defaults.reserveTTLMilliseconds),
                    ],
                ],
            ],
            "Drop": [
                "type": "object",
                "required": [
                    "id", "name", "priceCents", "totalStock", "availableStock", "reservedStock", "soldCount",
                    "perUserLimit",
                    "reserveTTLMilliseconds", "createdAt", "recentPurchases",
                ],
                "properties": [
                    "id": int64, "name": ["type": "string"], "priceCents": int64, "totalStock": ["type": "integer"],
                    "availableStock": ["type": "integer"], "reservedStock": ["type": "integer"],
                    "soldCount": ["type": "integer"],
                    "startsAt": ["type": ["string", "null"], "format": "date-time"],
                    "perUserLimit": ["type": "integer"],
                    "reserveTTLMilliseconds": ["type": "integer"], "createdAt": time,
                    "committedAt": [
                        "type": ["string", "null"], "format": "date-time",
                        "description":
                            "The instant (the database's clock) at which these figures were the committed state",
                    ],
                    "recentPurchases": [
                        "type": "array", "maxItems": 3,
                        "items": [
                            "type": "object", "required": ["purchaseId", "createdAt"],
                            "properties": [
                                "purchaseId": int64, "buyerName": ["type": ["string", "null"]], "createdAt": time,
                            ],
                        ],
                    ],
                ],
            ],
            "DropPage": [
                "type": "object", "required": ["drops"],
                "properties": [
                    "drops": ["type": "array", "items": ref("Drop")], "nextCursor": ["type": ["string", "null"]],
                ],
            ],
            "Reservation": [
                "type": "object", "required": ["id", "dropId", "userId", "status", "createdAt", "expiresAt"],
                "properties": [
                    "id": int64, "dropId": int64, "userId": int64,
                    "status": ["type": "string", "enum": ["ACTIVE", "PURCHASED", "CANCELLED", "EXPIRED"]],
                    "createdAt": time, "expiresAt": time,
                    "endedAt": ["type": ["string", "null"], "format": "date-time"],
                ],
            ],
            "ReservationList": [
                "type": "object", "required": ["reservations"],
                "properties": ["reservations": ["type": "array", "items": ref("Reservation")]],
            ],
            "Purchase": [
                "type": "object", "required": ["id", "reservationId", "dropId", "userId", "priceCents", "createdAt"],
                "properties": [
                    "id": int64, "reservationId": int64, "dropId": int64, "userId": int64, "priceCents": int64,
                    "idempotencyKey": ["type": ["string", "null"]], "createdAt": time,
                ],
            ],
        ]
    }

    static var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(document), as: UTF8.self)) ?? "{}"
    }
}

extension Sequence where Element: Hashable {
    func withoutDuplicates() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
