/// A D-Bus value of the types this client marshals: y b u t i x s o g, arrays, structs, dict
/// entries and variants (the D-Bus specification, "Type system").
public indirect enum DBusValue: Equatable, Sendable {
    case byte(UInt8)
    case bool(Bool)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case uint64(UInt64)
    case string(String)
    case objectPath(String)
    case signature(String)
    /// The element type's signature (needed for an empty array) and the elements.
    case array(element: String, [DBusValue])
    case structure([DBusValue])
    case dictEntry(DBusValue, DBusValue)
    case variant(DBusValue)

    /// The value's type signature, e.g. `a(sv)`.
    public var signature: String {
        switch self {
        case .byte: "y"
        case .bool: "b"
        case .int32: "i"
        case .uint32: "u"
        case .int64: "x"
        case .uint64: "t"
        case .string: "s"
        case .objectPath: "o"
        case .signature: "g"
        case .array(let element, _): "a" + element
        case .structure(let fields): "(" + fields.map(\.signature).joined() + ")"
        case .dictEntry(let k, let v): "{" + k.signature + v.signature + "}"
        case .variant: "v"
        }
    }

    /// `ay`
    public static func bytes(_ b: [UInt8]) -> DBusValue { .array(element: "y", b.map { .byte($0) }) }
    /// `au`
    public static func uint32s(_ v: [UInt32]) -> DBusValue { .array(element: "u", v.map { .uint32($0) }) }
    /// One `(sv)` entry of a property list.
    public static func property(_ name: String, _ value: DBusValue) -> DBusValue {
        .structure([.string(name), .variant(value)])
    }
    /// `a(sv)`
    public static func properties(_ list: [(String, DBusValue)]) -> DBusValue {
        .array(element: "(sv)", list.map { property($0.0, $0.1) })
    }

    public var stringValue: String? {
        switch self {
        case .string(let s), .objectPath(let s), .signature(let s): s
        case .variant(let v): v.stringValue
        default: nil
        }
    }

    public var uint64Value: UInt64? {
        switch self {
        case .uint64(let v): v
        case .uint32(let v): UInt64(v)
        case .variant(let v): v.uint64Value
        default: nil
        }
    }
}

/// A failure talking D-Bus: the operation and what went wrong; `name` is the D-Bus error name when
/// the peer answered with an error (org.freedesktop.systemd1.UnitExists, ...).
public struct DBusError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var name: String?

    public init(_ message: String, name: String? = nil) {
        self.message = message
        self.name = name
    }

    public var description: String { message }
}
