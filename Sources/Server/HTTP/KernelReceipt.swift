// When the server received a request: the kernel's receipt, not the event loop's read. Under
// overload (4,096 connections, the event loops on cores that PostgreSQL and a load generator
// also want) one turn of an event loop over its ready sockets takes a hundred milliseconds or
// more, and a request waits that long in its socket before its head is read. A purchase sent
// 125 ms before its hold expired was read after the expiry and refused `expired`, though the
// server had it in time. TCP_INFO's `tcpi_last_data_recv` says how long ago the socket last
// received data; the request's own bytes are among the last received (a client that sent more
// since only makes it later), so `now` minus that is never before the request arrived. It counts
// in kernel ticks (4 ms at this kernel's 250 Hz; a reading can be up to a tick long) and the
// clock is read after the socket, so the wait is taken `resolution` short: the stamp may be that
// much late, never early. Not TCP (a Unix socket, a test's embedded channel): the read's own
// instant. The kernel is asked for every POST but a reserve (a purchase is judged by its stamp)
// and, while the event loops run late, for every request (the server's own latency counts from
// the stamp); otherwise the socket cannot have held a request much longer than the resolution,
// and asking costs a reserve answered from memory ~3 µs of its ~40 (measured).
import HTTPTypes
import NIOCore

enum KernelReceipt {
    /// Two kernel ticks at 100 Hz, the slowest tick Linux has: TCP_INFO's reading can be a
    /// tick long.
    static let resolutionMilliseconds: UInt32 = 20

    /// Whether the kernel's receipt can move `request`'s stamp by more than the resolution, or
    /// matters beyond its latency figure.
    static func worthAsking(_ request: HTTPRequest, loopLagMicroseconds: Int64) -> Bool {
        loopLagMicroseconds >= Int64(resolutionMilliseconds) * 1_000
            || (request.method == .post && !ShedHandler.isReserve(request))
    }

    /// The instant the socket received the request: the clock, read after the socket (a delay
    /// between the two makes the stamp later, not earlier), less the socket's wait.
    static func receivedAt(channel: any Channel) -> NIODeadline {
        let ago = lastDataReceivedMillisecondsAgo(channel)
        return receivedAt(now: NIODeadline.now(), lastDataReceivedMillisecondsAgo: ago)
    }

    static func receivedAt(now: NIODeadline, lastDataReceivedMillisecondsAgo: UInt32?) -> NIODeadline {
        guard let ago = lastDataReceivedMillisecondsAgo, ago > resolutionMilliseconds else { return now }
        let waited = TimeAmount.milliseconds(Int64(ago - resolutionMilliseconds))
        // Never before the monotonic clock's zero (a freshly booted machine).
        return now.uptimeNanoseconds > UInt64(waited.nanoseconds) ? now - waited : now
    }

    /// TCP_INFO's milliseconds since the socket last received data, read on the event loop
    /// (the channel's, so the future is already complete and its callback runs here).
    private static func lastDataReceivedMillisecondsAgo(_ channel: any Channel) -> UInt32? {
        #if os(Linux)
            guard channel.eventLoop.inEventLoop, let provider = channel as? any SocketOptionProvider else { return nil }
            var ago: UInt32?
            provider.getTCPInfo().assumeIsolated().whenSuccess { ago = $0.tcpi_last_data_recv }
            return ago
        #else
            return nil
        #endif
    }
}
