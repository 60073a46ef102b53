/// Marshalling of D-Bus values in little-endian byte order. Offsets are relative to the start of
/// the message; a message body starts 8-aligned, so a body marshalled on its own aligns the same.
struct WireWriter {
    var bytes: [UInt8] = []

    mutating func pad(to n: Int) {
        while bytes.count % n != 0 { bytes.append(0) }
    }

    mutating func uint32(_ v: UInt32) {
        pad(to: 4)
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }

    mutating func uint64(_ v: UInt64) {
        pad(to: 8)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        uint32(UInt32(utf8.count))
        bytes += utf8
        bytes.append(0)
    }

    mutating func write(_ value: DBusValue) {
        switch value {
        case .byte(let b): bytes.append(b)
        case .bool(let b): uint32(b ? 1 : 0)
        case .int32(let v): uint32(UInt32(bitPattern: v))
        case .uint32(let v): uint32(v)
        case .int64(let v): uint64(UInt64(bitPattern: v))
        case .uint64(let v): uint64(v)
        case .string(let s), .objectPath(let s): string(s)
        case .signature(let s):
            bytes.append(UInt8(truncatingIfNeeded: s.utf8.count))
            bytes += Array(s.utf8)
            bytes.append(0)
        case .array(let element, let items):
            uint32(0)
            let lengthAt = bytes.count - 4
            pad(to: alignment(of: element.utf8.first ?? UInt8(ascii: "y")))
            let start = bytes.count
            for item in items { write(item) }
            let length = UInt32(bytes.count - start)
            for i in 0..<4 { bytes[lengthAt + i] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(i))) }
        case .structure(let fields):
            pad(to: 8)
            for f in fields { write(f) }
        case .dictEntry(let k, let v):
            pad(to: 8)
            write(k)
            write(v)
        case .variant(let inner):
            write(.signature(inner.signature))
            write(inner)
        }
    }
}

/// The alignment of a type by its first signature character.
func alignment(of code: UInt8) -> Int {
    switch code {
    case UInt8(ascii: "y"), UInt8(ascii: "g"), UInt8(ascii: "v"): 1
    case UInt8(ascii: "n"), UInt8(ascii: "q"): 2
    case UInt8(ascii: "x"), UInt8(ascii: "t"), UInt8(ascii: "d"), UInt8(ascii: "("), UInt8(ascii: "{"): 8
    default: 4
    }
}

/// Reads values of given signatures from a little-endian message (bounds-checked throughout).
struct WireReader {
    let bytes: [UInt8]
    var pos: Int
    private var depth = 0

    init(_ bytes: [UInt8], at pos: Int = 0) {
        self.bytes = bytes
        self.pos = pos
    }

    mutating func align(_ n: Int) throws(DBusError) {
        let next = (pos + n - 1) / n * n
        guard next <= bytes.count else { throw DBusError("D-Bus message truncated (padding at \(pos))") }
        pos = next
    }

    mutating func take(_ n: Int) throws(DBusError) -> ArraySlice<UInt8> {
        guard n >= 0, pos + n <= bytes.count else { throw DBusError("D-Bus message truncated (\(n) bytes at \(pos))") }
        defer { pos += n }
        return bytes[pos..<pos + n]
    }

    mutating func uint32() throws(DBusError) -> UInt32 {
        try align(4)
        return try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func uint64() throws(DBusError) -> UInt64 {
        try align(8)
        return try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func text(length: Int) throws(DBusError) -> String {
        let s = try take(length)
        guard try take(1).first == 0 else { throw DBusError("D-Bus string not nul-terminated at \(pos - 1)") }
        return String(decoding: s, as: UTF8.self)
    }

    /// All values of `signature` (a sequence of complete types), in order.
    mutating func read(signature: String) throws(DBusError) -> [DBusValue] {
        let sig = Array(signature.utf8)
        var i = 0
        var out: [DBusValue] = []
        while i < sig.count {
            let end = try completeTypeEnd(sig, i)
            out.append(try read(type: sig[i..<end]))
            i = end
        }
        return out
    }

    mutating func read(type: ArraySlice<UInt8>) throws(DBusError) -> DBusValue {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64, let code = type.first else { throw DBusError("D-Bus signature too deep or empty") }
        switch code {
        case UInt8(ascii: "y"): return .byte(try take(1).first ?? 0)
        case UInt8(ascii: "b"):
            let v = try uint32()
            guard v <= 1 else { throw DBusError("D-Bus boolean \(v) is not 0 or 1") }
            return .bool(v == 1)
        case UInt8(ascii: "i"): return .int32(Int32(bitPattern: try uint32()))
        case UInt8(ascii: "u"): return .uint32(try uint32())
        case UInt8(ascii: "x"): return .int64(Int64(bitPattern: try uint64()))
        case UInt8(ascii: "t"): return .uint64(try uint64())
        case UInt8(ascii: "s"): return .string(try text(length: Int(try uint32())))
        case UInt8(ascii: "o"): return .objectPath(try text(length: Int(try uint32())))
        case UInt8(ascii: "g"): return .signature(try text(length: Int(try take(1).first ?? 0)))
        case UInt8(ascii: "v"):
            let sig = try text(length: Int(try take(1).first ?? 0))
            let values = try read(signature: sig)
            guard values.count == 1 else { throw DBusError("D-Bus variant signature \"\(sig)\" is not one type") }
            return .variant(values[0])
        case UInt8(ascii: "a"):
            let element = type.dropFirst()
            let length = Int(try uint32())
            guard length <= 1 << 26 else { throw DBusError("D-Bus array of \(length) bytes is too long") }
            try align(alignment(of: element.first ?? 0))
            let end = pos + length
            guard end <= bytes.count else { throw DBusError("D-Bus array truncated at \(pos)") }
            var items: [DBusValue] = []
            while pos < end { items.append(try read(type: element)) }
            guard pos == end else { throw DBusError("D-Bus array overruns its length at \(pos)") }
            return .array(element: String(decoding: element, as: UTF8.self), items)
        case UInt8(ascii: "("), UInt8(ascii: "{"):
            try align(8)
            var inner = type.dropFirst().dropLast()
            var fields: [DBusValue] = []
            while inner.first != nil {
                let end = try completeTypeEnd(Array(inner), 0)
                fields.append(try read(type: inner.prefix(end)))
                inner = inner.dropFirst(end)
            }
            if code == UInt8(ascii: "{") {
                guard fields.count == 2 else { throw DBusError("D-Bus dict entry with \(fields.count) fields") }
                return .dictEntry(fields[0], fields[1])
            }
            return .structure(fields)
        default:
            throw DBusError("D-Bus type '\(Character(Unicode.Scalar(code)))' is not supported")
        }
    }
}

/// The index after the complete type starting at `i` in `sig`.
func completeTypeEnd(_ sig: [UInt8], _ i: Int) throws(DBusError) -> Int {
    guard i < sig.count else {
        throw DBusError("D-Bus signature \"\(String(decoding: sig, as: UTF8.self))\" is incomplete")
    }
    switch sig[i] {
    case UInt8(ascii: "a"): return try completeTypeEnd(sig, i + 1)
    case UInt8(ascii: "("), UInt8(ascii: "{"):
        let close = sig[i] == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "}")
        var j = i + 1
        while j < sig.count && sig[j] != close { j = try completeTypeEnd(sig, j) }
        guard j < sig.count, j > i + 1 else {
            throw DBusError(
                "D-Bus signature \"\(String(decoding: sig, as: UTF8.self))\" has an unclosed or empty container")
        }
        return j + 1
    case UInt8(ascii: ")"), UInt8(ascii: "}"):
        throw DBusError("D-Bus signature \"\(String(decoding: sig, as: UTF8.self))\" is unbalanced")
    default: return i + 1
    }
}
