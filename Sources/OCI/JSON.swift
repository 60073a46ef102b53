// A small, strict RFC 8259 JSON value, parser and serializer. No Foundation.
//
// Numbers keep their source text so that 64-bit integers round-trip exactly; objects keep their key
// order. The serializer writes like Go's encoding/json (compact, or MarshalIndent with two spaces),
// except that `<`, `>` and `&` stay literal.

public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number exactly as written in the source (always valid JSON number syntax when parsed).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object: its members in source order. Lookups return the last member with the key, as Go does.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var members: [(key: String, value: JSONValue)]

    public init(_ members: [(key: String, value: JSONValue)] = []) { self.members = members }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = elements.map { (key: $0.0, value: $0.1) }
    }

    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    public subscript(key: String) -> JSONValue? {
        members.last { $0.key == key }?.value
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count
            && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue {
    /// The nesting depth the parser accepts by default.
    public static let defaultMaxDepth = 200

    /// Parses one JSON text (UTF-8). Errors carry an empty path and say where: `… at line 3, column 7`.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(OCIError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        return try parser.parseDocument()
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(OCIError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    /// The JSON text: compact, or indented by two spaces per level like Go's `json.MarshalIndent(v, "", "  ")`.
    public func serialized(pretty: Bool = false) -> String {
        String(decoding: serializedBytes(pretty: pretty), as: UTF8.self)
    }

    public func serializedBytes(pretty: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        JSONWriter.write(self, into: &out, pretty: pretty, indent: 0)
        return out
    }
}

// MARK: - Parser

private enum ASCII {
    static let tab: UInt8 = 0x09, newline: UInt8 = 0x0A, carriageReturn: UInt8 = 0x0D, space: UInt8 = 0x20
    static let quote: UInt8 = 0x22, backslash: UInt8 = 0x5C, slash: UInt8 = 0x2F
    static let comma: UInt8 = 0x2C, colon: UInt8 = 0x3A, minus: UInt8 = 0x2D, plus: UInt8 = 0x2B, dot: UInt8 = 0x2E
    static let zero: UInt8 = 0x30, nine: UInt8 = 0x39
    static let openBracket: UInt8 = 0x5B, closeBracket: UInt8 = 0x5D
    static let openBrace: UInt8 = 0x7B, closeBrace: UInt8 = 0x7D
    static let lowerE: UInt8 = 0x65, upperE: UInt8 = 0x45
}

private struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    var depth = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(OCIError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        if index < bytes.count { throw invalidCharacter("after top-level value") }
        return value
    }

    // MARK: errors

    /// 1-based line and column (in Unicode scalars) of a byte offset.
    func location(_ offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for b in bytes[..<min(offset, bytes.count)] {
            if b == ASCII.newline {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }

    func error(_ message: String, at offset: Int? = nil) -> OCIError {
        let (line, column) = location(offset ?? index)
        return OCIError(path: "", message: "\(message) at line \(line), column \(column)")
    }

    func invalidCharacter(_ context: String) -> OCIError {
        if index >= bytes.count { return unexpectedEnd() }
        return error("invalid character \(describeCharacter(at: index)) \(context)")
    }

    func unexpectedEnd() -> OCIError { error("unexpected end of JSON input", at: bytes.count) }

    /// The character at `offset` quoted like Go does: `'x'`, `'\n'`, `'\x01'`, `'é'`.
    func describeCharacter(at offset: Int) -> String {
        let b = bytes[offset]
        switch b {
        case ASCII.newline: return "'\\n'"
        case ASCII.carriageReturn: return "'\\r'"
        case ASCII.tab: return "'\\t'"
        case 0x27: return "'\\''"
        case 0x20..<0x7F: return "'" + String(UnicodeScalar(b)) + "'"
        case 0x80...:
            let length = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            if offset + length <= bytes.count,
                let s = String(validating: bytes[offset..<offset + length], as: UTF8.self)
            {
                return "'" + s + "'"
            }
            fallthrough
        default:
            return "'\\x" + hexByte(b) + "'"
        }
    }

    // MARK: values

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case ASCII.space, ASCII.tab, ASCII.newline, ASCII.carriageReturn: index += 1
            default: return
            }
        }
    }

    mutating func parseValue() throws(OCIError) -> JSONValue {
        guard index < bytes.count else { throw unexpectedEnd() }
        switch bytes[index] {
        case ASCII.openBrace: return try parseObject()
        case ASCII.openBracket: return try parseArray()
        case ASCII.quote: return .string(try parseString())
        case ASCII.minus, ASCII.zero...ASCII.nine: return .number(try parseNumber())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        default: throw invalidCharacter("looking for beginning of value")
        }
    }

    mutating func expectLiteral(_ word: StaticString) throws(OCIError) {
        let count = word.utf8CodeUnitCount
        var i = 0
        while i < count {
            let expected = word.utf8Start[i]
            guard index < bytes.count else { throw unexpectedEnd() }
            if bytes[index] != expected {
                throw invalidCharacter("in literal \(word) (expecting '\(Character(UnicodeScalar(expected)))')")
            }
            index += 1
            i += 1
        }
    }

    mutating func enter() throws(OCIError) {
        depth += 1
        if depth > maxDepth { throw error("exceeded maximum nesting depth of \(maxDepth)") }
    }

    mutating func parseObject() throws(OCIError) -> JSONValue {
        try enter()
        index += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == ASCII.closeBrace {
            index += 1
            depth -= 1
            return .object(JSONObject(members))
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw unexpectedEnd() }
            guard bytes[index] == ASCII.quote else {
                throw invalidCharacter("looking for beginning of object key string")
            }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count else { throw unexpectedEnd() }
            guard bytes[index] == ASCII.colon else { throw invalidCharacter("after object key") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            members.append((key: key, value: value))
            skipWhitespace()
            guard index < bytes.count else { throw unexpectedEnd() }
            switch bytes[index] {
            case ASCII.comma: index += 1
            case ASCII.closeBrace:
                index += 1
                depth -= 1
                return .object(JSONObject(members))
            default: throw invalidCharacter("after object key:value pair")
            }
        }
    }

    mutating func parseArray() throws(OCIError) -> JSONValue {
        try enter()
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == ASCII.closeBracket {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw unexpectedEnd() }
            switch bytes[index] {
            case ASCII.comma: index += 1
            case ASCII.closeBracket:
                index += 1
                depth -= 1
                return .array(elements)
            default: throw invalidCharacter("after array element")
            }
        }
    }

    func isDigit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= ASCII.zero && bytes[i] <= ASCII.nine }

    mutating func skipDigits() { while isDigit(index) { index += 1 } }

    mutating func parseNumber() throws(OCIError) -> String {
        let start = index
        if bytes[index] == ASCII.minus {
            index += 1
            guard isDigit(index) else { throw invalidCharacter("in numeric literal") }
        }
        if bytes[index] == ASCII.zero { index += 1 } else { skipDigits() }
        if index < bytes.count, bytes[index] == ASCII.dot {
            index += 1
            guard isDigit(index) else { throw invalidCharacter("after decimal point in numeric literal") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] == ASCII.lowerE || bytes[index] == ASCII.upperE {
            index += 1
            if index < bytes.count, bytes[index] == ASCII.plus || bytes[index] == ASCII.minus { index += 1 }
            guard isDigit(index) else { throw invalidCharacter("in exponent of numeric literal") }
            skipDigits()
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    /// Parses a string starting at its opening quote; leaves `index` after the closing quote.
    mutating func parseString() throws(OCIError) -> String {
        let start = index
        index += 1  // opening quote
        // Fast path: no escapes.
        var i = index
        while i < bytes.count {
            let b = bytes[i]
            if b == ASCII.quote {
                guard let s = String(validating: bytes[index..<i], as: UTF8.self) else {
                    throw error("invalid UTF-8 in string literal", at: start)
                }
                index = i + 1
                return s
            }
            if b == ASCII.backslash || b < 0x20 { break }
            i += 1
        }
        // Slow path: decode escapes into a byte buffer.
        var buffer = Array(bytes[index..<i])
        index = i
        while true {
            guard index < bytes.count else { throw unexpectedEnd() }
            let b = bytes[index]
            switch b {
            case ASCII.quote:
                index += 1
                guard let s = String(validating: buffer, as: UTF8.self) else {
                    throw error("invalid UTF-8 in string literal", at: start)
                }
                return s
            case ASCII.backslash:
                index += 1
                guard index < bytes.count else { throw unexpectedEnd() }
                let e = bytes[index]
                index += 1
                switch e {
                case ASCII.quote, ASCII.backslash, ASCII.slash: buffer.append(e)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(ASCII.newline)
                case UInt8(ascii: "r"): buffer.append(ASCII.carriageReturn)
                case UInt8(ascii: "t"): buffer.append(ASCII.tab)
                case UInt8(ascii: "u"): appendUTF8(try parseUnicodeEscape(), to: &buffer)
                default:
                    index -= 1
                    throw invalidCharacter("in string escape code")
                }
            case 0..<0x20:
                throw invalidCharacter("in string literal")
            default:
                buffer.append(b)
                index += 1
            }
        }
    }

    mutating func parseHex4() throws(OCIError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw unexpectedEnd() }
            let b = bytes[index]
            let digit: UInt8
            switch b {
            case ASCII.zero...ASCII.nine: digit = b - ASCII.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw invalidCharacter("in \\u hexadecimal character escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// After `\u`: one code unit, or a surrogate pair. A lone surrogate becomes U+FFFD, as in Go.
    mutating func parseUnicodeEscape() throws(OCIError) -> UnicodeScalar {
        let replacement: UnicodeScalar = "\u{FFFD}"
        let first = try parseHex4()
        if first < 0xD800 || first > 0xDFFF { return UnicodeScalar(first) ?? replacement }
        if first >= 0xDC00 { return replacement }
        // High surrogate: a low one must follow as `\uXXXX`.
        guard index + 1 < bytes.count, bytes[index] == ASCII.backslash, bytes[index + 1] == UInt8(ascii: "u") else {
            return replacement
        }
        let saved = index
        index += 2
        let second = try parseHex4()
        guard second >= 0xDC00 && second <= 0xDFFF else {
            index = saved  // not a pair: decode the next escape on its own
            return replacement
        }
        let scalar = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        return UnicodeScalar(scalar) ?? replacement
    }

    func appendUTF8(_ scalar: UnicodeScalar, to buffer: inout [UInt8]) {
        let v = scalar.value
        switch v {
        case 0..<0x80:
            buffer.append(UInt8(v))
        case 0x80..<0x800:
            buffer.append(UInt8(0xC0 | v >> 6))
            buffer.append(UInt8(0x80 | v & 0x3F))
        case 0x800..<0x10000:
            buffer.append(UInt8(0xE0 | v >> 12))
            buffer.append(UInt8(0x80 | v >> 6 & 0x3F))
            buffer.append(UInt8(0x80 | v & 0x3F))
        default:
            buffer.append(UInt8(0xF0 | v >> 18))
            buffer.append(UInt8(0x80 | v >> 12 & 0x3F))
            buffer.append(UInt8(0x80 | v >> 6 & 0x3F))
            buffer.append(UInt8(0x80 | v & 0x3F))
        }
    }
}

private func hexByte(_ b: UInt8) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(decoding: [digits[Int(b >> 4)], digits[Int(b & 0xF)]], as: UTF8.self)
}

// MARK: - Writer

enum JSONWriter {
    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func write(_ value: JSONValue, into out: inout [UInt8], pretty: Bool, indent: Int) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: n.utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            if elements.isEmpty {
                out.append(contentsOf: "[]".utf8)
                return
            }
            out.append(ASCII.openBracket)
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(ASCII.comma) }
                if pretty { newline(into: &out, indent: indent + 1) }
                write(element, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(into: &out, indent: indent) }
            out.append(ASCII.closeBracket)
        case .object(let object):
            if object.isEmpty {
                out.append(contentsOf: "{}".utf8)
                return
            }
            out.append(ASCII.openBrace)
            for (i, member) in object.members.enumerated() {
                if i > 0 { out.append(ASCII.comma) }
                if pretty { newline(into: &out, indent: indent + 1) }
                writeString(member.key, into: &out)
                out.append(ASCII.colon)
                if pretty { out.append(ASCII.space) }
                write(member.value, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(into: &out, indent: indent) }
            out.append(ASCII.closeBrace)
        }
    }

    private static func newline(into out: inout [UInt8], indent: Int) {
        out.append(ASCII.newline)
        for _ in 0..<indent {
            out.append(ASCII.space)
            out.append(ASCII.space)
        }
    }

    /// A JSON string literal: `"` and `\` escaped, \n \r \t short, other control characters as \u00XX,
    /// and U+2028/U+2029 escaped (as Go does) so the output is also valid JavaScript.
    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(ASCII.quote)
        let needsEscaping = s.utf8.contains { $0 < 0x20 || $0 == ASCII.quote || $0 == ASCII.backslash || $0 == 0xE2 }
        if !needsEscaping {
            out.append(contentsOf: s.utf8)
            out.append(ASCII.quote)
            return
        }
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case ASCII.quote, ASCII.backslash:
                out.append(ASCII.backslash)
                out.append(b)
            case ASCII.newline:
                out.append(ASCII.backslash)
                out.append(UInt8(ascii: "n"))
            case ASCII.carriageReturn:
                out.append(ASCII.backslash)
                out.append(UInt8(ascii: "r"))
            case ASCII.tab:
                out.append(ASCII.backslash)
                out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            case 0xE2
            where i + 2 < bytes.count && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9):
                out.append(contentsOf: (bytes[i + 2] == 0xA8 ? "\\u2028" : "\\u2029").utf8)
                i += 2
            default:
                out.append(b)
            }
            i += 1
        }
        out.append(ASCII.quote)
    }
}
