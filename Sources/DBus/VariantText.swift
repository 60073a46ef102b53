/// A value in GVariant's text format, the subset unit properties need (what runc's
/// `org.systemd.property.NAME` annotations are written in): `true`/`false`; integers, int32 unless
/// typed (`uint64 5`, `@t 5`); strings in single or double quotes (with backslash escapes);
/// arrays of these (`['a', 'b']`, `@as []`). Anything else is an error naming what was not understood.
public enum VariantText {
    public static func parse(_ text: String) throws(DBusError) -> DBusValue {
        var p = Parser(chars: Array(text.unicodeScalars), pos: 0)
        let value = try p.value(type: nil)
        p.skipSpaces()
        guard p.pos == p.chars.count else { throw p.error("unexpected text after the value") }
        return value
    }

    /// Type keywords and the D-Bus signatures they stand for.
    static let keywords: [String: String] = [
        "boolean": "b", "byte": "y", "int32": "i", "uint32": "u",
        "int64": "x", "uint64": "t", "string": "s",
    ]

    struct Parser {
        let chars: [Unicode.Scalar]
        var pos: Int

        func error(_ what: String) -> DBusError {
            DBusError("\(what) at offset \(pos) of \"\(String(String.UnicodeScalarView(chars)))\"")
        }

        mutating func skipSpaces() { while pos < chars.count, chars[pos] == " " || chars[pos] == "\t" { pos += 1 } }

        mutating func word() -> String {
            var w = ""
            while pos < chars.count,
                chars[pos].properties.isAlphabetic || ("0"..."9").contains(chars[pos])
                    || "-+_".unicodeScalars.contains(chars[pos])
            {
                w.unicodeScalars.append(chars[pos])
                pos += 1
            }
            return w
        }

        /// One value; `type` is the D-Bus signature it must have, if known.
        mutating func value(type: String?) throws(DBusError) -> DBusValue {
            skipSpaces()
            guard pos < chars.count else { throw error("a value is missing") }
            let c = chars[pos]
            if c == "@" {
                pos += 1
                var sig = ""
                while pos < chars.count, chars[pos] != " " {
                    sig.unicodeScalars.append(chars[pos])
                    pos += 1
                }
                return try value(type: sig)
            }
            if c == "'" || c == "\"" { return try typed(.string(try quoted()), type) }
            if c == "[" { return try array(type: type) }
            let start = pos
            let w = word()
            if let sig = VariantText.keywords[w] { return try value(type: sig) }
            switch w {
            case "true": return try typed(.bool(true), type)
            case "false": return try typed(.bool(false), type)
            case "": throw error("unexpected character \"\(c)\"")
            default: break
            }
            pos = start
            return try integer(w, type: type ?? "i")
        }

        mutating func integer(_ w: String, type: String) throws(DBusError) -> DBusValue {
            pos += w.unicodeScalars.count
            let v: DBusValue? =
                switch type {
                case "y": UInt8(w).map { .byte($0) }
                case "i": Int32(w).map { .int32($0) }
                case "u": UInt32(w).map { .uint32($0) }
                case "x": Int64(w).map { .int64($0) }
                case "t": UInt64(w).map { .uint64($0) }
                default: nil
                }
            guard let v else {
                pos -= w.unicodeScalars.count
                throw error("\"\(w)\" is not a value of type \(type)")
            }
            return v
        }

        func typed(_ v: DBusValue, _ type: String?) throws(DBusError) -> DBusValue {
            if let type, type != v.signature { throw error("a \(v.signature) value where the type is \(type)") }
            return v
        }

        mutating func quoted() throws(DBusError) -> String {
            let quote = chars[pos]
            pos += 1
            var s = ""
            while pos < chars.count, chars[pos] != quote {
                if chars[pos] == "\\", pos + 1 < chars.count { pos += 1 }
                s.unicodeScalars.append(chars[pos])
                pos += 1
            }
            guard pos < chars.count else { throw error("unterminated string") }
            pos += 1
            return s
        }

        mutating func array(type: String?) throws(DBusError) -> DBusValue {
            if let type, !type.hasPrefix("a") { throw error("an array where the type is \(type)") }
            pos += 1
            var element = type.map { String($0.dropFirst()) }
            var items: [DBusValue] = []
            skipSpaces()
            while pos < chars.count, chars[pos] != "]" {
                if !items.isEmpty {
                    guard chars[pos] == "," else { throw error("\",\" or \"]\" expected") }
                    pos += 1
                }
                let item = try value(type: element)
                element = element ?? item.signature
                items.append(item)
                skipSpaces()
            }
            guard pos < chars.count else { throw error("unterminated array") }
            pos += 1
            guard let element else { throw error("the type of an empty array is unknown (write @as [])") }
            return .array(element: element, items)
        }
    }
}
