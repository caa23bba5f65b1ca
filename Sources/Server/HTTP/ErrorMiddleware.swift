// Turns every error into the API's one error shape before logging and metrics see it:
// APIError as is; EngineError (the store's failures among them, turned into EngineError at the
// Engine's edge) by its one mapping, `APIError(engineError:)`; the router's 404 becomes 405
// with Allow when the path exists under other methods; Hummingbird's own HTTP errors keep their status; anything else is a bug, logged
// with the request id and answered 500 without its details.
import Engine
import HTTPTypes
import Hummingbird
import NIOHTTP1

struct ErrorMiddleware: RouterMiddleware {
    typealias Context = StockdropContext
    let routes: RouteTableBox

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as EngineError {
            let answer = APIError(engineError: error)
            // The engine's message may carry the database's own words (SQLSTATE, server text,
            // socket paths): operators read them here, clients get the code's meaning.
            if answer.code == .unavailable || answer.code == .outcomeUnknown {
                context.logger.warning("engine failure", metadata: ["error": "\(error)"])
            }
            return try answer.response(from: request, context: context)
        } catch let error as HTTPError {
            return try translate(error, request: request, context: context)
        } catch let error as HTTPParserError {
            // The body's framing is broken (a chunk size that is not hex, say): the client's
            // error, not the server's (it was a 500), and the connection cannot be read on.
            var response = try APIError(
                .invalidParameter, "the request body's framing is not valid HTTP/1.1 (\(error))"
            )
            .response(from: request, context: context)
            response.headers[.connection] = "close"
            return response
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return try APIError(.internalError, "internal error; request id \(context.id)").response(
                from: request, context: context)
        }
    }

    private func translate(_ error: HTTPError, request: Request, context: Context) throws -> Response {
        switch error.status {
        case .notFound:
            let allowed = routes.methods(matching: request.uri.path)
            guard !allowed.isEmpty else {
                let method = context.clientMethod(of: request)
                return try APIError(.notFound, "no route \(method) \(request.uri.path)").response(
                    from: request, context: context)
            }
            var response = try APIError(
                .methodNotAllowed, "\(request.uri.path) accepts \(allowed.joined(separator: ", "))"
            ).response(from: request, context: context)
            response.headers[.allow] = allowed.joined(separator: ", ")
            return response
        case .contentTooLarge:
            return try APIError(.payloadTooLarge, "the body is larger than \(context.maxUploadSize) bytes").response(
                from: request, context: context)
        case .unauthorized:
            return try APIError(.unauthorized, error.body ?? "a bearer token is required").response(
                from: request, context: context)
        case .badRequest:
            return try APIError(.invalidParameter, error.body ?? "bad request").response(
                from: request, context: context)
        default:
            let code: APIError.Code = error.status.code >= 500 ? .internalError : .invalidParameter
            return try APIError(code, error.body ?? error.status.reasonPhrase).response(from: request, context: context)
        }
    }
}

/// The registered routes' paths and methods, to tell 404 from 405.
struct RouteTable: Sendable {
    struct Route: Sendable {
        let segments: [String]
        let method: String
    }
    let routes: [Route]

    init(_ routes: [(path: String, method: String)]) {
        self.routes = routes.map { Route(segments: Self.segments($0.path), method: $0.method) }
    }

    func methods(matching path: String) -> [String] {
        let requested = Self.segments(path)
        return routes.filter { route in
            route.segments.count == requested.count
                && zip(route.segments, requested).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
        }.map(\.method).sorted()
    }

    static func segments(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    }
}
