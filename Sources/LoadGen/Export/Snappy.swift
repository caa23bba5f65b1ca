// Snappy's block format, the compression Prometheus remote write requires: the uncompressed
// length as a varint, then literals and back-references. Greedy matching on 4-byte hashes,
// as the reference encoder does in spirit: a run's series repeat their label names and
// values, so most of a request is copies.
enum Snappy {
    static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2 + 16)
        RemoteWriteRequest.appendVarint(UInt64(input.count), to: &out)
        let count = input.count
        guard count >= 8 else {
            appendLiteral(input[...], to: &out)
            return out
        }
        let tableBits = 14
        var table = [Int](repeating: -1, count: 1 << tableBits)
        func load(_ i: Int) -> UInt32 {
            UInt32(input[i]) | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2]) << 16 | UInt32(input[i + 3]) << 24
        }
        func hash(_ value: UInt32) -> Int { Int((value &* 0x1E35_A7BD) >> UInt32(32 - tableBits)) }
        var literalStart = 0
        var i = 0
        while i + 4 <= count {
            let value = load(i)
            let slot = hash(value)
            let candidate = table[slot]
            table[slot] = i
            // Offsets up to 65,535 fit a 2-byte copy; farther back is not worth a 4-byte one here.
            guard candidate >= 0, i - candidate <= 65_535, load(candidate) == value else {
                i += 1
                continue
            }
            var length = 4
            while i + length < count && input[candidate + length] == input[i + length] { length += 1 }
            appendLiteral(input[literalStart..<i], to: &out)
            appendCopy(offset: i - candidate, length: length, to: &out)
            i += length
            literalStart = i
        }
        appendLiteral(input[literalStart..<count], to: &out)
        return out
    }

    static func appendLiteral(_ bytes: ArraySlice<UInt8>, to out: inout [UInt8]) {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let chunk = bytes[start..<min(start + 65_536, bytes.endIndex)]
            let n = chunk.count - 1
            if n < 60 {
                out.append(UInt8(n) << 2)
            } else if n < 1 << 8 {
                out.append(60 << 2)
                out.append(UInt8(n))
            } else {
                out.append(61 << 2)
                out.append(UInt8(n & 0xFF))
                out.append(UInt8(n >> 8))
            }
            out.append(contentsOf: chunk)
            start = chunk.endIndex
        }
    }

    /// Copies with a 2-byte offset, at most 64 bytes each.
    static func appendCopy(offset: Int, length: Int, to out: inout [UInt8]) {
        var remaining = length
        while remaining > 0 {
            // A copy of 1-3 bytes cannot be encoded: leave at least 4 for the last one.
            let take = remaining > 64 ? (remaining - 64 < 4 ? 60 : 64) : remaining
            out.append(UInt8(take - 1) << 2 | 0b10)
            out.append(UInt8(offset & 0xFF))
            out.append(UInt8(offset >> 8))
            remaining -= take
        }
    }

    /// The block format read back (the tests' check of `compress`).
    static func decompress(_ input: [UInt8]) -> [UInt8]? {
        var i = 0
        var length: UInt64 = 0
        var shift: UInt64 = 0
        while i < input.count {
            let byte = input[i]
            i += 1
            length |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        var out: [UInt8] = []
        out.reserveCapacity(Int(length))
        while i < input.count {
            let tag = input[i]
            i += 1
            switch tag & 0b11 {
            case 0:
                var n = Int(tag >> 2)
                if n >= 60 {
                    let extra = n - 59
                    guard i + extra <= input.count else { return nil }
                    n = 0
                    for k in 0..<extra { n |= Int(input[i + k]) << (8 * k) }
                    i += extra
                }
                n += 1
                guard i + n <= input.count else { return nil }
                out.append(contentsOf: input[i..<i + n])
                i += n
            case 2:
                guard i + 2 <= input.count else { return nil }
                let n = Int(tag >> 2) + 1
                let offset = Int(input[i]) | Int(input[i + 1]) << 8
                i += 2
                guard offset > 0, offset <= out.count else { return nil }
                for _ in 0..<n { out.append(out[out.count - offset]) }
            default:
                return nil  // 1-byte and 4-byte offsets: never written by `compress`
            }
        }
        return out.count == Int(length) ? out : nil
    }
}
