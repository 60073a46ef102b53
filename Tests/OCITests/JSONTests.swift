import XCTest

@testable import OCI

final class JSONParserTests: XCTestCase {
    private func parse(_ s: String) throws -> JSONValue { try JSONValue.parse(s) }

    private func parseError(_ s: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let v = try JSONValue.parse(s)
            XCTFail("parsed \(v) from \(s)", file: file, line: line)
            return ""
        } catch {
            XCTAssertEqual(error.path, "", file: file, line: line)
            return error.message
        }
    }

    func testScalars() throws {
        XCTAssertEqual(try parse("null"), .null)
        XCTAssertEqual(try parse(" true "), .bool(true))
        XCTAssertEqual(try parse("false"), .bool(false))
        XCTAssertEqual(try parse("\"hi\""), .string("hi"))
        XCTAssertEqual(try parse("0"), .number("0"))
        XCTAssertEqual(try parse("-12.5e+3"), .number("-12.5e+3"))
        XCTAssertEqual(try parse("1E-2"), .number("1E-2"))
    }

    func testNumbersKeepTheirText() throws {
        let text = #"[18446744073709551615,-9223372036854775808,0.10,1e400]"#
        let v = try parse(text)
        XCTAssertEqual(
            v,
            .array([
                .number("18446744073709551615"), .number("-9223372036854775808"),
                .number("0.10"), .number("1e400"),
            ]))
        XCTAssertEqual(v.serialized(), text)
    }

    func testObjectsKeepOrderAndLastDuplicateWins() throws {
        guard case .object(let o) = try parse(#"{"b":1,"a":2,"b":3}"#) else { return XCTFail("not an object") }
        XCTAssertEqual(o.keys, ["b", "a", "b"])
        XCTAssertEqual(o["b"], .number("3"))
        XCTAssertEqual(o["zzz"], nil)
        XCTAssertEqual(JSONValue.object(o).serialized(), #"{"b":1,"a":2,"b":3}"#)
    }

    func testNesting() throws {
        let text = #"{"a":[1,{"b":[[],{}]},"x"],"c":{"d":{"e":null}}}"#
        let v = try parse(text)
        XCTAssertEqual(v.serialized(), text)
        XCTAssertEqual(try parse(v.serialized(pretty: true)), v)
    }

    func testEscapes() throws {
        XCTAssertEqual(try parse(#""a\"b\\c\/d\b\f\n\r\t""#), .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        XCTAssertEqual(try parse(#""\u00e9\u4E2D""#), .string("é中"))
        XCTAssertEqual(try parse(#""\ud83d\ude00!""#), .string("😀!"))
        XCTAssertEqual(try parse("\"é😀 raw\""), .string("é😀 raw"))
        // Lone surrogates become U+FFFD, as in Go.
        XCTAssertEqual(try parse(#""\ud800x""#), .string("\u{FFFD}x"))
        XCTAssertEqual(try parse(#""\udc00""#), .string("\u{FFFD}"))
        XCTAssertEqual(try parse(#""\ud800\u0041""#), .string("\u{FFFD}A"))
    }

    func testSerializerEscapesLikeGo() {
        let s = JSONValue.string("q\"b\\n\n\r\t\u{1}\u{1f}<>&é\u{2028}\u{2029}/")
        XCTAssertEqual(s.serialized(), #""q\"b\\n\n\r\t\u0001\u001f<>&é\u2028\u2029/""#)
        XCTAssertEqual(JSONValue.string("\u{8}\u{c}").serialized(), #""\u0008\u000c""#)
    }

    func testStringRoundTrip() throws {
        let original = "tab\t nl\n quote\" bs\\ nul\u{0} emoji😀 cjk中 \u{7f} \u{2028}"
        let v = JSONValue.string(original)
        XCTAssertEqual(try parse(v.serialized()), v)
    }

    func testPrettyMatchesGoMarshalIndent() {
        let v: JSONValue = .object([
            "a": .number("1"),
            "b": .array([.bool(true), .null]),
            "c": .object([:]),
            "d": .array([]),
            "e": .object(["f": .string("g")]),
        ])
        XCTAssertEqual(
            v.serialized(pretty: true),
            """
            {
              "a": 1,
              "b": [
                true,
                null
              ],
              "c": {},
              "d": [],
              "e": {
                "f": "g"
              }
            }
            """)
        XCTAssertEqual(v.serialized(), #"{"a":1,"b":[true,null],"c":{},"d":[],"e":{"f":"g"}}"#)
    }

    func testSyntaxErrorsNameLineAndColumn() {
        XCTAssertEqual(
            parseError("{\n  \"a\": 1,\n  \"b\": x\n}"),
            "invalid character 'x' looking for beginning of value at line 3, column 8")
        XCTAssertEqual(parseError("{\"a\" 1}"), "invalid character '1' after object key at line 1, column 6")
        XCTAssertEqual(parseError("[1 2]"), "invalid character '2' after array element at line 1, column 4")
        XCTAssertEqual(
            parseError("{\"a\":1 \"b\":2}"),
            "invalid character '\"' after object key:value pair at line 1, column 8")
        XCTAssertEqual(
            parseError("{1:2}"),
            "invalid character '1' looking for beginning of object key string at line 1, column 2")
        XCTAssertEqual(parseError("{} x"), "invalid character 'x' after top-level value at line 1, column 4")
        XCTAssertEqual(parseError("é"), "invalid character 'é' looking for beginning of value at line 1, column 1")
        XCTAssertEqual(parseError("\"é\u{1}\""), "invalid character '\\x01' in string literal at line 1, column 3")
        XCTAssertEqual(parseError("\"a\nb\""), "invalid character '\\n' in string literal at line 1, column 3")
    }

    func testRejectsWhatRFC8259Rejects() {
        let bad = [
            "", " ", "[", "{", "[1,]", "{\"a\":1,}", "01", "-", "1.", ".5", "1e", "+1", "0x10", "NaN",
            "Infinity", "tru", "nul", "True", "'a'", "\"abc", "\"\\x\"", "\"\\u12G4\"", "\"\\u12\"",
            "[1]]", "{\"a\"}", "\u{FEFF}{}", "/* c */ {}", "[,1]", "{,}",
        ]
        for text in bad {
            XCTAssertThrowsError(try JSONValue.parse(text), "accepted \(text.debugDescription)")
        }
        XCTAssertEqual(parseError(""), "unexpected end of JSON input at line 1, column 1")
        XCTAssertEqual(parseError("[1,\n"), "unexpected end of JSON input at line 2, column 1")
        XCTAssertEqual(parseError("01"), "invalid character '1' after top-level value at line 1, column 2")
    }

    func testRejectsInvalidUTF8() {
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xC3, 0x28, 0x22])) { error in
            XCTAssertEqual((error as? OCIError)?.message, "invalid UTF-8 in string literal at line 1, column 1")
        }
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]))
        XCTAssertThrowsError(try JSONValue.parse([0xFF]))
    }

    func testDepthLimit() throws {
        let ok = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        XCTAssertNoThrow(try JSONValue.parse(ok))
        let deep = String(repeating: "[", count: 201) + String(repeating: "]", count: 201)
        XCTAssertEqual(parseError(deep), "exceeded maximum nesting depth of 200 at line 1, column 201")
        let deepObjects = String(repeating: "{\"a\":", count: 100_000)
        XCTAssertThrowsError(try JSONValue.parse(deepObjects))
        XCTAssertNoThrow(try JSONValue.parse("[[1]]", maxDepth: 2))
        XCTAssertThrowsError(try JSONValue.parse("[[[1]]]", maxDepth: 2))
    }

    func testLiteralHelpers() {
        let o: JSONObject = ["x": .null]
        XCTAssertEqual(o.members.count, 1)
        let ab: JSONObject = ["a": .null, "b": .null]
        let ba: JSONObject = ["b": .null, "a": .null]
        XCTAssertNotEqual(ab, ba)
        XCTAssertEqual(ab, JSONObject([(key: "a", value: .null), (key: "b", value: .null)]))
    }
}
