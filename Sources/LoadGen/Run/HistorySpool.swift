// The run's client history as it grows: kept in memory up to a budget, then appended to a file
// as fixed 80-byte records, so a soak's memory stays flat however long it runs. At the end the
// whole history is read back, in the order it was recorded, for the checker and the report.
import Engine
import Foundation
import Synchronization

final class HistorySpool: Sendable {
    private struct State {
        var memory: [OperationRecord] = []
        var file: FileHandle?
        var path: String?
        var spooled = 0
        var pending: [UInt8] = []
    }

    /// Records kept in memory before the spool starts writing to disk.
    let memoryBudget: Int
    private let state = Mutex(State())

    init(memoryBudget: Int = LoadDefaults.historyMemoryRecords) {
        self.memoryBudget = memoryBudget
    }

    deinit {
        state.withLock { state in
            try? state.file?.close()
            if let path = state.path { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    var spooledCount: Int { state.withLock { $0.spooled + $0.pending.count / Self.recordBytes } }

    func append(_ record: OperationRecord) {
        state.withLock { state in
            if state.file == nil, state.memory.count < memoryBudget {
                state.memory.append(record)
                return
            }
            if state.file == nil { Self.open(&state) }
            Self.encode(record, into: &state.pending)
            if state.pending.count >= Self.flushBytes { Self.flush(&state) }
        }
    }

    /// Every record, in the order appended: those kept in memory, then the file's.
    func all() throws -> [OperationRecord] {
        try state.withLock { state in
            Self.flush(&state)
            var records = state.memory
            guard let path = state.path, state.spooled > 0 else { return records }
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard data.count == state.spooled * Self.recordBytes else {
                throw RunError.unavailable(
                    "the spooled history at \(path) has \(data.count) bytes, not \(state.spooled) records")
            }
            records.reserveCapacity(records.count + state.spooled)
            try data.withUnsafeBytes { bytes in
                for offset in stride(from: 0, to: bytes.count, by: Self.recordBytes) {
                    records.append(
                        try Self.decode(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Self.recordBytes])))
                }
            }
            return records
        }
    }

    // MARK: - The file

    static let recordBytes = 80
    private static let flushBytes = 1 << 20

    private static func open(_ state: inout State) {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent(
                "stockdrop-history-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).bin"
            ).path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        state.path = path
        state.file = FileHandle(forWritingAtPath: path)
        state.pending.reserveCapacity(flushBytes + recordBytes)
    }

    private static func flush(_ state: inout State) {
        guard let file = state.file, !state.pending.isEmpty else { return }
        // A history that cannot be written cannot be checked: stop rather than judge a part.
        do { try file.write(contentsOf: state.pending) } catch {
            fatalError("the client history could not be spooled to \(state.path ?? "?"): \(error)")
        }
        state.spooled += state.pending.count / recordBytes
        state.pending.removeAll(keepingCapacity: true)
    }

    /// operation, result, rejection, flags, 4 spare bytes, then nine little-endian Int64s:
    /// user, drop, reservation, purchase, intended, sent, answered, connect, connection wait.
    static func encode(_ record: OperationRecord, into bytes: inout [UInt8]) {
        let (result, rejection): (UInt8, UInt8) =
            switch record.result {
            case .ok: (0, 0)
            case .rejected(let code): (1, UInt8(RejectionCode.allCases.firstIndex(of: code)!))
            case .failed: (2, 0)
            case .error: (3, 0)
            case .timeout: (4, 0)
            }
        let flags = UInt8(record.reservationID == nil ? 0 : 1) | UInt8(record.purchaseID == nil ? 0 : 2)
        let operation = UInt8(OperationKind.allCases.firstIndex(of: record.operation)!)
        let start = bytes.count
        // Stored in place, field by field: a literal array of the fields cost an allocation
        // per record, and appending each field to a Data a tenth of the generator's CPU.
        bytes.append(contentsOf: repeatElement(0, count: recordBytes))
        bytes.withUnsafeMutableBytes { raw in
            raw[start] = operation
            raw[start + 1] = result
            raw[start + 2] = rejection
            raw[start + 3] = flags
            func store(_ value: Int64, _ index: Int) {
                raw.storeBytes(of: value.littleEndian, toByteOffset: start + 8 + index * 8, as: Int64.self)
            }
            store(record.user, 0)
            store(record.drop, 1)
            store(record.reservationID ?? 0, 2)
            store(record.purchaseID ?? 0, 3)
            store(record.intendedMicroseconds, 4)
            store(record.sentMicroseconds, 5)
            store(record.answeredMicroseconds, 6)
            store(record.connectMicroseconds, 7)
            store(record.connectionWaitMicroseconds, 8)
        }
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws -> OperationRecord {
        func int64(_ index: Int) -> Int64 {
            Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 + index * 8, as: Int64.self))
        }
        guard Int(bytes[0]) < OperationKind.allCases.count, Int(bytes[2]) < RejectionCode.allCases.count else {
            throw RunError.unavailable("a spooled history record is corrupt")
        }
        let result: OperationRecord.Result
        switch bytes[1] {
        case 0: result = .ok
        case 1: result = .rejected(RejectionCode.allCases[Int(bytes[2])])
        case 2: result = .failed
        case 3: result = .error
        case 4: result = .timeout
        default: throw RunError.unavailable("a spooled history record is corrupt")
        }
        return OperationRecord(
            operation: OperationKind.allCases[Int(bytes[0])], result: result, user: int64(0), drop: int64(1),
            reservationID: bytes[3] & 1 != 0 ? int64(2) : nil, purchaseID: bytes[3] & 2 != 0 ? int64(3) : nil,
            intendedMicroseconds: int64(4), sentMicroseconds: int64(5), answeredMicroseconds: int64(6),
            connectMicroseconds: int64(7), connectionWaitMicroseconds: int64(8))
    }
}
