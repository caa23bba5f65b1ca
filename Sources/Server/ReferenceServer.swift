// A bare Hummingbird 2 application: one route (GET /health, answering the same small JSON as
// `stockdrop serve`), no middleware, the same event-loop group and HTTP/1.1 settings. The HTTP
// bench runs it beside the real server in the same session, so the server's own costs (its
// middleware, its WebSocket-capable pipeline, the engine) show as a ratio to what Hummingbird
// alone costs on this machine, not as raw figures from a machine that cannot be compared.
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

public func buildReferenceApplication(
    host: String, port: Int, eventLoopThreads: Int? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router()
    let body = ByteBuffer(string: #"{"status":"ok","strategy":"none"}"#)
    router.get("/health") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: body))
    }
    var logger = Logger(label: "reference")
    logger.logLevel = .warning
    return Application(
        router: router,
        configuration: .init(
            address: .hostname(host, port: port), serverName: "reference", backlog: ServerDefaults.listenBacklog),
        onServerRunning: onServerRunning,
        eventLoopGroupProvider: eventLoopThreads.map { .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0)) }
            ?? .singleton,
        logger: logger)
}
