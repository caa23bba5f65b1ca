// Writes a run's report directory: report.json, report.md, report.html and, when asked, each
// strategy's client history for `stockdrop check --history`.
import Foundation

public enum ReportWriter {
    /// `reports/<UTC time>-<scenario>/` under `root`, created.
    public static func directory(root: String, scenario: String, startedAt: Date) throws -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let slug = scenario.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }.reduce(into: "") {
            $0.append($1)
        }
        let path = (root as NSString).appendingPathComponent("\(formatter.string(from: startedAt))-\(slug)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public static func write(_ report: RunReport, to directory: String, histories: [String: ClientHistory] = [:]) throws
    {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(report).write(to: URL(fileURLWithPath: directory).appendingPathComponent("report.json"))
        try Data(report.markdown.utf8).write(to: URL(fileURLWithPath: directory).appendingPathComponent("report.md"))
        try Data(report.html.utf8).write(to: URL(fileURLWithPath: directory).appendingPathComponent("report.html"))
        encoder.outputFormatting = []
        for (strategy, history) in histories {
            try encoder.encode(history).write(
                to: URL(fileURLWithPath: directory).appendingPathComponent("history-\(strategy).json"))
        }
    }

    /// A client history (`run --keep-history`); what is wrong with the file, in words, if it
    /// is not one.
    public static func readHistory(_ path: String) throws -> ClientHistory {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HistoryUnreadable(
                description: UnreadableFile.reason(path, what: "a history") {
                    $0.hasPrefix("history-") && $0.hasSuffix(".json")
                })
        }
        do {
            return try JSONDecoder().decode(ClientHistory.self, from: data)
        } catch {
            throw HistoryUnreadable(
                description:
                    "it is not a client history (`run --keep-history` writes one per strategy, history-<strategy>.json)"
            )
        }
    }

    public struct HistoryUnreadable: Error, CustomStringConvertible {
        public let description: String
    }
}
