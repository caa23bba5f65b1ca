// A TCP proxy in front of PostgreSQL that the harness can pause: the database then looks
// hung rather than gone (connections are accepted, bytes are taken, nothing comes back), the
// failure that neither TCP keepalives nor statement_timeout notice. It can also lose the
// database's replies only: statements arrive and commit, their answers never come back. No
// root or iptables needed: clients are pointed at the proxy's loopback port instead.
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

public final class FaultProxy: Sendable {
    public enum Upstream: Sendable {
        case unixSocket(String)
        case tcp(host: String, port: Int)
    }

    /// The loopback port clients connect to.
    public let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let state: NIOLockedValueBox<State>

    private struct State {
        var paused = false
        /// Bytes from the database are thrown away (requests still go through).
        var repliesLost = false
        var channels: [ObjectIdentifier: any Channel] = [:]
    }

    /// Starts listening on 127.0.0.1 (port 0: any free port).
    public static func start(upstream: Upstream, port: Int = 0) async throws -> FaultProxy {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = NIOLockedValueBox(State())
        do {
            let listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { inbound in
                    Self.bridge(inbound, to: upstream, state: state)
                }
                .bind(host: "127.0.0.1", port: port).get()
            return FaultProxy(port: listener.localAddress?.port ?? port, group: group, listener: listener, state: state)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(port: Int, group: MultiThreadedEventLoopGroup, listener: any Channel, state: NIOLockedValueBox<State>)
    {
        self.port = port
        self.group = group
        self.listener = listener
        self.state = state
    }

    public var isPaused: Bool { state.withLockedValue { $0.paused } }

    /// Stops moving bytes both ways on every connection, open and future; the kernel's
    /// buffers keep accepting them until full, as a hung host's would.
    public func pause() {
        let channels = state.withLockedValue { state in
            state.paused = true
            return Array(state.channels.values)
        }
        for channel in channels { channel.setOption(.autoRead, value: false).whenComplete { _ in } }
    }

    /// From now on the database's replies are thrown away, on every connection: statements
    /// reach it and commit, and their clients never hear of it (until `resume`).
    public func loseReplies() {
        state.withLockedValue { $0.repliesLost = true }
    }

    /// Moves bytes again; what was held is delivered in order (replies lost are gone).
    public func resume() {
        let channels = state.withLockedValue { state in
            state.paused = false
            state.repliesLost = false
            return Array(state.channels.values)
        }
        for channel in channels {
            channel.setOption(.autoRead, value: true).whenComplete { _ in }
            channel.read()
        }
    }

    /// Closes every proxied connection (both sides), as a restarted host would.
    public func dropConnections() {
        let channels = state.withLockedValue { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
    }

    public func stop() async {
        dropConnections()
        try? await listener.close()
        try? await group.shutdownGracefully()
    }

    /// Connects the accepted client to the upstream and splices the two channels; the client's
    /// channel becomes active (and reads, unless paused) once this is done.
    private static func bridge(
        _ inbound: any Channel, to upstream: Upstream, state: NIOLockedValueBox<State>
    )
        -> EventLoopFuture<Void>
    {
        let paused = state.withLockedValue { $0.paused }
        let bootstrap = ClientBootstrap(group: inbound.eventLoop).channelOption(.autoRead, value: !paused)
        let connecting: EventLoopFuture<any Channel> =
            switch upstream {
            case .unixSocket(let path): bootstrap.connect(unixDomainSocketPath: path)
            case .tcp(let host, let port): bootstrap.connect(host: host, port: port)
            }
        return connecting.flatMap { outbound in
            let inboundSplice = SpliceHandler(partner: outbound)
            let outboundSplice = SpliceHandler(partner: inbound) { state.withLockedValue { $0.repliesLost } }
            let paused = state.withLockedValue { state in
                state.channels[ObjectIdentifier(inbound)] = inbound
                state.channels[ObjectIdentifier(outbound)] = outbound
                return state.paused
            }
            let forget: @Sendable (Result<Void, any Error>) -> Void = { _ in
                state.withLockedValue { state in
                    state.channels[ObjectIdentifier(inbound)] = nil
                    state.channels[ObjectIdentifier(outbound)] = nil
                }
            }
            inbound.closeFuture.whenComplete(forget)
            outbound.closeFuture.whenComplete(forget)
            return inbound.pipeline.addHandler(inboundSplice)
                .flatMap { outbound.pipeline.addHandler(outboundSplice) }
                .flatMap { inbound.setOption(.autoRead, value: !paused) }
                .flatMap { outbound.setOption(.autoRead, value: !paused) }
        }
        .flatMapErrorThrowing { error in
            inbound.close(promise: nil)
            throw error
        }
    }
}

/// Writes what one side reads to the other, and closes the other when one side closes.
private final class SpliceHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let partner: any Channel
    /// True while what this side reads is to be thrown away.
    private let discarding: @Sendable () -> Bool

    init(partner: any Channel, discarding: @escaping @Sendable () -> Bool = { false }) {
        self.partner = partner
        self.discarding = discarding
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if discarding() { return }
        partner.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
