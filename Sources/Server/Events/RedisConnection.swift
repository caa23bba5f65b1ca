// The only file that touches hiredis: a blocking Redis connection for publishing live events.
// hiredis blocks, so like libpq it runs on a thread of its own, never on the cooperative pool.
import CHiredis
import Engine
import Foundation
import Glibc

public struct RedisError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { "Redis error: \(message)" }
}

/// A Redis reply, copied out of hiredis.
public enum RedisReply: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case array([RedisReply])
    case null
    case status(String)
}

public final class RedisConnection: @unchecked Sendable {
    // Touched only inside `lock`.
    private var context: UnsafeMutablePointer<redisContext>?
    private let lock = NSLock()

    /// Connects to `redis://[user:password@]host:port` or `unix:///path/to/socket`, giving up
    /// after `timeoutMilliseconds` (a firewalled host would otherwise hold a thread for
    /// minutes), and authenticates when the URL carries a password (`AUTH password`, or
    /// `AUTH user password` for a Redis 6 ACL user).
    public init(url: String, timeoutMilliseconds: Int = 2_000) throws {
        let context: UnsafeMutablePointer<redisContext>?
        let timeout = Self.timeval(milliseconds: timeoutMilliseconds)
        if url.hasPrefix("unix://") {
            context = redisConnectUnixWithTimeout(String(url.dropFirst("unix://".count)), timeout)
        } else {
            let address = URL(string: url)
            context = redisConnectWithTimeout(address?.host ?? "127.0.0.1", Int32(address?.port ?? 6379), timeout)
        }
        guard let context else { throw RedisError(message: "cannot allocate a Redis context") }
        if context.pointee.err != 0 {
            let message = Self.errorText(context)
            redisFree(context)
            throw RedisError(message: "connecting to \(RedactedURL.of(url)): \(message)")
        }
        self.context = context
        fileDescriptor = context.pointee.fd
        isUnixSocket = url.hasPrefix("unix://")
        if let credentials = Self.credentials(url) {
            do {
                _ = try command(["AUTH"] + (credentials.user.map { [$0] } ?? []) + [credentials.password])
            } catch {
                throw RedisError(message: "Redis at \(RedactedURL.of(url)) refused the credentials")
            }
        }
    }

    /// The user and password of a `redis://` URL (percent-decoded), if it has a password.
    static func credentials(_ url: String) -> (user: String?, password: String)? {
        guard url.hasPrefix("redis://"), let parts = URLComponents(string: url),
            let password = parts.percentEncodedPassword?.removingPercentEncoding, !password.isEmpty
        else { return nil }
        let user = parts.percentEncodedUser?.removingPercentEncoding
        return (user?.isEmpty == false ? user : nil, password)
    }

    private let fileDescriptor: Int32
    private let isUnixSocket: Bool

    deinit { if let context { redisFree(context) } }

    /// Sends one command with binary-safe arguments and waits for its reply.
    public func command(_ arguments: [String]) throws -> RedisReply {
        try pipeline([arguments])[0]
    }

    /// Sends every command before reading any reply (one round trip for all of them, as
    /// hiredis's pipelining does it: append each, then read each reply in order).
    public func pipeline(_ commands: [[String]]) throws -> [RedisReply] {
        lock.lock()
        defer { lock.unlock() }
        guard let context else { throw RedisError(message: "connection is closed") }
        for arguments in commands {
            guard Self.append(arguments, to: context) == REDIS_OK else {
                throw RedisError(message: Self.errorText(context))
            }
        }
        return try commands.map { _ in
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw RedisError(message: Self.errorText(context))
            }
            defer { freeReplyObject(raw) }
            return try Self.convert(raw.assumingMemoryBound(to: redisReply.self).pointee)
        }
    }

    private static func append(_ arguments: [String], to context: UnsafeMutablePointer<redisContext>) -> Int32 {
        let bytes = arguments.map { Array($0.utf8) }
        let pointers = bytes.map { bytes -> UnsafeMutablePointer<CChar> in
            let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
            bytes.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { pointer.update(from: $0.baseAddress!, count: bytes.count) }
            }
            return pointer
        }
        defer { pointers.forEach { $0.deallocate() } }
        var constPointers = pointers.map { UnsafePointer<CChar>?($0) }
        let lengths = bytes.map(\.count)
        return constPointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { argvlen in
                redisAppendCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
            }
        }
    }

    /// Bounds every later read and write: a reply that does not come in time is an error.
    public func setTimeout(milliseconds: Int) {
        lock.lock()
        defer { lock.unlock() }
        if let context { _ = redisSetTimeout(context, Self.timeval(milliseconds: milliseconds)) }
    }

    /// TCP keepalive, so a subscriber on a half-open connection notices it is gone (Unix
    /// sockets have no half-open state; hiredis would flag the call as an error on them).
    public func enableKeepAlive() {
        lock.lock()
        defer { lock.unlock() }
        if let context, !isUnixSocket { _ = redisEnableKeepAlive(context) }
    }

    private static func timeval(milliseconds: Int) -> Glibc.timeval {
        Glibc.timeval(tv_sec: milliseconds / 1_000, tv_usec: (milliseconds % 1_000) * 1_000)
    }

    /// Waits for the next reply pushed by the server (after SUBSCRIBE: each message).
    public func nextReply() throws -> RedisReply {
        lock.lock()
        defer { lock.unlock() }
        guard let context else { throw RedisError(message: "connection is closed") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw RedisError(message: Self.errorText(context))
        }
        defer { freeReplyObject(raw) }
        return try Self.convert(raw.assumingMemoryBound(to: redisReply.self).pointee)
    }

    /// Shuts the socket down from any thread, so a reader blocked in `nextReply` returns.
    public func interrupt() {
        _ = Foundation.shutdown(fileDescriptor, Int32(SHUT_RDWR))
    }

    /// Publishes `message` on `channel`; returns how many subscribers received it.
    @discardableResult
    public func publish(channel: String, message: String) throws -> Int64 {
        try publish(channel: channel, messages: [message])[0]
    }

    /// Publishes every message in one pipelined round trip; the receivers of each.
    @discardableResult
    public func publish(channel: String, messages: [String]) throws -> [Int64] {
        try pipeline(messages.map { ["PUBLISH", channel, $0] }).map { reply in
            guard case .integer(let receivers) = reply else { throw RedisError(message: "unexpected reply to PUBLISH") }
            return receivers
        }
    }

    private static func convert(_ reply: redisReply) throws -> RedisReply {
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .string(String(decoding: UnsafeRawBufferPointer(start: reply.str, count: reply.len), as: UTF8.self))
        case REDIS_REPLY_STATUS:
            return .status(String(cString: reply.str))
        case REDIS_REPLY_INTEGER:
            return .integer(reply.integer)
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            return .array(try (0..<reply.elements).map { try convert(reply.element[$0]!.pointee) })
        case REDIS_REPLY_ERROR:
            throw RedisError(message: String(cString: reply.str))
        default:
            return .null
        }
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
