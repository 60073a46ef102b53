import XCTest

@testable import DBus

/// Golden bytes written by hand from the D-Bus specification ("Marshaling (Wire Format)"):
/// little-endian, each type aligned to its size (structs and dict entries to 8) from the message
/// start, strings as uint32 length + bytes + nul, arrays as uint32 byte length + padding to the
/// element alignment (also when empty) + elements.
final class MarshallingTests: XCTestCase {
    private func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    private func encode(_ values: [DBusValue]) -> [UInt8] {
        var w = WireWriter()
        for v in values { w.write(v) }
        return w.bytes
    }

    private func roundTrip(_ values: [DBusValue], file: StaticString = #filePath, line: UInt = #line) {
        var r = WireReader(encode(values))
        XCTAssertEqual(try r.read(signature: values.map(\.signature).joined()), values, file: file, line: line)
    }

    func testStringThenUint32IsPaddedToFour() {
        let bytes = encode([.string("ab"), .uint32(7)])
        XCTAssertEqual(bytes, [2, 0, 0, 0, 0x61, 0x62, 0, /* pad */ 0, 7, 0, 0, 0])
        roundTrip([.string("ab"), .uint32(7)])
    }

    func testUint64IsAlignedToEight() {
        XCTAssertEqual(
            encode([.byte(1), .uint64(0x0102_0304_0506_0708)]),
            [1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
        roundTrip([.byte(1), .uint64(.max), .uint64(0)])
    }

    func testBooleanIsAUint32() {
        XCTAssertEqual(encode([.bool(true)]), [1, 0, 0, 0])
        XCTAssertEqual(encode([.bool(false)]), [0, 0, 0, 0])
        var bad = WireReader([2, 0, 0, 0])
        XCTAssertThrowsError(try bad.read(signature: "b"))
    }

    func testObjectPathByteArrayAndUint32Array() {
        XCTAssertEqual(encode([.objectPath("/a")]), [2, 0, 0, 0, 0x2f, 0x61, 0])
        XCTAssertEqual(encode([.bytes([1, 2, 3])]), [3, 0, 0, 0, 1, 2, 3])
        XCTAssertEqual(encode([.uint32s([1, 2])]), [8, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0])
        XCTAssertEqual(DBusValue.uint32s([1]).signature, "au")
        roundTrip([.objectPath("/org/freedesktop/systemd1"), .bytes([0xff, 0, 1]), .uint32s([42, 0])])
    }

    func testPropertyListIsAnArrayOfStructsWithVariants() {
        let props = DBusValue.properties([("Delegate", .bool(true))])
        XCTAssertEqual(props.signature, "a(sv)")
        // length 20 (counted from the struct, after the padding), pad to 8, "Delegate",
        // variant signature "b", pad to 4, true.
        XCTAssertEqual(
            encode([props]),
            [20, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0] + ascii("Delegate") + [0, 1, 0x62, 0, 1, 0, 0, 0])
        roundTrip([
            props,
            .properties([
                ("PIDs", .uint32s([1, 2])), ("MemoryMax", .uint64(1 << 30)),
                ("Slice", .string("system.slice")),
            ]),
        ])
    }

    func testEmptyArrayStillPadsToItsElementAlignment() {
        let aux = DBusValue.array(element: "(sa(sv))", [])
        XCTAssertEqual(aux.signature, "a(sa(sv))")
        XCTAssertEqual(
            encode([.string("x"), aux]),
            [1, 0, 0, 0, 0x78, 0, /* pad */ 0, 0, /* length */ 0, 0, 0, 0, /* pad to 8 */ 0, 0, 0, 0])
        roundTrip([.string("x"), aux])
    }

    func testNestedAuxiliaryUnitsRoundTrip() {
        let aux = DBusValue.array(
            element: "(sa(sv))",
            [
                .structure([
                    .string("a.service"), .properties([("Description", .string("d")), ("TasksMax", .uint64(5))]),
                ])
            ])
        roundTrip([.string("u.scope"), .string("replace"), .properties([]), aux])
    }

    /// org.freedesktop.DBus.Hello, serial 1: the header fields PATH (1, o), INTERFACE (2, s),
    /// MEMBER (3, s), DESTINATION (6, s), each a (yv) struct aligned to 8; no body, no signature.
    func testHelloMethodCallMessage() throws {
        let message = DBusMessage.methodCall(
            serial: 1, destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus", member: "Hello")
        var golden: [UInt8] = [
            0x6c, 1, 0, 1, /* body length */ 0, 0, 0, 0, /* serial */ 1, 0, 0, 0,
            /* fields array length */ 109, 0, 0, 0,
        ]
        golden += [1, 1, 0x6f, 0, 21, 0, 0, 0] + ascii("/org/freedesktop/DBus") + [0] + [0, 0]  // 16..47
        golden += [2, 1, 0x73, 0, 20, 0, 0, 0] + ascii("org.freedesktop.DBus") + [0] + [0, 0, 0]  // 48..79
        golden += [3, 1, 0x73, 0, 5, 0, 0, 0] + ascii("Hello") + [0] + [0, 0]  // 80..95
        golden += [6, 1, 0x73, 0, 20, 0, 0, 0] + ascii("org.freedesktop.DBus") + [0]  // 96..124
        golden += [0, 0, 0]  // the header ends 8-aligned
        XCTAssertEqual(golden.count, 128)
        XCTAssertEqual(message.encode(), golden)
        XCTAssertEqual(try DBusMessage.frameLength(head: golden.prefix(16)), 128)
        XCTAssertEqual(try DBusMessage.decode(golden), message)
    }

    /// An error reply as systemd sends it: ERROR_NAME, REPLY_SERIAL, SIGNATURE "s", body one string.
    func testErrorReplyDecodes() throws {
        var golden: [UInt8] = [
            0x6c, 3, 1, 1, /* body */ 12, 0, 0, 0, /* serial */ 9, 0, 0, 0, /* fields */ 47, 0, 0, 0,
        ]
        golden += [4, 1, 0x73, 0, 23, 0, 0, 0] + ascii("org.freedesktop.Err.Bad") + [0]  // 16..47
        golden += [5, 1, 0x75, 0, 7, 0, 0, 0]  // 48..55
        golden += [8, 1, 0x67, 0, 1, 0x73, 0]  // 56..62
        golden += [0]  // pad to 64
        golden += [7, 0, 0, 0] + ascii("no unit") + [0]  // body 64..75
        let m = try DBusMessage.decode(golden)
        XCTAssertEqual(m.kind, .error)
        XCTAssertEqual(m.flags, 1)
        XCTAssertEqual(m.serial, 9)
        XCTAssertEqual(m.replySerial, 7)
        XCTAssertEqual(m.errorName, "org.freedesktop.Err.Bad")
        XCTAssertEqual(m.body, [.string("no unit")])
        var again = DBusMessage(kind: .error, serial: 9)
        again.flags = 1
        again.errorName = "org.freedesktop.Err.Bad"
        again.replySerial = 7
        again.body = [.string("no unit")]
        XCTAssertEqual(again.encode(), golden)
    }

    func testVariantsAndDictEntries() {
        roundTrip([
            .variant(.variant(.uint32(3))), .array(element: "{sv}", [.dictEntry(.string("k"), .variant(.bool(true)))]),
            .signature("a(sv)"), .int32(-1), .int64(-2),
        ])
    }

    func testMalformedInputIsRejected() {
        let message = DBusMessage.methodCall(
            serial: 2, destination: nil, path: "/", interface: "a.b", member: "C",
            body: [.string("x")]
        ).encode()
        XCTAssertThrowsError(try DBusMessage.decode(Array(message.dropLast())))
        var bigEndian = message
        bigEndian[0] = UInt8(ascii: "B")
        XCTAssertThrowsError(try DBusMessage.decode(bigEndian))
        var noNul = WireReader([1, 0, 0, 0, 0x78, 0x79])
        XCTAssertThrowsError(try noNul.read(signature: "s"))
        var longArray = WireReader([0xff, 0xff, 0, 0, 1])
        XCTAssertThrowsError(try longArray.read(signature: "ay"))
        for bad in ["(", "a", "(})", "()", "}"] {
            var r = WireReader([0, 0, 0, 0, 0, 0, 0, 0])
            XCTAssertThrowsError(try r.read(signature: bad), bad)
        }
        var unsupported = WireReader([0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertThrowsError(try unsupported.read(signature: "h"))
    }
}
