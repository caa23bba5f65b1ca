// Every answer of the drop routes names the instance that made it (`X-Stockdrop-Instance`): an
// operator reading a response knows which instance to look at. A claim forwarded to its owner
// keeps the owner's name.
import Hummingbird

struct InstanceHeader: RouterMiddleware {
    typealias Context = StockdropContext
    let instance: String

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response = try await next(request, context)
        if response.headers[.stockdropInstance] == nil { response.headers[.stockdropInstance] = instance }
        return response
    }
}
