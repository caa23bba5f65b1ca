// Whether `serve` can listen where it was told, asked of the kernel before anything starts: a
// port in use let the engine start and log "requests answered; engine draining" and "shutting
// down: draining requests" before the bind error, exit 1, as if the server had run and stopped.
import Foundation

enum ListenProbe {
    /// Why a listening socket cannot be bound to `host`:`port` (the kernel's words), or nil when
    /// it can, or when the host does not resolve here (the server's own bind says why then).
    static func whyCannotListen(host: String, port: Int) -> String? {
        guard port > 0 else { return nil }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let address = found else { return nil }
        defer { freeaddrinfo(found) }
        let socket = Glibc.socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return nil }
        defer { close(socket) }
        // As the server's own socket: a port left in TIME_WAIT by a previous run is not in use.
        var on: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(socket, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 else {
            return String(cString: strerror(errno))
        }
        return nil
    }
}
