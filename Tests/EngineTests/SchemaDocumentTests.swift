// docs/schema.sql is the schema the migrations produce, not a description that drifts from it:
// a freshly migrated database dumped by scripts/schema.sh must equal it byte for byte.
import Engine
import Foundation
import TestSupport
import Testing

@Suite("schema document") struct SchemaDocumentTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// A migration changed without regenerating the document (or the other way round) fails
    /// here, so a reader of docs/schema.sql sees what the database really holds.
    @Test func docsSchemaEqualsAFreshlyMigratedDatabase() async throws {
        let url = try await TestDatabase.fresh("schema-document")
        let dumped = try await Self.dumpSchema(url)
        let documentPath = Self.packageRoot.appendingPathComponent("docs/schema.sql").path
        let document = try String(contentsOfFile: documentPath, encoding: .utf8)
        // pg_dump prints a schema differently from one major version to the next: a machine
        // with another one than the document's compares nothing (and says so).
        let version = { (text: String) in text.split(separator: "\n").first { $0.hasPrefix("-- pg_dump ") } }
        guard version(dumped) == version(document) else {
            print(
                "schema document: made by \(version(document) ?? "?"), this machine has \(version(dumped) ?? "?"): not compared"
            )
            return
        }
        // Recorded with the first difference only: the two whole files would bury it.
        guard dumped != document else { return }
        Issue.record(
            """
            docs/schema.sql differs from what the migrations produce: regenerate it with \
            `scripts/schema.sh --fresh > docs/schema.sql` (with STOCKDROP_BIN naming a built stockdrop). \
            \(Self.firstDifference(dumped: dumped, document: document))
            """)
    }

    /// scripts/schema.sh on `url` (pg_dump, normalized), as the document was made.
    static func dumpSchema(_ url: String) async throws -> String {
        let errors = NSTemporaryDirectory() + "stockdrop-schema-\(UUID().uuidString).err"
        defer { try? FileManager.default.removeItem(atPath: errors) }
        // The dump is standard output alone; what the script complains about goes aside.
        let dump = try await ChildSpawn.run(
            "/bin/sh",
            [
                "-c", "exec bash \"$0\" \"$1\" 2>\"$2\"", packageRoot.appendingPathComponent("scripts/schema.sh").path,
                url, errors,
            ])
        let complaints = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        try #require(dump.exit == .exited(0), "scripts/schema.sh \(url) failed (\(dump.exit)): \(complaints)")
        return dump.output
    }

    /// The first line where the two differ, numbered from 1, with each side's text.
    static func firstDifference(dumped: String, document: String) -> String {
        let dumpedLines = dumped.split(separator: "\n", omittingEmptySubsequences: false)
        let documentLines = document.split(separator: "\n", omittingEmptySubsequences: false)
        for index in 0..<max(dumpedLines.count, documentLines.count) {
            let fromDatabase = index < dumpedLines.count ? String(dumpedLines[index]) : nil
            let fromDocument = index < documentLines.count ? String(documentLines[index]) : nil
            if fromDatabase != fromDocument {
                return """
                    First difference at line \(index + 1): the database has \
                    \(fromDatabase.map { "`\($0)`" } ?? "no such line"), docs/schema.sql has \
                    \(fromDocument.map { "`\($0)`" } ?? "no such line").
                    """
            }
        }
        return "No line differs."
    }
}
