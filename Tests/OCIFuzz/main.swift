// oci-fuzz (test-only, never shipped): the config parser, decoder and validator on seeded random
// mutations of a corpus, in a process of its own, so that a Swift trap kills this process and not the
// test run; IntegrationTests.ConfigFuzzTests drives it.
//
//   oci-fuzz [--seed N] [--iterations N] FILE...      run N cases; prints "case I" before case I
//                                                      (unbuffered) and "done PARSED DECODED VALID" last
//   oci-fuzz [--seed N] --dump I FILE...               print case I's bytes (to reproduce a crash)
//   oci-fuzz [--seed N] --emit DIR --count N FILE...   write N mutated configs that decode as a Spec to
//                                                      DIR/N/config.json (for `swiftlet create`)
//
// Mutations: bit flips, byte sets, deletions, insertions, truncation, duplicated slices, deep nesting,
// huge and odd numbers, random unicode and \u escapes (lone surrogates, NUL), and structural ones on
// the parsed tree (a value replaced by one of another type or an edge value, a member removed or
// duplicated). Everything is derived from the seed: the same seed gives the same cases.
import Glibc
import OCI
import TestSupport

let hugeNumbers = [
    "1e999999", "-1e999999", "18446744073709551616", "-9223372036854775809", "9223372036854775807",
    "4294967296", "-1", "-0", "0.5", "1.7976931348623157e309", "123456789012345678901234567890",
    "0.000000000000000000000000000001", "-2147483649", "65536", "1E400", "2e-400",
]
let edgeStrings = [
    "", "/", "..", "../../etc", "/proc/self/fd/3", "a\u{0}b", "\u{FEFF}", "😀", "\u{10FFFF}",
    String(repeating: "x", count: 5000), "CAP_SYS_ADMIN", "SCMP_ACT_ALLOW", "RLIMIT_NOFILE", "c", "b",
    "tmpfs", "bind", "pid", "user", "network", "rbind", "ro", "idmap", "-1", "max",
]

func randomScalar(_ rng: inout SeededRandom) -> Unicode.Scalar {
    while true {
        let ranges: [ClosedRange<UInt32>] = [0...0x7F, 0x80...0x7FF, 0x800...0xFFFF, 0x10000...0x10FFFF]
        let r = ranges[Int.random(in: 0..<ranges.count, using: &rng)]
        if let s = Unicode.Scalar(UInt32.random(in: r, using: &rng)) { return s }
    }
}

func randomValue(_ rng: inout SeededRandom, depth: Int = 0) -> JSONValue {
    switch Int.random(in: 0..<8, using: &rng) {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &rng))
    case 2: return .number(hugeNumbers[Int.random(in: 0..<hugeNumbers.count, using: &rng)])
    case 3: return .number(String(Int64.random(in: -5...70000, using: &rng)))
    case 4: return .string(edgeStrings[Int.random(in: 0..<edgeStrings.count, using: &rng)])
    case 5:
        return .string(
            String(String.UnicodeScalarView((0..<Int.random(in: 1...12, using: &rng)).map { _ in randomScalar(&rng) })))
    case 6:
        return depth > 2
            ? .array([])
            : .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) })
    default:
        if depth > 2 { return .object(JSONObject()) }
        return .object(
            JSONObject(
                (0..<Int.random(in: 0...3, using: &rng)).map { i in ("k\(i)", randomValue(&rng, depth: depth + 1)) }))
    }
}

/// Replaces, removes or duplicates one node somewhere in the tree.
func mutateTree(_ v: JSONValue, _ rng: inout SeededRandom) -> JSONValue {
    let descend = Int.random(in: 0..<4, using: &rng) != 0
    switch v {
    case .object(var o) where descend && !o.members.isEmpty:
        let i = Int.random(in: 0..<o.members.count, using: &rng)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: o.members.remove(at: i)
        case 1: o.members.append(o.members[i])  // duplicate key
        default: o.members[i].value = mutateTree(o.members[i].value, &rng)
        }
        return .object(o)
    case .array(var a) where descend && !a.isEmpty:
        let i = Int.random(in: 0..<a.count, using: &rng)
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: a.remove(at: i)
        case 1: a.append(a[i])
        default: a[i] = mutateTree(a[i], &rng)
        }
        return .array(a)
    default:
        return randomValue(&rng)
    }
}

func mutateBytes(_ input: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
    var b = input
    if b.isEmpty { b = [0x20] }
    let at = Int.random(in: 0..<b.count, using: &rng)
    switch Int.random(in: 0..<10, using: &rng) {
    case 0: b[at] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
    case 1:
        b[at] =
            Array("{}[]\",:\\-0123456789eE.tfnu \n".utf8 + [0, 0x1F, 0x7F, 0x80, 0xC3, 0xED, 0xF4, 0xFF]).randomElement(
                using: &rng) ?? 0
    case 2: b.removeSubrange(at..<min(b.count, at + Int.random(in: 1...16, using: &rng)))
    case 3:
        b.insert(
            contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) },
            at: at)
    case 4: b = Array(b[..<at])
    case 5: b.insert(contentsOf: b[at..<min(b.count, at + Int.random(in: 1...64, using: &rng))], at: at)
    case 6:
        let n = Int.random(in: 1...400, using: &rng)
        let (open, close): ([UInt8], [UInt8]) =
            Bool.random(using: &rng) ? (Array("[".utf8), Array("]".utf8)) : (Array("{\"a\":".utf8), Array("}".utf8))
        b =
            Array([[UInt8]](repeating: open, count: n).joined()) + b
            + Array([[UInt8]](repeating: close, count: n).joined())
    case 7:
        // A run of digits becomes a huge or odd number.
        if let start = b.indices.first(where: { $0 >= at && (0x30...0x39).contains(b[$0]) }) {
            var end = start
            while end < b.count && (0x30...0x39).contains(b[end]) { end += 1 }
            b.replaceSubrange(
                start..<end, with: Array(hugeNumbers[Int.random(in: 0..<hugeNumbers.count, using: &rng)].utf8))
        }
    case 8:
        let escapes = ["\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\uffff", "\\u00", "\\x41", "\\"]
        b.insert(contentsOf: Array(escapes[Int.random(in: 0..<escapes.count, using: &rng)].utf8), at: at)
    default:
        b.insert(contentsOf: Array(String(randomScalar(&rng)).utf8), at: at)
    }
    return b
}

/// Case `i`: a corpus entry with 1 to 4 mutations, structural ones on the parsed tree while it parses.
func makeCase(_ i: Int, seed: UInt64, corpus: [[UInt8]], structuralOnly: Bool = false) -> [UInt8] {
    var rng = SeededRandom(seed: seed &+ UInt64(i) &* 0x1000_0001)
    var bytes = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
        if structuralOnly || Bool.random(using: &rng), let tree = try? JSONValue.parse(bytes) {
            bytes = mutateTree(tree, &rng).serializedBytes(pretty: Bool.random(using: &rng))
        } else {
            bytes = mutateBytes(bytes, &rng)
        }
    }
    return bytes
}

func say(_ s: String) {
    let line = Array((s + "\n").utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

func usage() -> Never {
    say("usage: oci-fuzz [--seed N] [--iterations N | --dump I | --emit DIR --count N] FILE...")
    exit(2)
}

var seed: UInt64 = 1
var iterations = 1000
var dump: Int?
var emitDir: String?
var count = 100
var files: [String] = []
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--seed":
        guard let v = args.popFirst().flatMap({ UInt64($0) }) else { usage() }
        seed = v
    case "--iterations":
        guard let v = args.popFirst().flatMap({ Int($0) }) else { usage() }
        iterations = v
    case "--dump":
        guard let v = args.popFirst().flatMap({ Int($0) }) else { usage() }
        dump = v
    case "--emit":
        guard let v = args.popFirst() else { usage() }
        emitDir = v
    case "--count":
        guard let v = args.popFirst().flatMap({ Int($0) }) else { usage() }
        count = v
    default: files.append(a)
    }
}
var corpus: [[UInt8]] = []
for f in files {
    guard let bytes = try? FileSystemRead.read(f) else {
        say("oci-fuzz: cannot read \(f)")
        exit(2)
    }
    corpus.append(bytes)
}
if corpus.isEmpty { usage() }

enum FileSystemRead {
    static func read(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw FuzzError.io(path) }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { return out }
            out += buf[0..<n]
        }
    }
}
enum FuzzError: Error { case io(String) }

if let i = dump {
    let b = makeCase(i, seed: seed, corpus: corpus)
    _ = b.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    exit(0)
}

if let dir = emitDir {
    var written = 0
    var i = 0
    while written < count && i < count * 50 {
        let b = makeCase(i, seed: seed, corpus: corpus, structuralOnly: true)
        i += 1
        guard (try? decodeJSON(Spec.self, from: b)) != nil else { continue }
        let caseDir = "\(dir)/\(written)"
        mkdir(caseDir, 0o755)
        guard let f = fopen(caseDir + "/config.json", "wb") else {
            say("oci-fuzz: cannot write \(caseDir)")
            exit(2)
        }
        _ = b.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
        written += 1
    }
    say("emitted \(written)")
    exit(0)
}

var parsed = 0
var decoded = 0
var valid = 0
for i in 0..<iterations {
    say("case \(i)")
    let bytes = makeCase(i, seed: seed, corpus: corpus)
    if let value = try? JSONValue.parse(bytes) {
        parsed += 1
        // Whatever parses re-serializes to the same value.
        if (try? JSONValue.parse(value.serializedBytes())) != value {
            say("mismatch \(i)")
            exit(3)
        }
    }
    if let spec = try? decodeJSON(Spec.self, from: bytes) {
        decoded += 1
        if (try? spec.validate()) != nil { valid += 1 }
        _ = try? decodeJSON(Spec.self, from: Array(encodeJSON(spec, pretty: true).utf8))
    }
}
say("done \(parsed) \(decoded) \(valid)")
