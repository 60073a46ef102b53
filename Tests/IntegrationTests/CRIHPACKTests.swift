// The CRI client's HPACK against RFC 7541 itself: the Huffman table (Appendix B's codes), the
// examples of Appendix C (Huffman strings, and header blocks that fill and use the dynamic table).
// Needs no root and no containerd.

import XCTest

final class CRIHPACKTests: XCTestCase {
    private func hex(_ s: String) -> [UInt8] {
        let digits = Array(s.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    func testHuffmanTableMatchesAppendixB() {
        XCTAssertEqual(HPACK.huffmanLengths.count, 257)
        // A complete prefix code: the Kraft sum is exactly one.
        XCTAssertEqual(
            HPACK.huffmanLengths.reduce(UInt64(0)) { $0 + (UInt64(1) << UInt64(30 - Int($1))) }, UInt64(1) << 30)
        let spots: [(Int, UInt32, Int)] = [
            (0, 0x1ff8, 13), (1, 0x7fffd8, 23), (9, 0xffffea, 24), (10, 0x3fff_fffc, 30), (32, 0x14, 6),
            (48, 0x0, 5), (92, 0x7fff0, 19), (97, 0x3, 5), (127, 0xffffffc, 28), (128, 0xfffe6, 20),
            (195, 0x7fff1, 19), (203, 0x7ffffde, 27), (220, 0xffffffd, 28), (255, 0x3ffffee, 26),
            (256, 0x3fff_ffff, 30),
        ]
        for (sym, code, length) in spots {
            XCTAssertEqual(HPACK.huffmanCodes[sym].code, code, "symbol \(sym)")
            XCTAssertEqual(HPACK.huffmanCodes[sym].length, length, "symbol \(sym)")
        }
    }

    func testHuffmanStringsOfAppendixC() throws {
        let examples: [(String, String)] = [
            ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            ("no-cache", "a8eb 1064 9cbf"),
            ("custom-key", "25a8 49e9 5ba9 7d7f"),
            ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
            ("302", "6402"),
            ("private", "aec3 771a 4b"),
            ("Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"),
            ("https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"),
        ]
        for (text, code) in examples {
            XCTAssertEqual(String(decoding: try HPACK.huffmanDecode(hex(code)[...]), as: UTF8.self), text)
            XCTAssertEqual(HPACK.huffmanEncode(Array(text.utf8)), hex(code), text)
        }
        let all = (0...255).map { UInt8($0) }
        XCTAssertEqual(try HPACK.huffmanDecode(HPACK.huffmanEncode(all)[...]), all)
    }

    func testHuffmanRejectsBadPadding() {
        XCTAssertEqual(try HPACK.huffmanDecode([0x1f][...]), Array("a".utf8))  // 00011, padding 111
        XCTAssertThrowsError(try HPACK.huffmanDecode([0x18][...]))  // 00011, padding 000
        XCTAssertThrowsError(try HPACK.huffmanDecode([0xff, 0xff, 0xff, 0xff][...]))  // EOS
    }

    /// C.4: three requests on one connection; the second and third use the dynamic table.
    func testRequestsOfAppendixC4() throws {
        var d = HPACKDecoder()
        let first = try d.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"))
        XCTAssertEqual(
            first.map { "\($0.0): \($0.1)" },
            [":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com"])
        let second = try d.decode(hex("8286 84be 5886 a8eb 1064 9cbf"))
        XCTAssertEqual(
            second.map { "\($0.0): \($0.1)" },
            [":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache"])
        let third = try d.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"))
        XCTAssertEqual(
            third.map { "\($0.0): \($0.1)" },
            [
                ":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com",
                "custom-key: custom-value",
            ])
        XCTAssertEqual(d.dynamicTable.map { $0.0 }, ["custom-key", "cache-control", ":authority"])
    }

    func testEncoderWritesLiteralsWithoutIndexing() throws {
        let headers = [
            (":path", "/runtime.v1.RuntimeService/Version"), ("content-type", "application/grpc"),
            ("x-long", String(repeating: "v", count: 300)),
        ]
        let block = HPACK.encode(headers)
        XCTAssertEqual(block[0], 0)  // 0000 0000: literal without indexing, new name
        var d = HPACKDecoder()
        XCTAssertEqual(try d.decode(block).map { "\($0.0)=\($0.1)" }, headers.map { "\($0.0)=\($0.1)" })
        XCTAssertTrue(d.dynamicTable.isEmpty)
    }

    func testDecoderRejectsTruncatedAndOutOfRange() {
        var d = HPACKDecoder()
        XCTAssertThrowsError(try d.decode([0xbe]))  // index 62: the dynamic table is empty
        XCTAssertThrowsError(try d.decode([0x40, 0x05, 0x61]))  // name length 5, one byte given
        XCTAssertThrowsError(try d.decode([0x3f, 0xe1, 0x3f]))  // size update 4096 + ... above 4096
    }
}
