import Foundation
import XCTest

@testable import LinuxSystem
@testable import OCI
@testable import Seccomp

/// The compiled-program cache on a temp directory: its file format, what it refuses, its bound, and
/// that a filter from the cache loads what a compiled one would.
final class SeccompCacheUnitTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "seccomp-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func profile(flags: [String]? = nil, action: String = "SCMP_ACT_ERRNO") -> OCI.Seccomp {
        OCI.Seccomp(
            defaultAction: "SCMP_ACT_ALLOW", defaultErrnoRet: nil, architectures: ["SCMP_ARCH_X86_64"],
            flags: flags, listenerPath: action == "SCMP_ACT_NOTIFY" ? "/run/l.sock" : nil, listenerMetadata: nil,
            syscalls: [
                OCI.Seccomp.Syscall(names: ["mkdir", "no_such_syscall"], action: action, errnoRet: nil, args: nil)
            ])
    }

    let entry = SeccompCache.Entry(program: Array(repeating: 6, count: 16), skippedSyscalls: ["no_such\nsyscall"])

    func testRoundTripAndAnyOtherKeyIsAMiss() {
        let key = Array("build=x\n{\"a\":1}".utf8)
        let bytes = SeccompCache.encode(key, entry)
        XCTAssertEqual(SeccompCache.decode(bytes, key: key), entry)
        // The same file name for another key (a collision) must not give this program.
        XCTAssertNil(SeccompCache.decode(bytes, key: Array("build=x\n{\"a\":2}".utf8)))
        XCTAssertNil(SeccompCache.decode(bytes, key: key + [0x20]))
    }

    func testDamagedFilesAreMisses() {
        let key = Array("k".utf8)
        let good = SeccompCache.encode(key, entry)
        XCTAssertNil(SeccompCache.decode(Array(good.dropLast(3)), key: key), "not whole instructions")
        XCTAssertNil(SeccompCache.decode(Array(good.prefix(10)), key: key), "truncated in the header")
        XCTAssertNil(SeccompCache.decode(Array("x".utf8) + good.dropFirst(), key: key), "bad magic")
        let noProgram = SeccompCache.encode(key, SeccompCache.Entry(program: [], skippedSyscalls: []))
        XCTAssertNil(SeccompCache.decode(noProgram, key: key), "empty program")
        let huge = SeccompCache.Entry(program: Array(repeating: 0, count: 8 * 4097), skippedSyscalls: [])
        XCTAssertNil(SeccompCache.decode(SeccompCache.encode(key, huge), key: key), "more than BPF_MAXINSNS")
    }

    func testFileNameIsStableHex() {
        let a = SeccompCache.fileName(Array("abc".utf8))
        XCTAssertEqual(a, SeccompCache.fileName(Array("abc".utf8)))
        XCTAssertEqual(a.count, 16)
        XCTAssertNotEqual(a, SeccompCache.fileName(Array("abd".utf8)))
        XCTAssertEqual(SeccompCache.fileName([]), "cbf29ce484222325", "FNV-1a's offset basis")
    }

    func testStoreThenLookupAndTheFilesMode() throws {
        let cache = SeccompCache(root: dir)
        let key = Array("key".utf8)
        XCTAssertNil(cache.lookup(key))
        cache.store(key, entry)
        XCTAssertEqual(cache.lookup(key), entry)
        let path = cache.dir + "/" + SeccompCache.fileName(key)
        XCTAssertEqual(FS.lstatOf(path).map { $0.st_mode & 0o777 }, 0o600)
        XCTAssertEqual(FS.lstatOf(cache.dir).map { $0.st_mode & 0o777 }, 0o700)
        // Group- or world-writable, or a symlink: not used.
        chmod(path, 0o620)
        XCTAssertNil(cache.lookup(key))
        chmod(path, 0o600)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".real")
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: path + ".real")
        XCTAssertNil(cache.lookup(key))
    }

    func testADirectoryOthersCanWriteIsNotUsed() throws {
        let cache = SeccompCache(root: dir)
        try FileManager.default.createDirectory(atPath: cache.dir, withIntermediateDirectories: false)
        chmod(cache.dir, 0o777)
        cache.store(Array("key".utf8), entry)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.dir), [])
    }

    func testTheDirectoryIsEmptiedWhenFull() throws {
        let cache = SeccompCache(root: dir)
        for i in 0..<SeccompCache.maxEntries { cache.store(Array("key\(i)".utf8), entry) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.dir).count, SeccompCache.maxEntries)
        cache.store(Array("one more".utf8), entry)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.dir).count, 1)
        XCTAssertEqual(cache.lookup(Array("one more".utf8)), entry)
    }

    /// The key covers the profile (any change is another entry) and this build.
    func testKeyNamesTheBuildAndTheProfile() throws {
        guard let key = SeccompCache.key(profile()) else {
            throw XCTSkip("this test binary has no build id")
        }
        let text = String(decoding: key, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("build=\(Executable.buildID ?? "")"), text)
        XCTAssertTrue(text.contains(" libseccomp=2."), text)
        XCTAssertTrue(text.contains(" kernel=\(Kernel.release)\n"), text)
        XCTAssertNotEqual(SeccompCache.key(profile(flags: ["SECCOMP_FILTER_FLAG_LOG"])), key)
    }

    /// What a cached filter loads with equals what the compiled one would: notify, flags, warnings.
    func testFilterFromTheCacheHasTheCompiledOnesSettings() throws {
        for p in [
            profile(), profile(flags: ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
            profile(flags: ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], action: "SCMP_ACT_NOTIFY"),
        ] {
            let compiled = try SeccompFilter.compile(p, field: "linux.seccomp")
            try compiled.precompile()
            let cached = SeccompFilter(
                cached: SeccompCache.Entry(program: compiled.program ?? [], skippedSyscalls: compiled.skippedSyscalls),
                profile: p)
            XCTAssertEqual(cached.loadFlags, compiled.loadFlags, "\(p.flags ?? [])")
            XCTAssertEqual(cached.notifies, compiled.notifies)
            XCTAssertEqual(cached.skippedSyscalls, ["no_such_syscall"])
            XCTAssertEqual(cached.program, compiled.program)
        }
        XCTAssertEqual(SeccompFilter.flagBits(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]), 1 << 5)
    }

    /// Through `build`: the first call compiles and stores, the second finds the same program.
    func testBuildStoresThenHits() throws {
        guard SeccompCache.key(profile()) != nil else { throw XCTSkip("this test binary has no build id") }
        let cache = SeccompCache(root: dir)
        let first = try SeccompFilter.build(profile(), cache: cache)
        XCTAssertNotNil(first.ctx, "compiled")
        let second = try SeccompFilter.build(profile(), cache: cache)
        XCTAssertNil(second.ctx, "from the cache")
        XCTAssertEqual(second.program, first.program)
        // A profile libseccomp refuses is still refused, and nothing is stored for it.
        XCTAssertThrowsError(try SeccompFilter.build(profile(action: "SCMP_ACT_NOPE"), cache: cache))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.dir).count, 1)
    }

    /// The build id parser on a hand-made note segment: another note first, then GNU's.
    func testBuildIDNoteParsing() {
        func note(_ name: String, _ type: UInt32, _ desc: [UInt8]) -> [UInt8] {
            func word(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(v).littleEndian) { Array($0) } }
            var n = Array(name.utf8) + [0]
            while n.count % 4 != 0 { n.append(0) }
            var d = desc
            while d.count % 4 != 0 { d.append(0) }
            return word(name.utf8.count + 1) + word(desc.count) + word(Int(type)) + n + d
        }
        let bytes = note("Go", 4, [1, 2, 3]) + note("GNU", 3, [0xde, 0xad, 0xbe, 0xef, 0x01])
        bytes.withUnsafeBytes { XCTAssertEqual(Executable.gnuBuildID($0), "deadbeef01") }
        note("GNU", 1, [1]).withUnsafeBytes { XCTAssertNil(Executable.gnuBuildID($0)) }
        Array(bytes.prefix(20)).withUnsafeBytes { XCTAssertNil(Executable.gnuBuildID($0)) }
    }
}
