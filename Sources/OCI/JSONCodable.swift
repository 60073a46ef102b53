// Codable over JSONValue: a Decoder that reads a JSONValue and an Encoder that builds one, so the
// synthesized conformances of the Spec types work without Foundation.
//
// Decoding errors name the JSON path in Go/JS style (`linux.namespaces[2].type`) and say what was wrong.
// Numbers are range-checked for the target type; unknown keys are ignored; `null` decodes as nil.
// Encoding omits nil optionals, keeps declaration order, and sorts dictionary keys.

/// A config or state error: where (`process.user.uid`) and what.
public struct OCIError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Parses JSON bytes and decodes them as `type`.
public func decodeJSON<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(OCIError) -> T {
    try decodeJSON(type, from: try JSONValue.parse(bytes))
}

/// Decodes an already parsed JSON value as `type`.
public func decodeJSON<T: Decodable>(_ type: T.Type, from value: JSONValue) throws(OCIError) -> T {
    do {
        return try T(from: ValueDecoder(value: value, codingPath: []))
    } catch let error as OCIError {
        throw error
    } catch let error as DecodingError {
        throw OCIError(decodingError: error, root: value)
    } catch {
        throw OCIError(path: "", message: "\(error)")
    }
}

/// The JSON text of `value`: compact, or indented like Go's `json.MarshalIndent(v, "", "  ")`.
public func encodeJSON<T: Encodable>(_ value: T, pretty: Bool = false) -> String {
    encodeJSONValue(value).serialized(pretty: pretty)
}

/// `value` as a JSON value. Never fails: if a custom `encode(to:)` throws, what it wrote so far is kept.
public func encodeJSONValue<T: Encodable>(_ value: T) -> JSONValue {
    let node = EncodingNode()
    node.encode(value, codingPath: [])
    return node.value
}

// MARK: - Paths and value descriptions

/// An array index in a coding path (printed `[n]`).
struct IndexKey: CodingKey {
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(intValue: Int) { index = intValue }
    init?(stringValue: String) { return nil }
    var intValue: Int? { index }
    var stringValue: String { "Index \(index)" }
}

/// An object key in a coding path.
struct NameKey: CodingKey {
    let stringValue: String
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
    var intValue: Int? { nil }
}

/// `linux.namespaces[2].type`; keys that are not identifiers are quoted: `annotations["io.x"]`.
func formatPath(_ keys: [any CodingKey]) -> String {
    var path = ""
    for key in keys {
        if let index = key as? IndexKey {
            path += "[\(index.index)]"
        } else if isIdentifier(key.stringValue) {
            if !path.isEmpty { path += "." }
            path += key.stringValue
        } else {
            path += "[" + quoteJSON(key.stringValue) + "]"
        }
    }
    return path
}

private func isIdentifier(_ s: String) -> Bool {
    guard let first = s.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
    return s.utf8.allSatisfy { b in
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "$")
    }
}

/// `s` as a JSON string literal (used in messages: `unknown namespace "foo"`).
func quoteJSON(_ s: String) -> String {
    var out: [UInt8] = []
    JSONWriter.writeString(s, into: &out)
    return String(decoding: out, as: UTF8.self)
}

extension JSONValue {
    /// For messages: `string "x"`, `number 1.5`, `boolean true`, `null`, `object`, `array`.
    var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "boolean \(b)"
        case .number(let n): return "number \(n)"
        case .string(let s):
            let shown =
                s.unicodeScalars.count > 64 ? String(String.UnicodeScalarView(s.unicodeScalars.prefix(64))) + "…" : s
            return "string " + quoteJSON(shown)
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension OCIError {
    init(_ codingPath: [any CodingKey], _ message: String) {
        self.init(path: formatPath(codingPath), message: message)
    }

    static func mismatch(_ expected: String, _ value: JSONValue, _ codingPath: [any CodingKey]) -> OCIError {
        OCIError(codingPath, "expected \(expected), got \(value.kindDescription)")
    }

    /// Errors thrown by the standard library's own `init(from:)` (e.g. a String enum with an unknown raw value).
    init(decodingError: DecodingError, root: JSONValue) {
        switch decodingError {
        case .dataCorrupted(let context):
            if case .string(let s)? = root.value(at: context.codingPath) {
                self.init(context.codingPath, "invalid value \(quoteJSON(s))")
            } else {
                self.init(context.codingPath, context.debugDescription)
            }
        case .keyNotFound(let key, let context):
            self.init(context.codingPath + [key], "required field missing")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            self.init(context.codingPath, context.debugDescription)
        @unknown default:
            self.init(path: "", message: "\(decodingError)")
        }
    }
}

extension JSONValue {
    var isNull: Bool { if case .null = self { true } else { false } }

    /// The value at a coding path, if there is one.
    func value(at codingPath: [any CodingKey]) -> JSONValue? {
        var current = self
        for key in codingPath {
            switch current {
            case .array(let elements):
                guard let i = key.intValue, elements.indices.contains(i) else { return nil }
                current = elements[i]
            case .object(let object):
                guard let next = object[key.stringValue] else { return nil }
                current = next
            default:
                return nil
            }
        }
        return current
    }
}

// MARK: - Scalar conversions

private func unboxBool(_ value: JSONValue, _ path: () -> [any CodingKey]) throws(OCIError) -> Bool {
    guard case .bool(let b) = value else { throw .mismatch("boolean", value, path()) }
    return b
}

private func unboxString(_ value: JSONValue, _ path: () -> [any CodingKey]) throws(OCIError) -> String {
    guard case .string(let s) = value else { throw .mismatch("string", value, path()) }
    return s
}

/// An integer literal (no fraction or exponent) checked against the range of `T`.
private func unboxInteger<T: FixedWidthInteger>(_ value: JSONValue, _: T.Type, _ path: () -> [any CodingKey])
    throws(OCIError) -> T
{
    let expected = T.isSigned ? "integer" : "unsigned integer"
    guard case .number(let text) = value else { throw .mismatch(expected, value, path()) }
    var digits = text.utf8[...]
    let negative = digits.first == UInt8(ascii: "-")
    if negative { digits = digits.dropFirst() }
    guard !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
        throw .mismatch(expected, value, path())
    }
    func outOfRange() -> OCIError { OCIError(path(), "value \(text) out of range for \(T.self)") }
    var magnitude: UInt64 = 0
    for d in digits {
        let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
        let (sum, o2) = times10.addingReportingOverflow(UInt64(d - UInt8(ascii: "0")))
        if o1 || o2 { throw outOfRange() }
        magnitude = sum
    }
    if !negative {
        guard let result = T(exactly: magnitude) else { throw outOfRange() }
        return result
    }
    if magnitude == 0 { return 0 }
    guard magnitude <= UInt64(Int64.max) + 1 else { throw outOfRange() }
    let signed = magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
    guard let result = T(exactly: signed) else { throw outOfRange() }
    return result
}

private func unboxDouble(_ value: JSONValue, _ path: () -> [any CodingKey]) throws(OCIError) -> Double {
    guard case .number(let text) = value else { throw .mismatch("number", value, path()) }
    guard let d = Double(text), d.isFinite else { throw OCIError(path(), "value \(text) out of range for Double") }
    return d
}

private func unboxFloat(_ value: JSONValue, _ path: () -> [any CodingKey]) throws(OCIError) -> Float {
    guard case .number(let text) = value else { throw .mismatch("number", value, path()) }
    guard let f = Float(text), f.isFinite else { throw OCIError(path(), "value \(text) out of range for Float") }
    return f
}

// MARK: - Decoder

/// Decodes one JSON value; it is also its own single-value container.
private struct ValueDecoder: Decoder, SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw OCIError.mismatch("object", value, codingPath) }
        return KeyedDecodingContainer(KeyedDecoder<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw OCIError.mismatch("array", value, codingPath) }
        return UnkeyedDecoder(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool { try unboxBool(value) { codingPath } }
    func decode(_ type: String.Type) throws -> String { try unboxString(value) { codingPath } }
    func decode(_ type: Double.Type) throws -> Double { try unboxDouble(value) { codingPath } }
    func decode(_ type: Float.Type) throws -> Float { try unboxFloat(value) { codingPath } }
    func decode(_ type: Int.Type) throws -> Int { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: Int8.Type) throws -> Int8 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: Int16.Type) throws -> Int16 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: Int32.Type) throws -> Int32 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: Int64.Type) throws -> Int64 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: UInt.Type) throws -> UInt { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try unboxInteger(value, type) { codingPath } }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try unboxInteger(value, type) { codingPath } }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: self) }
}

private struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let codingPath: [any CodingKey]
    let object: JSONObject

    init(object: JSONObject, codingPath: [any CodingKey]) {
        self.codingPath = codingPath
        self.object = object
    }

    /// Last value wins for duplicate keys, as in Go. A backwards scan: config objects are small,
    /// and building a dictionary per object cost more than the lookups it saved (Spec/performance.md).
    private func member(_ name: String) -> JSONValue? { object[name] }

    /// The object's keys in source order, each once (used to decode dictionaries).
    var allKeys: [Key] {
        var seen = Set<String>()
        return object.members.compactMap { seen.insert($0.key).inserted ? Key(stringValue: $0.key) : nil }
    }

    func contains(_ key: Key) -> Bool { member(key.stringValue) != nil }

    private func value(_ key: Key) throws(OCIError) -> JSONValue {
        guard let value = member(key.stringValue) else { throw OCIError(codingPath + [key], "required field missing") }
        return value
    }

    private func child(_ key: Key) throws(OCIError) -> ValueDecoder {
        ValueDecoder(value: try value(key), codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key).isNull }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try unboxBool(try value(key)) { codingPath + [key] }
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try unboxString(try value(key)) { codingPath + [key] }
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        try unboxDouble(try value(key)) { codingPath + [key] }
    }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        try unboxFloat(try value(key)) { codingPath + [key] }
    }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 {
        try unboxInteger(try value(key), type) { codingPath + [key] }
    }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try T(from: try child(key)) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        ValueDecoder(value: member("super") ?? .null, codingPath: codingPath + [NameKey("super")])
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: member(key.stringValue) ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(elements: [JSONValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private mutating func nextValue() throws(OCIError) -> (JSONValue, Int) {
        guard currentIndex < elements.count else {
            throw OCIError(codingPath + [IndexKey(currentIndex)], "unexpected end of array")
        }
        defer { currentIndex += 1 }
        return (elements[currentIndex], currentIndex)
    }

    private mutating func next() throws(OCIError) -> ValueDecoder {
        let (value, index) = try nextValue()
        return ValueDecoder(value: value, codingPath: codingPath + [IndexKey(index)])
    }

    mutating func decodeNil() throws -> Bool {
        guard currentIndex < elements.count, elements[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool {
        let (v, i) = try nextValue()
        return try unboxBool(v) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: String.Type) throws -> String {
        let (v, i) = try nextValue()
        return try unboxString(v) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Double.Type) throws -> Double {
        let (v, i) = try nextValue()
        return try unboxDouble(v) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Float.Type) throws -> Float {
        let (v, i) = try nextValue()
        return try unboxFloat(v) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Int.Type) throws -> Int {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Int8.Type) throws -> Int8 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Int16.Type) throws -> Int16 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Int32.Type) throws -> Int32 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: Int64.Type) throws -> Int64 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: UInt.Type) throws -> UInt {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 {
        let (v, i) = try nextValue()
        return try unboxInteger(v, type) { codingPath + [IndexKey(i)] }
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: try next()) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

// MARK: - Encoder

/// One node of the JSON tree being built. Containers hand out child nodes and fill them in later,
/// so nodes are references; `value` turns the finished tree into a JSONValue.
private final class EncodingNode {
    enum Kind { case empty, scalar, object, array }
    var kind = Kind.empty
    var scalar = JSONValue.null
    var keys: [String] = []
    var children: [String: EncodingNode] = [:]
    var items: [EncodingNode] = []

    var value: JSONValue {
        switch kind {
        case .empty: return .object(JSONObject())
        case .scalar: return scalar
        case .object: return .object(JSONObject(keys.map { (key: $0, value: children[$0]?.value ?? .null) }))
        case .array: return .array(items.map(\.value))
        }
    }

    /// Encodes `value` into this node. String-keyed dictionaries are written with sorted keys.
    func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) {
        if let dictionary = value as? any SortedEncodableDictionary {
            dictionary.encodeSorted(into: self, codingPath: codingPath)
            return
        }
        // A throwing custom encode(to:) leaves whatever it wrote: encoding is best effort by design.
        try? value.encode(to: NodeEncoder(node: self, codingPath: codingPath))
    }

    func set(_ v: JSONValue) {
        kind = .scalar
        scalar = v
    }

    func makeObject() {
        if kind != .object {
            kind = .object
            keys = []
            children = [:]
        }
    }

    func makeArray() {
        if kind != .array {
            kind = .array
            items = []
        }
    }

    /// The member node for `key` (a key encoded twice keeps its first position and its last value).
    func child(forKey key: String) -> EncodingNode {
        makeObject()
        if let existing = children[key] { return existing }
        let node = EncodingNode()
        keys.append(key)
        children[key] = node
        return node
    }

    func appendChild() -> EncodingNode {
        makeArray()
        let node = EncodingNode()
        items.append(node)
        return node
    }
}

private protocol SortedEncodableDictionary {
    func encodeSorted(into node: EncodingNode, codingPath: [any CodingKey])
}

extension Dictionary: SortedEncodableDictionary where Key == String, Value: Encodable {
    fileprivate func encodeSorted(into node: EncodingNode, codingPath: [any CodingKey]) {
        node.makeObject()
        for key in keys.sorted() {
            if let value = self[key] { node.child(forKey: key).encode(value, codingPath: codingPath + [NameKey(key)]) }
        }
    }
}

private func jsonNumber(_ d: Double) -> JSONValue {
    guard d.isFinite else { return .null }
    // Whole numbers print without ".0", as Go does (checked without libm, which the binary may not link).
    if abs(d) < 1e15, Double(Int64(d)) == d { return .number(String(Int64(d))) }
    return .number(String(d))
}

private struct NodeEncoder: Encoder, SingleValueEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.makeObject()
        return KeyedEncodingContainer(KeyedEncoder<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.makeArray()
        return UnkeyedEncoder(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeNil() { node.set(.null) }
    func encode(_ value: Bool) { node.set(.bool(value)) }
    func encode(_ value: String) { node.set(.string(value)) }
    func encode(_ value: Double) { node.set(jsonNumber(value)) }
    func encode(_ value: Float) { node.set(jsonNumber(Double(value))) }
    func encode(_ value: Int) { node.set(.number(String(value))) }
    func encode(_ value: Int8) { node.set(.number(String(value))) }
    func encode(_ value: Int16) { node.set(.number(String(value))) }
    func encode(_ value: Int32) { node.set(.number(String(value))) }
    func encode(_ value: Int64) { node.set(.number(String(value))) }
    func encode(_ value: UInt) { node.set(.number(String(value))) }
    func encode(_ value: UInt8) { node.set(.number(String(value))) }
    func encode(_ value: UInt16) { node.set(.number(String(value))) }
    func encode(_ value: UInt32) { node.set(.number(String(value))) }
    func encode(_ value: UInt64) { node.set(.number(String(value))) }
    func encode<T: Encodable>(_ value: T) { node.encode(value, codingPath: codingPath) }
}

private struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    private func child(_ key: Key) -> NodeEncoder {
        NodeEncoder(node: node.child(forKey: key.stringValue), codingPath: codingPath + [key])
    }

    private func leaf(_ key: Key, _ value: JSONValue) { node.child(forKey: key.stringValue).set(value) }

    mutating func encodeNil(forKey key: Key) { leaf(key, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) { leaf(key, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) { leaf(key, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) { leaf(key, jsonNumber(value)) }
    mutating func encode(_ value: Float, forKey key: Key) { leaf(key, jsonNumber(Double(value))) }
    mutating func encode(_ value: Int, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: UInt, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: UInt8, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) { leaf(key, .number(String(value))) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) { child(key).encode(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        child(key).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        child(key).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        NodeEncoder(node: node.child(forKey: "super"), codingPath: codingPath + [NameKey("super")])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder { child(key) }
}

private struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let node: EncodingNode
    let codingPath: [any CodingKey]

    var count: Int { node.items.count }

    private func next() -> NodeEncoder {
        let index = node.items.count
        return NodeEncoder(node: node.appendChild(), codingPath: codingPath + [IndexKey(index)])
    }

    mutating func encodeNil() { node.appendChild().set(.null) }
    mutating func encode(_ value: Bool) { node.appendChild().set(.bool(value)) }
    mutating func encode(_ value: String) { node.appendChild().set(.string(value)) }
    mutating func encode(_ value: Double) { node.appendChild().set(jsonNumber(value)) }
    mutating func encode(_ value: Float) { node.appendChild().set(jsonNumber(Double(value))) }
    mutating func encode(_ value: Int) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: Int8) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: Int16) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: Int32) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: Int64) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: UInt) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: UInt8) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: UInt16) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: UInt32) { node.appendChild().set(.number(String(value))) }
    mutating func encode(_ value: UInt64) { node.appendChild().set(.number(String(value))) }
    mutating func encode<T: Encodable>(_ value: T) { next().encode(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        next().container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { next().unkeyedContainer() }

    mutating func superEncoder() -> any Encoder { next() }
}

// MARK: - Spec enums with their own wording

extension NamespaceType {
    /// `linux.namespaces[2].type: unknown namespace "foo"`.
    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let type = NamespaceType(rawValue: raw) else {
            throw OCIError(decoder.codingPath, "unknown namespace \(quoteJSON(raw))")
        }
        self = type
    }
}

// MARK: - JSONValue itself

/// A JSONValue inside a Codable type (e.g. a state file that keeps the config as read) is copied
/// as it is, without decoding or encoding its contents. Only this file's codec can do that: with
/// another Decoder or Encoder it throws.
extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        guard let d = decoder as? ValueDecoder else {
            throw OCIError(decoder.codingPath, "a raw JSON value can only be decoded by OCI.decodeJSON")
        }
        self = d.value
    }

    public func encode(to encoder: any Encoder) throws {
        guard let e = encoder as? NodeEncoder else {
            throw OCIError(encoder.codingPath, "a raw JSON value can only be encoded by OCI.encodeJSON")
        }
        e.node.set(self)
    }
}
