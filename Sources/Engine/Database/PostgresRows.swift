// A query's result, copied out of libpq into plain Swift values so it can cross threads.
import Foundation

public struct PostgresRows: Sendable {
    public let columns: [String]
    /// Column name to position, built once per result (rows look columns up by name).
    let columnIndex: [String: Int]
    /// Row-major text cells; nil is SQL NULL.
    let cells: [String?]
    /// Rows touched by INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 for other commands.
    public let affectedRows: Int

    init(columns: [String], cells: [String?], affectedRows: Int) {
        self.columns = columns
        self.columnIndex = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        self.cells = cells
        self.affectedRows = affectedRows
    }

    public var count: Int { columns.isEmpty ? 0 : cells.count / columns.count }
    public var isEmpty: Bool { count == 0 }
    public var first: PostgresRow? { isEmpty ? nil : self[0] }

    public subscript(index: Int) -> PostgresRow {
        precondition(index >= 0 && index < count, "row \(index) of \(count)")
        return PostgresRow(rows: self, offset: index * columns.count)
    }

    public var rows: [PostgresRow] { (0..<count).map { self[$0] } }
}

/// One row; typed getters throw `PostgresError.decoding` naming the column on a mismatch.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let offset: Int

    public func isNull(_ column: String) throws -> Bool { try raw(column) == nil }

    public func raw(_ column: String) throws -> String? {
        guard let index = rows.columnIndex[column] else {
            throw PostgresError.decoding("no column \"\(column)\" in \(rows.columns)")
        }
        return rows.cells[offset + index]
    }

    private func required(_ column: String) throws -> String {
        guard let text = try raw(column) else {
            throw PostgresError.decoding("column \"\(column)\" is NULL")
        }
        return text
    }

    private func decode<T>(_ column: String, as type: String, _ parse: (String) -> T?) throws -> T {
        let text = try required(column)
        guard let value = parse(text) else {
            throw PostgresError.decoding("column \"\(column)\": \"\(text)\" is not \(type)")
        }
        return value
    }

    public func string(_ column: String) throws -> String { try required(column) }
    public func int64(_ column: String) throws -> Int64 { try decode(column, as: "a bigint") { Int64($0) } }
    public func int(_ column: String) throws -> Int { try decode(column, as: "an integer") { Int($0) } }
    public func double(_ column: String) throws -> Double { try decode(column, as: "a number") { Double($0) } }
    public func bool(_ column: String) throws -> Bool {
        try decode(column, as: "a boolean") { $0 == "t" ? true : ($0 == "f" ? false : nil) }
    }
    public func date(_ column: String) throws -> Date {
        try decode(column, as: "a timestamptz", PostgresTimestamp.parse)
    }
    /// bytea in PostgreSQL's hex output format (`\x0a0b`).
    public func bytes(_ column: String) throws -> [UInt8] {
        try decode(column, as: "bytea") { text in
            guard text.hasPrefix("\\x") else { return nil }
            let hex = Array(text.utf8.dropFirst(2))
            guard hex.count % 2 == 0 else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(hex.count / 2)
            var index = 0
            while index < hex.count {
                guard let byte = UInt8(String(decoding: hex[index..<index + 2], as: UTF8.self), radix: 16) else {
                    return nil
                }
                out.append(byte)
                index += 2
            }
            return out
        }
    }
    public func int64Array(_ column: String) throws -> [Int64] {
        try decode(column, as: "a bigint[]") { text in
            guard text.hasPrefix("{"), text.hasSuffix("}") else { return nil }
            let body = text.dropFirst().dropLast()
            if body.isEmpty { return [] }
            var out: [Int64] = []
            for part in body.split(separator: ",") {
                guard let value = Int64(part) else { return nil }
                out.append(value)
            }
            return out
        }
    }

    public func optionalDate(_ column: String) throws -> Date? { try isNull(column) ? nil : try date(column) }
    public func optionalString(_ column: String) throws -> String? { try raw(column) }
    public func optionalInt64(_ column: String) throws -> Int64? { try isNull(column) ? nil : try int64(column) }
}
