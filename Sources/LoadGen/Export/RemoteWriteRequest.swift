// Prometheus remote write 1.0 as bytes: a `WriteRequest` protobuf (time series of labels and
// samples, and each family's type and HELP as metadata), block-compressed with snappy. Pure:
// the exporter sends what this returns.
import Foundation

public struct RemoteWriteRequest: Sendable, Equatable {
    public struct Series: Sendable, Equatable {
        /// The metric's name, sent as the `__name__` label.
        public var name: String
        /// Every other label; all are written sorted by name.
        public var labels: [String: String]
        public var value: Double
        public var timestampMilliseconds: Int64
    }

    public struct Metadata: Sendable, Equatable {
        public enum Kind: Int, Sendable {
            case counter = 1
            case gauge = 2
        }
        public var family: String
        public var kind: Kind
        public var help: String
    }

    public var series: [Series]
    public var metadata: [Metadata]

    /// The protobuf encoding of `prometheus.WriteRequest`.
    public var protobuf: [UInt8] {
        var out: [UInt8] = []
        for series in series {
            var body: [UInt8] = []
            // Sorted by name with `__name__` among them, as receivers require.
            let labels = series.labels.merging(["__name__": series.name]) { $1 }.sorted {
                $0.key.utf8.lexicographicallyPrecedes($1.key.utf8)
            }
            for (name, value) in labels where !value.isEmpty {
                var label: [UInt8] = []
                Self.appendField(1, bytes: Array(name.utf8), to: &label)
                Self.appendField(2, bytes: Array(value.utf8), to: &label)
                Self.appendField(1, bytes: label, to: &body)
            }
            var sample: [UInt8] = [0x09]  // field 1, 64-bit
            withUnsafeBytes(of: series.value.bitPattern.littleEndian) { sample.append(contentsOf: $0) }
            sample.append(0x10)  // field 2, varint
            Self.appendVarint(UInt64(bitPattern: series.timestampMilliseconds), to: &sample)
            Self.appendField(2, bytes: sample, to: &body)
            Self.appendField(1, bytes: body, to: &out)
        }
        for metadata in metadata {
            var body: [UInt8] = [0x08]  // field 1, varint: the type
            Self.appendVarint(UInt64(metadata.kind.rawValue), to: &body)
            Self.appendField(2, bytes: Array(metadata.family.utf8), to: &body)
            Self.appendField(4, bytes: Array(metadata.help.utf8), to: &body)
            Self.appendField(3, bytes: body, to: &out)
        }
        return out
    }

    /// What goes on the wire: the protobuf, snappy block format.
    public var body: [UInt8] { Snappy.compress(protobuf) }

    static func appendField(_ number: UInt64, bytes: [UInt8], to out: inout [UInt8]) {
        appendVarint(number << 3 | 2, to: &out)  // length-delimited
        appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }
}
