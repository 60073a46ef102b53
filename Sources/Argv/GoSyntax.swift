// Go's value syntaxes as runc's flags see them: strconv.ParseBool/ParseInt/ParseUint,
// time.ParseDuration and strconv.Quote (used in error messages), with Go's error wording.

/// A strconv.NumError: `strconv.ParseInt: parsing "x": invalid syntax`.
public struct GoNumError: Error, Sendable, Equatable, CustomStringConvertible {
    public var function: String  // "ParseInt" or "ParseUint"
    public var input: String
    /// True for "value out of range", false for "invalid syntax".
    public var outOfRange: Bool

    public var description: String {
        "strconv.\(function): parsing \(goQuote(input)): \(outOfRange ? "value out of range" : "invalid syntax")"
    }

    /// The shorter reason Go's built-in int flags give ("parse error" / "value out of range").
    var flagReason: String { outOfRange ? "value out of range" : "parse error" }
}

/// strconv.ParseInt: optional sign; with base 0, the prefixes 0x, 0o, 0b, a leading 0 (octal) and
/// "_" digit separators are accepted.
public func goParseInt(_ text: String, base: Int, bitSize: Int = 64) throws(GoNumError) -> Int64 {
    try parseGoInt(text, base: base, bitSize: bitSize).get()
}

/// strconv.ParseUint, with the same base rules as `goParseInt` but no sign.
public func goParseUint(_ text: String, base: Int, bitSize: Int = 64) throws(GoNumError) -> UInt64 {
    try parseGoUint(text, base: base, bitSize: bitSize).get()
}

/// strconv.ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
public func goParseBool(_ text: String) -> Bool? {
    switch text {
    case "1", "t", "T", "TRUE", "true", "True": return true
    case "0", "f", "F", "FALSE", "false", "False": return false
    default: return nil
    }
}

func parseGoInt(_ text: String, base: Int, bitSize: Int) -> Result<Int64, GoNumError> {
    let syntaxError = GoNumError(function: "ParseInt", input: text, outOfRange: false)
    let rangeError = GoNumError(function: "ParseInt", input: text, outOfRange: true)
    var digits = Substring(text)
    var negative = false
    if digits.first == "+" {
        digits = digits.dropFirst()
    } else if digits.first == "-" {
        negative = true
        digits = digits.dropFirst()
    }
    if text.isEmpty {
        return .failure(syntaxError)
    }
    let magnitude: UInt64
    switch parseGoUint(String(digits), base: base, bitSize: bitSize) {
    case .success(let value):
        magnitude = value
    case .failure(let error):
        if !error.outOfRange {
            return .failure(syntaxError)
        }
        return .failure(rangeError)
    }
    let bits = min(max(bitSize, 1), 64)
    let limit = UInt64(1) << UInt64(bits - 1)
    if !negative && magnitude >= limit || negative && magnitude > limit {
        return .failure(rangeError)
    }
    if negative {
        return .success(magnitude == limit ? Int64.min >> (64 - bits) : -Int64(magnitude))
    }
    return .success(Int64(magnitude))
}

func parseGoUint(_ text: String, base requestedBase: Int, bitSize: Int) -> Result<UInt64, GoNumError> {
    let syntaxError = GoNumError(function: "ParseUint", input: text, outOfRange: false)
    let rangeError = GoNumError(function: "ParseUint", input: text, outOfRange: true)
    var bytes = Array(text.utf8)[...]
    guard !bytes.isEmpty, requestedBase == 0 || (2...36).contains(requestedBase) else {
        return .failure(syntaxError)
    }
    let baseZero = requestedBase == 0
    var base = UInt64(requestedBase)
    if baseZero {
        base = 10
        if bytes.first == UInt8(ascii: "0") {
            let marker = bytes.count >= 3 ? lowered(bytes[bytes.startIndex + 1]) : 0
            switch marker {
            case UInt8(ascii: "b"):
                base = 2
                bytes = bytes.dropFirst(2)
            case UInt8(ascii: "o"):
                base = 8
                bytes = bytes.dropFirst(2)
            case UInt8(ascii: "x"):
                base = 16
                bytes = bytes.dropFirst(2)
            default:
                base = 8
                bytes = bytes.dropFirst(1)
            }
        }
    }
    let bits = min(max(bitSize, 1), 64)
    let maxValue = bits == 64 ? UInt64.max : (UInt64(1) << UInt64(bits)) - 1
    var value: UInt64 = 0
    var sawUnderscore = false
    for byte in bytes {
        if byte == UInt8(ascii: "_") && baseZero {
            sawUnderscore = true
            continue
        }
        guard let digit = digitValue(byte), digit < base else {
            return .failure(syntaxError)
        }
        let (shifted, overflow) = value.multipliedReportingOverflow(by: base)
        if overflow {
            return .failure(rangeError)
        }
        let (sum, carry) = shifted.addingReportingOverflow(digit)
        if carry || sum > maxValue {
            return .failure(rangeError)
        }
        value = sum
    }
    if sawUnderscore && !underscoresAreSeparators(Array(text.utf8)) {
        return .failure(syntaxError)
    }
    return .success(value)
}

private func lowered(_ byte: UInt8) -> UInt8 {
    byte | 0x20
}

private func digitValue(_ byte: UInt8) -> UInt64? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(byte - UInt8(ascii: "0"))
    case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt64(byte - UInt8(ascii: "a") + 10)
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt64(byte - UInt8(ascii: "A") + 10)
    default: return nil
    }
}

/// Go's rule for "_" in base-0 literals: only between digits, or between a base prefix and a digit.
private func underscoresAreSeparators(_ bytes: [UInt8]) -> Bool {
    var rest = bytes[...]
    if let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
        rest = rest.dropFirst()
    }
    var previous = "start"
    var hex = false
    if rest.count >= 2, rest.first == UInt8(ascii: "0") {
        let marker = lowered(rest[rest.startIndex + 1])
        if marker == UInt8(ascii: "b") || marker == UInt8(ascii: "o") || marker == UInt8(ascii: "x") {
            hex = marker == UInt8(ascii: "x")
            previous = "digit"
            rest = rest.dropFirst(2)
        }
    }
    for byte in rest {
        let isDigit = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        let isHexLetter = hex && (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(lowered(byte))
        if isDigit || isHexLetter {
            previous = "digit"
        } else if byte == UInt8(ascii: "_") {
            if previous != "digit" { return false }
            previous = "underscore"
        } else {
            if previous == "underscore" { return false }
            previous = "other"
        }
    }
    return previous != "underscore"
}

/// time.ParseDuration: a sequence of decimal numbers with optional fraction and a unit
/// (ns, us, µs, μs, ms, s, m, h), optionally signed; "0" alone needs no unit.
public func goParseDuration(_ text: String) -> Duration? {
    var rest = Array(text.utf8)[...]
    var negative = false
    if let sign = rest.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
        negative = sign == UInt8(ascii: "-")
        rest = rest.dropFirst()
    }
    if rest.elementsEqual("0".utf8) {
        return .zero
    }
    if rest.isEmpty {
        return nil
    }
    let limit = UInt64(1) << 63
    var total: UInt64 = 0
    while !rest.isEmpty {
        guard let first = rest.first, first == UInt8(ascii: ".") || isDecimalDigit(first) else {
            return nil
        }
        let before = rest.count
        guard let whole = leadingInteger(&rest) else { return nil }
        let hasWhole = rest.count != before
        var fraction: UInt64 = 0
        var scale: Double = 1
        var hasFraction = false
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            let fractionStart = rest.count
            (fraction, scale) = leadingFraction(&rest)
            hasFraction = rest.count != fractionStart
        }
        if !hasWhole && !hasFraction {
            return nil
        }
        let unitEnd = rest.firstIndex { $0 == UInt8(ascii: ".") || isDecimalDigit($0) } ?? rest.endIndex
        guard unitEnd != rest.startIndex, let unit = durationUnit(rest[..<unitEnd]) else {
            return nil
        }
        rest = rest[unitEnd...]
        if whole > limit / unit {
            return nil
        }
        var amount = whole * unit
        if fraction > 0 {
            amount += UInt64(Double(fraction) * (Double(unit) / scale))
            if amount > limit { return nil }
        }
        let (sum, overflow) = total.addingReportingOverflow(amount)
        if overflow || sum > limit {
            return nil
        }
        total = sum
    }
    if negative {
        return .nanoseconds(total == limit ? Int64.min : -Int64(total))
    }
    if total > limit - 1 {
        return nil
    }
    return .nanoseconds(Int64(total))
}

private func isDecimalDigit(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
}

/// Consumes leading digits; nil when the value passes 2^63.
private func leadingInteger(_ rest: inout ArraySlice<UInt8>) -> UInt64? {
    var value: UInt64 = 0
    while let byte = rest.first, isDecimalDigit(byte) {
        if value > (UInt64(1) << 63) / 10 { return nil }
        value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        if value > UInt64(1) << 63 { return nil }
        rest = rest.dropFirst()
    }
    return value
}

/// Consumes leading digits of a fraction; digits that no longer fit are dropped, as Go does.
private func leadingFraction(_ rest: inout ArraySlice<UInt8>) -> (UInt64, Double) {
    var value: UInt64 = 0
    var scale: Double = 1
    var overflowed = false
    while let byte = rest.first, isDecimalDigit(byte) {
        rest = rest.dropFirst()
        if overflowed { continue }
        if value > UInt64(Int64.max) / 10 {
            overflowed = true
            continue
        }
        let next = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        if next > UInt64(1) << 63 {
            overflowed = true
            continue
        }
        value = next
        scale *= 10
    }
    return (value, scale)
}

private func durationUnit(_ unit: ArraySlice<UInt8>) -> UInt64? {
    switch String(decoding: unit, as: UTF8.self) {
    case "ns": return 1
    case "us", "\u{00B5}s", "\u{03BC}s": return 1_000
    case "ms": return 1_000_000
    case "s": return 1_000_000_000
    case "m": return 60 * 1_000_000_000
    case "h": return 3_600 * 1_000_000_000
    default: return nil
    }
}

/// strconv.Quote, as Go's %q prints strings in flag errors: printable text as is, escapes otherwise.
public func goQuote(_ text: String) -> String {
    var quoted = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": quoted += "\\\""
        case "\\": quoted += "\\\\"
        case "\u{07}": quoted += "\\a"
        case "\u{08}": quoted += "\\b"
        case "\u{0C}": quoted += "\\f"
        case "\n": quoted += "\\n"
        case "\r": quoted += "\\r"
        case "\t": quoted += "\\t"
        case "\u{0B}": quoted += "\\v"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                quoted += "\\x" + hexDigits(scalar.value, width: 2)
            } else if (0x80..<0xA0).contains(scalar.value) {
                quoted += "\\u" + hexDigits(scalar.value, width: 4)
            } else {
                quoted.unicodeScalars.append(scalar)
            }
        }
    }
    return quoted + "\""
}

private func hexDigits(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
