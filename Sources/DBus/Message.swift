/// One D-Bus message: the fixed header, the header fields this client uses and the body.
public struct DBusMessage: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case methodCall = 1
        case methodReturn = 2
        case error = 3
        case signal = 4
    }

    public var kind: Kind
    public var flags: UInt8 = 0
    public var serial: UInt32
    public var path: String?
    public var interface: String?
    public var member: String?
    public var errorName: String?
    public var replySerial: UInt32?
    public var destination: String?
    public var sender: String?
    public var body: [DBusValue] = []

    public init(kind: Kind, serial: UInt32) {
        self.kind = kind
        self.serial = serial
    }

    public static func methodCall(
        serial: UInt32, destination: String?, path: String, interface: String, member: String,
        body: [DBusValue] = []
    ) -> DBusMessage {
        var m = DBusMessage(kind: .methodCall, serial: serial)
        m.destination = destination
        m.path = path
        m.interface = interface
        m.member = member
        m.body = body
        return m
    }

    /// The signature of the body.
    public var bodySignature: String { body.map(\.signature).joined() }

    /// The message as sent: little-endian, protocol version 1.
    public func encode() -> [UInt8] {
        var fields: [DBusValue] = []
        func field(_ code: UInt8, _ v: DBusValue?) {
            if let v { fields.append(.structure([.byte(code), .variant(v)])) }
        }
        field(1, path.map { .objectPath($0) })
        field(2, interface.map { .string($0) })
        field(3, member.map { .string($0) })
        field(4, errorName.map { .string($0) })
        field(5, replySerial.map { .uint32($0) })
        field(6, destination.map { .string($0) })
        field(7, sender.map { .string($0) })
        field(8, body.isEmpty ? nil : .signature(bodySignature))
        var b = WireWriter()
        for v in body { b.write(v) }
        var w = WireWriter()
        w.bytes = [UInt8(ascii: "l"), kind.rawValue, flags, 1]
        w.uint32(UInt32(b.bytes.count))
        w.uint32(serial)
        w.write(.array(element: "(yv)", fields))
        w.pad(to: 8)
        return w.bytes + b.bytes
    }

    /// The whole length of the message whose first 16 bytes are `head`.
    static func frameLength(head: ArraySlice<UInt8>) throws(DBusError) -> Int {
        var r = WireReader(Array(head))
        guard head.count >= 16, head.first == UInt8(ascii: "l") else {
            throw DBusError(
                "D-Bus message is not little-endian (byte order "
                    + "'\(head.first.map { String(Character(Unicode.Scalar($0))) } ?? "")')"
            )
        }
        r.pos = 4
        let bodyLength = Int(try r.uint32())
        r.pos = 12
        let fieldsLength = Int(try r.uint32())
        guard bodyLength <= 1 << 27, fieldsLength <= 1 << 26 else { throw DBusError("D-Bus message too long") }
        return (16 + fieldsLength + 7) / 8 * 8 + bodyLength
    }

    /// Parses one complete message.
    public static func decode(_ bytes: [UInt8]) throws(DBusError) -> DBusMessage {
        let length = try frameLength(head: bytes.prefix(16))
        guard bytes.count == length else {
            throw DBusError("D-Bus message is \(bytes.count) bytes, its header says \(length)")
        }
        guard bytes[3] == 1 else { throw DBusError("D-Bus protocol version \(bytes[3]) is not 1") }
        guard let kind = Kind(rawValue: bytes[1]) else { throw DBusError("D-Bus message type \(bytes[1]) is unknown") }
        var r = WireReader(bytes, at: 8)
        var m = DBusMessage(kind: kind, serial: try r.uint32())
        m.flags = bytes[2]
        guard case .array(_, let fields) = try r.read(type: Array("a(yv)".utf8)[...]) else {
            throw DBusError("D-Bus header fields")
        }
        var signature = ""
        for f in fields {
            guard case .structure(let pair) = f, pair.count == 2, case .byte(let code) = pair[0],
                case .variant(let v) = pair[1]
            else { continue }
            switch code {
            case 1: m.path = v.stringValue
            case 2: m.interface = v.stringValue
            case 3: m.member = v.stringValue
            case 4: m.errorName = v.stringValue
            case 5: if case .uint32(let s) = v { m.replySerial = s }
            case 6: m.destination = v.stringValue
            case 7: m.sender = v.stringValue
            case 8: signature = v.stringValue ?? ""
            default: continue
            }
        }
        try r.align(8)
        // The body aligns from its own start, which is 8-aligned in the message.
        var body = WireReader(Array(bytes[r.pos...]))
        m.body = try body.read(signature: signature)
        guard body.pos == body.bytes.count else {
            throw DBusError("D-Bus body longer than its signature \"\(signature)\"")
        }
        return m
    }
}
