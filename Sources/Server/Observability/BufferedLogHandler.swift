// swift-log's handler for `stockdrop serve`: StreamLogHandler's line format, handed to a
// `LogSink` instead of written on the calling thread. A line is an error line (never dropped)
// at notice or above, or when it reports a request answered with a status of 400 or more.
import Logging

public struct BufferedLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    /// Rendered only when a line is written: Hummingbird sets a request id on every
    /// request's logger, logged or not.
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: LogSink

    public init(label: String, sink: LogSink, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let explicit = event.metadata ?? [:]
        var base = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { base.merge(provided) { $1 } }
        // The logger's own pairs (sorted), then the line's (sorted): no merged dictionary to
        // build and sort per request line. A key the line repeats is the line's.
        var rendered = Self.render(explicit.isEmpty ? base : base.filter { explicit[$0.key] == nil })
        if !explicit.isEmpty { rendered += (rendered.isEmpty ? "" : " ") + Self.render(explicit) }
        let line =
            "\(sink.timestampNow()) \(event.level) \(label):\(rendered.isEmpty ? "" : " " + rendered) [\(event.source)] \(Self.oneLine("\(event.message)"))\n"
        sink.append(line, droppable: !Self.isErrorLine(level: event.level, metadata: explicit))
    }

    static func isErrorLine(level: Logger.Level, metadata: Logger.Metadata) -> Bool {
        if level >= .notice { return true }
        if case .stringConvertible(let status) = metadata["status"], let code = Int("\(status)") {
            return isErrorStatus(code)
        }
        if case .string(let status) = metadata["status"], let code = Int(status) { return isErrorStatus(code) }
        return false
    }

    /// A request answered with this status gets an error line: always written, never sampled
    /// out nor dropped.
    static func isErrorStatus(_ status: Int) -> Bool { status >= 400 }

    /// `key=value` pairs sorted by key, as StreamLogHandler prints them.
    static func render(_ metadata: Logger.Metadata) -> String {
        metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\(oneLine("\($0.value)"))" }.joined(separator: " ")
    }

    /// One entry, one line: control characters (libpq's errors carry a newline and a tab) are
    /// escaped, so a log reader never takes the rest of an entry for a new one.
    static func oneLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            case "\r": escaped += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
