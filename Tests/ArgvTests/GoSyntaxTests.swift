import XCTest

@testable import Argv

final class GoSyntaxTests: XCTestCase {
    func testParseIntBaseZero() throws {
        let cases: [(String, Int64)] = [
            ("0", 0), ("42", 42), ("-12", -12), ("+5", 5), ("0x1f", 31), ("0X1F", 31), ("0o17", 15), ("017", 15),
            ("0b101", 5), ("1_000", 1000), ("0x_ff", 255), ("9223372036854775807", Int64.max),
            ("-9223372036854775808", Int64.min),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(try goParseInt(text, base: 0), expected, text)
        }
    }

    func testParseIntErrors() {
        let syntax = ["", "-", "+", "x", "1x", "0x", "08", "1__0", "_1", "1_", "0b2", " 1"]
        for text in syntax {
            XCTAssertEqual(
                parseGoInt(text, base: 0, bitSize: 64),
                .failure(GoNumError(function: "ParseInt", input: text, outOfRange: false)), text)
        }
        for text in ["9223372036854775808", "-9223372036854775809", "99999999999999999999x"] {
            XCTAssertEqual(
                parseGoInt(text, base: 0, bitSize: 64),
                .failure(GoNumError(function: "ParseInt", input: text, outOfRange: true)), text)
        }
        XCTAssertEqual(
            parseGoInt("0x1", base: 10, bitSize: 64),
            .failure(GoNumError(function: "ParseInt", input: "0x1", outOfRange: false)))
        XCTAssertEqual(
            parseGoInt("1_0", base: 10, bitSize: 64),
            .failure(GoNumError(function: "ParseInt", input: "1_0", outOfRange: false)))
        XCTAssertEqual(try goParseInt("-128", base: 10, bitSize: 8), -128)
        XCTAssertThrowsError(try goParseInt("128", base: 10, bitSize: 8))
    }

    func testNumErrorWording() {
        XCTAssertEqual(
            GoNumError(function: "ParseInt", input: "x", outOfRange: false).description,
            #"strconv.ParseInt: parsing "x": invalid syntax"#)
        XCTAssertEqual(
            GoNumError(function: "ParseUint", input: "1", outOfRange: true).description,
            #"strconv.ParseUint: parsing "1": value out of range"#)
    }

    func testParseUint() throws {
        XCTAssertEqual(try goParseUint("18446744073709551615", base: 10), UInt64.max)
        XCTAssertEqual(try goParseUint("0xff", base: 0), 255)
        XCTAssertThrowsError(try goParseUint("-1", base: 10)) { error in
            XCTAssertEqual((error as? GoNumError)?.description, #"strconv.ParseUint: parsing "-1": invalid syntax"#)
        }
        XCTAssertThrowsError(try goParseUint("18446744073709551616", base: 10)) { error in
            XCTAssertEqual((error as? GoNumError)?.outOfRange, true)
        }
        XCTAssertThrowsError(try goParseUint("256", base: 10, bitSize: 8))
    }

    func testParseBool() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] { XCTAssertEqual(goParseBool(text), true, text) }
        for text in ["0", "f", "F", "FALSE", "false", "False"] { XCTAssertEqual(goParseBool(text), false, text) }
        for text in ["", "yes", "tRUE", "2", " true"] { XCTAssertNil(goParseBool(text), text) }
    }

    func testParseDuration() {
        let cases: [(String, Duration)] = [
            ("0", .zero), ("+0", .zero), ("5s", .seconds(5)), ("1h", .seconds(3600)), ("1m30s", .seconds(90)),
            ("1.5s", .milliseconds(1500)), (".5s", .milliseconds(500)), ("5.s", .seconds(5)), ("-2m", .seconds(-120)),
            ("300ms", .milliseconds(300)), ("7us", .microseconds(7)), ("7\u{00B5}s", .microseconds(7)),
            ("7\u{03BC}s", .microseconds(7)), ("12ns", .nanoseconds(12)), ("1h2m3s4ms", .milliseconds(3_723_004)),
            ("2562047h47m16.854775807s", .nanoseconds(Int64.max)),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(goParseDuration(text), expected, text)
        }
        for text in [
            "", "5", "s", "1x", ".s", "-", "1.5", "1s5", "2562047h47m16.854775808s", "9999999999999999999h", " 1s",
        ] {
            XCTAssertNil(goParseDuration(text), text)
        }
    }

    func testQuote() {
        XCTAssertEqual(goQuote("plain"), #""plain""#)
        XCTAssertEqual(goQuote(#"a"b\c"#), #""a\"b\\c""#)
        XCTAssertEqual(goQuote("tab\there\nnl"), #""tab\there\nnl""#)
        XCTAssertEqual(goQuote("\u{01}\u{7F}"), #""\x01\x7f""#)
        XCTAssertEqual(goQuote("héllo"), "\"héllo\"")
    }
}
