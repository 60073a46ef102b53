// A minimal protobuf (proto2) wire-format writer and reader: just what CRIU's RPC messages need.
// Wire format: each field is a key varint (field_number << 3 | wire_type) followed by the value:
// wire type 0 = varint, 2 = length-delimited (strings, bytes, embedded messages); 1 and 5
// (fixed 64/32 bit) are only skipped when reading. See Spec/checkpoint.md for why this is not
// generated with swift-protobuf (its runtime imports Foundation, which the shipped binary avoids).

/// Appends fields to a byte buffer in field order chosen by the caller.
public struct ProtoWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// int32: negative values are sign-extended to 64 bits (ten bytes), as protobuf requires.
    public mutating func int32(_ field: Int, _ value: Int32) {
        key(field, 0)
        varint(UInt64(bitPattern: Int64(value)))
    }

    public mutating func uint32(_ field: Int, _ value: UInt32) {
        key(field, 0)
        varint(UInt64(value))
    }

    public mutating func uint64(_ field: Int, _ value: UInt64) {
        key(field, 0)
        varint(value)
    }

    public mutating func int64(_ field: Int, _ value: Int64) {
        key(field, 0)
        varint(UInt64(bitPattern: value))
    }

    public mutating func bool(_ field: Int, _ value: Bool) {
        key(field, 0)
        varint(value ? 1 : 0)
    }

    public mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    public mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        bytes(field, inner.bytes)
    }
}

/// A malformed message: what was wrong and at which byte offset.
public struct ProtoError: Error, CustomStringConvertible, Sendable, Equatable {
    public var reason: String
    public var offset: Int
    public init(_ reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }
    public var description: String { "malformed protobuf message: \(reason) at byte \(offset)" }
}

/// One decoded field: a varint, or the bytes of a length-delimited value.
public enum ProtoValue: Sendable, Equatable {
    case varint(UInt64)
    case bytes([UInt8])

    public var uint64: UInt64? { if case .varint(let v) = self { return v } else { return nil } }
    /// int32 fields arrive as 64-bit two's complement; truncation keeps the sign.
    public var int32: Int32? { uint64.map { Int32(truncatingIfNeeded: Int64(bitPattern: $0)) } }
    public var bool: Bool? { uint64.map { $0 != 0 } }
    public var data: [UInt8]? { if case .bytes(let b) = self { return b } else { return nil } }
    public var string: String? { data.map { String(decoding: $0, as: UTF8.self) } }
}

public enum ProtoReader {
    /// Splits a message into (field number, value) pairs in wire order. Fixed 32/64-bit fields are
    /// skipped (CRIU's RPC messages have none); group wire types (3, 4) are rejected.
    public static func fields(_ bytes: [UInt8]) throws(ProtoError) -> [(field: Int, value: ProtoValue)] {
        var out: [(Int, ProtoValue)] = []
        var i = 0
        func readVarint() throws(ProtoError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            let start = i
            while true {
                guard i < bytes.count else { throw ProtoError("truncated varint", offset: start) }
                guard shift < 64 else { throw ProtoError("varint longer than 10 bytes", offset: start) }
                let b = bytes[i]
                i += 1
                result |= UInt64(b & 0x7f) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
        }
        while i < bytes.count {
            let at = i
            let key = try readVarint()
            let field = Int(truncatingIfNeeded: key >> 3)
            guard field > 0 && field < (1 << 29) else {
                throw ProtoError("invalid field number \(key >> 3)", offset: at)
            }
            switch key & 7 {
            case 0:
                out.append((field, .varint(try readVarint())))
            case 2:
                let n = try readVarint()
                guard n <= UInt64(bytes.count - i) else { throw ProtoError("length \(n) past the end", offset: at) }
                out.append((field, .bytes(Array(bytes[i..<(i + Int(n))]))))
                i += Int(n)
            case 1:
                guard bytes.count - i >= 8 else { throw ProtoError("truncated fixed64", offset: at) }
                i += 8
            case 5:
                guard bytes.count - i >= 4 else { throw ProtoError("truncated fixed32", offset: at) }
                i += 4
            default:
                throw ProtoError("unsupported wire type \(key & 7)", offset: at)
            }
        }
        return out
    }
}
