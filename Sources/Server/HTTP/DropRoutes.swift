// The buyer- and admin-facing routes (docs/design.md "The server"): drops, claims and a user's holds.
// Handlers parse and authorize, call the engine, and turn its outcome into one response;
// every rejection leaves as an APIError with its stable code.
import Engine
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

struct DropRoutes: Sendable {
    let inventory: any Inventory
    /// Where each claim is decided: here, or at its drop's owner.
    let claims: ClaimPath
    let reads: DropReads
    let events: EventHub
    let buyers: BuyerNames
    let clock: any WallClock

    func add(to router: Router<StockdropContext>) {
        router.get(RouterPath(RoutePaths.drops), use: list)
        router.post(RouterPath(RoutePaths.drops), use: create)
        router.get(RouterPath(RoutePaths.drop), use: show)
        router.post(RouterPath(RoutePaths.reserve), use: reserve)
        router.post(RouterPath(RoutePaths.purchase), use: purchase)
        router.delete(RouterPath(RoutePaths.cancel), use: cancel)
        router.get(RouterPath(RoutePaths.myReservations), use: mine)
    }

    @Sendable func list(_ request: Request, context: StockdropContext) async throws -> DropPage {
        let query = request.uri.queryParameters
        let cursor = try query["after"].map { try Self.id(String($0), name: "after") }
        let limit =
            try query["limit"].map { try Self.integer(String($0), name: "limit", in: 1...ServerDefaults.maxPageLimit) }
            ?? ServerDefaults.pageLimit
        let views = try await reads.page(after: cursor, limit: limit)
        let next = views.count == limit ? views.last.map { String($0.snapshot.drop.id) } : nil
        return DropPage(drops: views.map { DropResponse($0.snapshot) }, nextCursor: next)
    }

    /// From the drop's committed read view (`DropReads`), with a weak ETag of what it shows: a
    /// client or cache that sends it back in If-None-Match gets 304 until the figures or the
    /// latest purchases change. no-cache: a cache may keep the body but must ask again each
    /// time, which costs a 304.
    @Sendable func show(_ request: Request, context: StockdropContext) async throws -> Response {
        let drop = try Self.dropID(context)
        guard let view = try await reads.view(of: drop) else { throw APIError(rejection: .unknownDrop) }
        if let asked = request.headers[.ifNoneMatch], Self.matches(asked, view.etag) {
            return Response(status: .notModified, headers: [.eTag: view.etag, .cacheControl: Self.cacheControl])
        }
        let body: ByteBuffer
        if let encoded = view.body {
            body = encoded
        } else {
            body = ByteBuffer(bytes: try JSONEncoder().encode(DropResponse(view.snapshot)))
            reads.remember(body: body, of: drop, version: view.version)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "application/json; charset=utf-8", .eTag: view.etag, .cacheControl: Self.cacheControl,
            ],
            body: .init(byteBuffer: body))
    }

    static let cacheControl = "public, no-cache"

    /// If-None-Match: `*`, or a list of entity tags one of which is ours, compared weakly (RFC
    /// 9110 13.1.2: the opaque tags equal, either or both weak).
    static func matches(_ header: String, _ etag: String) -> Bool {
        func opaque<S: StringProtocol>(_ tag: S) -> Substring {
            let trimmed = Substring(tag).drop { $0 == " " || $0 == "\t" }
            return trimmed.hasPrefix("W/") ? trimmed.dropFirst(2) : trimmed
        }
        let ours = opaque(etag)
        return header.split(separator: ",").contains { part in
            let tag = opaque(part.trimmingCharacters(in: .whitespaces))
            return tag == "*" || tag == ours
        }
    }

    @Sendable func create(_ request: Request, context: StockdropContext) async throws -> EditedResponse<DropResponse> {
        let caller = try context.caller()
        guard caller.role == .admin else { throw APIError(.forbidden, "creating a drop needs the admin role") }
        let body = try await context.requestDecoder.decode(CreateDropRequest.self, from: request, context: context)
        let record: DropRecord
        do {
            record = try await inventory.createDrop(try body.spec(now: clock.now()))
        } catch let error as EngineError where error.code == .outcomeUnknown {
            // Not a claim: retrying may make a second drop.
            context.logger.warning("drop creation lost", metadata: ["error": "\(error)"])
            throw APIError(
                .outcomeUnknown, "the drop may have been created: list the drops before creating it again")
        }
        events.dropCreated(record)
        var headers = HTTPFields()
        headers[.location] = RoutePaths.path(RoutePaths.drop, id: record.id)
        return EditedResponse(
            status: .created, headers: headers, response: DropResponse(DropSnapshot(drop: record, recentPurchases: [])))
    }

    @Sendable func reserve(_ request: Request, context: StockdropContext) async throws -> Response {
        let caller = try context.caller()
        let drop = try Self.dropID(context)
        return try await claims.decide(drop, request, context: context) { here in
            switch try await here.reserve(user: caller.userID) {
            case .reserved(let reservation):
                return EditedResponse(status: .created, response: ReservationResponse(reservation))
            case .notStarted(let until):
                throw APIError(.notStarted, "the drop starts at \(APITime.string(until))")
            case .alreadyHolding(let known):
                var error = APIError(rejection: .alreadyHolding)
                var hold = known
                // The answer stands if this read fails: the body then lacks the hold, as
                // documented. The rowlock strategy (or an actor that learned of the hold from
                // the store's verdict) does not know it: one read of the store.
                if hold == nil { hold = try? await inventory.liveHold(of: caller.userID, on: drop) }
                error.holding = hold.map(ReservationResponse.init)
                throw error
            case let outcome:
                throw Self.rejected(outcome.rejection)
            }
        }
    }

    @Sendable func purchase(_ request: Request, context: StockdropContext) async throws -> Response {
        let caller = try context.caller()
        let drop = try Self.dropID(context)
        let key = try Self.idempotencyKey(request)
        // Asked when this server received it (the kernel's receipt): a purchase that then waits
        // in this server past its hold's expiry still buys the hold (design §2).
        let askedAt = RequestLogMiddleware.readAtWallClock(
            request.headers[.stockdropReadAt], now: NIODeadline.now(), wallNow: Date())
        reads.noteName(caller.name, of: caller.userID)
        return try await claims.decide(drop, request, context: context) { here in
            switch try await here.purchase(user: caller.userID, idempotencyKey: key, askedAt: askedAt) {
            case .purchased(let purchase, let replayed):
                // The buyer's display name for the feed, once per buyer and only after a
                // purchase committed: a refused request writes nothing.
                await buyers.remember(caller, logger: context.logger)
                var headers = HTTPFields()
                if replayed { headers[.idempotentReplayed] = "true" }
                return EditedResponse(
                    status: replayed ? .ok : .created, headers: headers, response: PurchaseResponse(purchase))
            case let outcome:
                throw Self.rejected(outcome.rejection)
            }
        }
    }

    @Sendable func cancel(_ request: Request, context: StockdropContext) async throws -> Response {
        let caller = try context.caller()
        let drop = try Self.dropID(context)
        return try await claims.decide(drop, request, context: context) { here in
            switch try await here.cancel(user: caller.userID) {
            case .cancelled(let reservation): return ReservationResponse(reservation)
            case let outcome: throw Self.rejected(outcome.rejection)
            }
        }
    }

    @Sendable func mine(_ request: Request, context: StockdropContext) async throws -> ReservationList {
        let caller = try context.caller()
        return ReservationList(
            reservations: try await inventory.reservations(of: caller.userID).map(ReservationResponse.init))
    }

    /// An outcome that is not a success must carry a rejection code; if a new success case
    /// ever lacks one, answer 500 (unknown to clients) rather than a firm refusal.
    static func rejected(_ code: RejectionCode?) -> APIError {
        code.map { APIError(rejection: $0) } ?? APIError(.internalError, "an outcome without a rejection code")
    }

    // MARK: - Parameters

    static func dropID(_ context: StockdropContext) throws -> DropID {
        try id(context.parameters.get("id") ?? "", name: "id")
    }

    /// A positive 64-bit id in plain decimal: no sign, no spaces, no overflow.
    static func id(_ text: String, name: String) throws -> Int64 {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int64(text), value > 0
        else {
            throw APIError(.invalidParameter, "\(name) must be a positive integer id, not \"\(text.prefix(40))\"")
        }
        return value
    }

    static func integer(_ text: String, name: String, in range: ClosedRange<Int>) throws -> Int {
        guard text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(text),
            range.contains(value)
        else {
            throw APIError(
                .invalidParameter,
                "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), not \"\(text.prefix(40))\"")
        }
        return value
    }

    /// 1 to 255 printable ASCII characters (the column's bound), or absent.
    static func idempotencyKey(_ request: Request) throws -> String? {
        guard let key = request.headers[.idempotencyKey] else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw APIError(.invalidParameter, "Idempotency-Key must be 1 to 255 printable ASCII characters")
        }
        return key
    }
}
