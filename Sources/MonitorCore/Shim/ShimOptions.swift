import Checkpoint
import Glibc
import LinuxSystem

// The `options` Any of CreateTaskRequest: how containerd tells a shim which runtime to run and how.
//   containerd.runc.v1.Options            what `ctr --runtime io.containerd.runc.v2` and CRI's runc
//                                         handlers pass; the same message configures our shim.
//   runtimeoptions.v1.Options             what CRI (and `ctr --runtime-config-path`) pass to any other
//                                         shim: type_url=1, config_path=2, config_body=3 (containerd
//                                         1.7+); the file (or body) is TOML with runc's option names.
//   containerd.linux.runc.CreateOptions   what ctr's --no-pivot/--no-new-keyring build for a non-runc
//                                         runtime (no_pivot_root=1, no_new_keyring=8, shim_cgroup=9,
//                                         io_uid=10, io_gid=11, criu_work_path=12, criu_image_path=13).
// Anything else is an error naming the type: a handler configured for another shim must not run
// with defaults silently.

enum ShimOptions {
    static let runcType = "containerd.runc.v1.Options"
    static let configType = "runtimeoptions.v1.Options"
    static let createOptionsType = "containerd.linux.runc.CreateOptions"

    /// The runtime options a Create carries (defaults when it carries none).
    static func decode(_ any: AnyMessage?) throws(RPCError) -> RuntimeOptions {
        guard let any, !any.typeURL.isEmpty else { return RuntimeOptions() }
        let url = any.typeURL
        var config: (typeURL: String, path: String, body: String)?
        do throws(ProtoError) {
            if matches(url, runcType) { return try RuntimeOptions.decode(any.value) }
            if matches(url, createOptionsType) { return try createOptions(any.value) }
            if matches(url, configType) {
                let f = try ProtoFields(any.value)
                config = (try f.string(1), try f.string(2), try f.string(3))
            }
        } catch {
            throw RPCError(.invalidArgument, "runtime options (\(url)): \(error)")
        }
        if let config { return try fromConfig(typeURL: config.typeURL, path: config.path, body: config.body) }
        throw RPCError(
            .invalidArgument,
            "runtime options: unknown type \(url) (expected \(runcType), \(configType) or \(createOptionsType))")
    }

    private static func matches(_ url: String, _ name: String) -> Bool { url == name || url.hasSuffix("/" + name) }

    private static func createOptions(_ b: [UInt8]) throws(ProtoError) -> RuntimeOptions {
        let f = try ProtoFields(b)
        var o = RuntimeOptions()
        o.noPivotRoot = try f.bool(1)
        o.noNewKeyring = try f.bool(8)
        o.shimCgroup = try f.string(9)
        o.ioUID = UInt32(truncatingIfNeeded: try f.uint(10))
        o.ioGID = UInt32(truncatingIfNeeded: try f.uint(11))
        o.criuWorkPath = try f.string(12)
        o.criuImagePath = try f.string(13)
        return o
    }

    /// runtimeoptions.v1.Options: the TOML in config_body, else in the file at config_path. Its
    /// type_url, when set, must name runc's options (the file's keys are theirs): any name ending in
    /// runc.v1.Options, e.g. io.containerd.runc.v1.Options.
    static func fromConfig(typeURL: String, path: String, body: String) throws(RPCError) -> RuntimeOptions {
        guard typeURL.isEmpty || typeURL.lowercased().hasSuffix("runc.v1.options") else {
            throw RPCError(
                .invalidArgument, "runtime options: TypeUrl \(typeURL) is not supported (use \(runcType) or none)")
        }
        if !body.isEmpty { return try fromTOML(body, file: "config_body") }
        if path.isEmpty { return RuntimeOptions() }
        let text: String
        do throws(SysError) { text = try FS.readString(path) } catch {
            throw RPCError(.invalidArgument, "runtime options: ConfigPath: \(error)")
        }
        return try fromTOML(text, file: path)
    }

    /// The keys of containerd.runc.v1.Options in TOML, named as in CRI's runc options tables
    /// (BinaryName, Root, SystemdCgroup...; matched without regard to case, as containerd's TOML
    /// decoder does). An unknown key, a wrong type or a repeated key is an error naming the line.
    static func fromTOML(_ text: String, file: String) throws(RPCError) -> RuntimeOptions {
        var o = RuntimeOptions()
        var seen: Set<String> = []
        for entry in try TOMLSubset.parse(text, file: file) {
            func fail(_ why: String) -> RPCError {
                RPCError(.invalidArgument, "runtime options: \(file) line \(entry.line): key \(entry.key): \(why)")
            }
            let key = entry.key.lowercased()
            guard seen.insert(key).inserted else { throw fail("given twice") }
            switch (key, entry.value) {
            case ("binaryname", .string(let v)): o.binaryName = v
            case ("root", .string(let v)): o.root = v
            case ("criupath", .string(let v)): o.criuPath = v
            case ("shimcgroup", .string(let v)): o.shimCgroup = v
            case ("criuimagepath", .string(let v)): o.criuImagePath = v
            case ("criuworkpath", .string(let v)): o.criuWorkPath = v
            case ("systemdcgroup", .bool(let v)): o.systemdCgroup = v
            case ("nopivotroot", .bool(let v)): o.noPivotRoot = v
            case ("nonewkeyring", .bool(let v)): o.noNewKeyring = v
            case ("iouid", .integer(let v)), ("iogid", .integer(let v)):
                guard let id = UInt32(exactly: v) else { throw fail("\(v) is not a uint32") }
                if key == "iouid" { o.ioUID = id } else { o.ioGID = id }
            case ("binaryname", _), ("root", _), ("criupath", _), ("shimcgroup", _), ("criuimagepath", _),
                ("criuworkpath", _):
                throw fail("expected a string")
            case ("systemdcgroup", _), ("nopivotroot", _), ("nonewkeyring", _):
                throw fail("expected true or false")
            case ("iouid", _), ("iogid", _):
                throw fail("expected an integer")
            default:
                throw fail(
                    "unknown (BinaryName, Root, SystemdCgroup, CriuPath, NoPivotRoot, NoNewKeyring, ShimCgroup, "
                        + "IoUid, IoGid, CriuImagePath, CriuWorkPath)")
            }
        }
        return o
    }

    /// Options the runc shim honours that have no swiftlet flag here, each with the reason it is
    /// ignored (logged at Create).
    static func ignored(_ o: RuntimeOptions) -> [String] {
        var out: [String] = []
        if !o.shimCgroup.isEmpty {
            out.append("ShimCgroup \(o.shimCgroup) ignored: one shim serves a pod, placed by containerd at start")
        }
        if o.ioUID != 0 || o.ioGID != 0 {
            out.append("IoUid/IoGid ignored: the process gets pipes the shim made, usable whatever their owner")
        }
        if !o.criuImagePath.isEmpty {
            out.append("CriuImagePath ignored: checkpoints go to the path each Checkpoint request names")
        }
        return out
    }
}

/// The part of TOML a runtime options file needs: `key = value` lines (bare or quoted keys), values
/// that are basic or literal strings, booleans or decimal integers, `#` comments and blank lines.
/// Tables, arrays, multi-line strings, floats and dates are errors naming the line.
enum TOMLSubset {
    enum Value: Equatable {
        case string(String)
        case bool(Bool)
        case integer(Int64)
    }

    struct Entry: Equatable {
        var key: String
        var value: Value
        var line: Int
    }

    static func parse(_ text: String, file: String) throws(RPCError) -> [Entry] {
        var out: [Entry] = []
        // By bytes: "\r\n" is one Character to Swift, and a CR before the LF is dropped by the Scanner.
        for (i, raw) in text.utf8.split(separator: 0x0a, omittingEmptySubsequences: false).enumerated() {
            var s = Scanner(Array(raw), file: file, line: i + 1)
            s.skipSpaces()
            if s.atEnd || s.peek == UInt8(ascii: "#") { continue }
            if s.peek == UInt8(ascii: "[") { throw s.error("tables are not supported (keys go at the top level)") }
            let key = try s.key()
            s.skipSpaces()
            guard s.take(UInt8(ascii: "=")) else { throw s.error("key \(key): expected '=' after the key") }
            s.skipSpaces()
            let value = try s.value(key)
            s.skipSpaces()
            guard s.atEnd || s.peek == UInt8(ascii: "#") else { throw s.error("key \(key): text after the value") }
            out.append(Entry(key: key, value: value, line: i + 1))
        }
        return out
    }

    private struct Scanner {
        let b: [UInt8]
        let file: String
        let line: Int
        var i = 0

        init(_ b: [UInt8], file: String, line: Int) {
            var bytes = b
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            self.b = bytes
            self.file = file
            self.line = line
        }

        var atEnd: Bool { i >= b.count }
        var peek: UInt8 { b[i] }

        func error(_ why: String) -> RPCError {
            RPCError(.invalidArgument, "runtime options: \(file) line \(line): \(why)")
        }

        mutating func skipSpaces() {
            while !atEnd, peek == UInt8(ascii: " ") || peek == UInt8(ascii: "\t") { i += 1 }
        }

        mutating func take(_ c: UInt8) -> Bool {
            guard !atEnd, peek == c else { return false }
            i += 1
            return true
        }

        mutating func key() throws(RPCError) -> String {
            if !atEnd, peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "'") {
                guard case .string(let k) = try value("(quoted key)") else { throw error("bad key") }
                return k
            }
            let start = i
            while !atEnd, Self.isBare(peek) { i += 1 }
            guard i > start else { throw error("expected a key") }
            if !atEnd, peek == UInt8(ascii: ".") { throw error("dotted keys are not supported") }
            return String(decoding: b[start..<i], as: UTF8.self)
        }

        static func isBare(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2d
        }

        mutating func value(_ key: String) throws(RPCError) -> Value {
            guard !atEnd else { throw error("key \(key): a value is missing") }
            switch peek {
            case UInt8(ascii: "\""): return .string(try basicString(key))
            case UInt8(ascii: "'"): return .string(try literalString(key))
            default: break
            }
            let start = i
            while !atEnd, peek != UInt8(ascii: " "), peek != UInt8(ascii: "\t"), peek != UInt8(ascii: "#") { i += 1 }
            let word = String(decoding: b[start..<i], as: UTF8.self)
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            if let n = Self.integer(word) { return .integer(n) }
            throw error("key \(key): unsupported value \(word) (a string, true, false or an integer)")
        }

        /// A decimal integer with an optional sign and single underscores between digits.
        static func integer(_ word: String) -> Int64? {
            var digits = Substring(word)
            if digits.first == "+" || digits.first == "-" { digits.removeFirst() }
            guard let f = digits.first, let l = digits.last, f.isASCII, f.isNumber, l.isNumber,
                !digits.contains("__"), digits.count == 1 || f != "0"
            else { return nil }
            return Int64(word.replacingUnderscores())
        }

        mutating func literalString(_ key: String) throws(RPCError) -> String {
            i += 1
            if i + 1 < b.count, b[i] == UInt8(ascii: "'"), b[i + 1] == UInt8(ascii: "'") {
                throw error("key \(key): multi-line strings are not supported")
            }
            let start = i
            while !atEnd, peek != UInt8(ascii: "'") { i += 1 }
            guard !atEnd else { throw error("key \(key): unterminated string") }
            defer { i += 1 }
            return String(decoding: b[start..<i], as: UTF8.self)
        }

        mutating func basicString(_ key: String) throws(RPCError) -> String {
            i += 1
            if i + 1 < b.count, b[i] == UInt8(ascii: "\""), b[i + 1] == UInt8(ascii: "\"") {
                throw error("key \(key): multi-line strings are not supported")
            }
            var out: [UInt8] = []
            while !atEnd, peek != UInt8(ascii: "\"") {
                let c = peek
                i += 1
                guard c == UInt8(ascii: "\\") else {
                    out.append(c)
                    continue
                }
                guard !atEnd else { break }
                let e = peek
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    guard i + n <= b.count, let v = UInt32(String(decoding: b[i..<i + n], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(v)
                    else { throw error("key \(key): bad \\\(Character(Unicode.Scalar(e))) escape") }
                    out += Array(String(Character(scalar)).utf8)
                    i += n
                default:
                    throw error("key \(key): unknown escape \\\(Character(Unicode.Scalar(e)))")
                }
            }
            guard !atEnd else { throw error("key \(key): unterminated string") }
            i += 1
            return String(decoding: out, as: UTF8.self)
        }
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
