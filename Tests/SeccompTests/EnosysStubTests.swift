import Glibc
import XCTest

@testable import OCI
@testable import Seccomp

/// The ENOSYS stub, run through a tiny classic-BPF interpreter for the opcodes it uses.
final class EnosysStubTests: XCTestCase {
    enum Outcome: Equatable { case enosys, filter }

    /// Runs `stub` on (arch, nr): its own `ret` is ENOSYS; running off its end reaches the filter.
    func run(_ stub: [UInt8], arch: UInt32, nr: UInt32) -> Outcome {
        var pc = 0
        var a: UInt32 = 0
        let count = stub.count / 8
        while pc < count {
            let o = pc * 8
            let code = UInt16(stub[o]) | UInt16(stub[o + 1]) << 8
            let jt = Int(stub[o + 2])
            let jf = Int(stub[o + 3])
            let k = (0..<4).reduce(UInt32(0)) { $0 | UInt32(stub[o + 4 + $1]) << (8 * UInt32($1)) }
            pc += 1
            switch code {
            case 0x20: a = k == 0 ? nr : arch
            case 0x05: pc += Int(k)
            case 0x15: pc += a == k ? jt : jf
            case 0x25: pc += a > k ? jt : jf
            case 0x45: pc += a & k != 0 ? jt : jf
            case 0x06:
                XCTAssertEqual(k, 0x0005_0000 | UInt32(ENOSYS))
                return .enosys
            default:
                XCTFail("unexpected opcode \(code)")
                return .filter
            }
        }
        XCTAssertEqual(pc, count, "jumps land exactly at the filter")
        return .filter
    }

    func profile(_ defaultAction: String, errno: UInt32? = nil, archs: [String], names: [String]) -> OCI.Seccomp {
        OCI.Seccomp(
            defaultAction: defaultAction, defaultErrnoRet: errno, architectures: archs, flags: nil,
            listenerPath: nil, listenerMetadata: nil,
            syscalls: [OCI.Seccomp.Syscall(names: names, action: "SCMP_ACT_ALLOW", errnoRet: nil, args: nil)])
    }

    func stub(_ p: OCI.Seccomp) throws -> [UInt8]? {
        let tokens = try (p.architectures ?? []).map { name throws(SeccompFilter.BuildError) in
            try SeccompFilter.arch(name, field: "")
        }
        return EnosysStub.build(p, archTokens: tokens)
    }

    let x86_64: UInt32 = 0xC000_003E, i386: UInt32 = 0x4000_0003, s390x: UInt32 = 0x8000_0016,
        x32Bit: UInt32 = 0x4000_0000

    func testNoStubForPermissiveOrENOSYSDefaults() throws {
        for action in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            XCTAssertNil(try stub(profile(action, archs: ["SCMP_ARCH_X86_64"], names: ["read"])), action)
        }
        XCTAssertNil(
            try stub(profile("SCMP_ACT_ERRNO", errno: UInt32(ENOSYS), archs: ["SCMP_ARCH_X86_64"], names: ["read"])))
        XCTAssertNil(
            try stub(profile("SCMP_ACT_ERRNO", archs: [], names: ["read"])), "no architectures: none, as in runc")
        XCTAssertNotNil(try stub(profile("SCMP_ACT_KILL_PROCESS", archs: ["SCMP_ARCH_X86_64"], names: ["read"])))
    }

    /// x86_64 alone: above the newest named syscall is ENOSYS; x32 numbers and other arches fall through.
    func testX86_64Only() throws {
        let s = try XCTUnwrap(
            stub(profile("SCMP_ACT_ERRNO", archs: ["SCMP_ARCH_X86_64"], names: ["read", "futex_waitv", "openat"])))
        XCTAssertEqual(run(s, arch: x86_64, nr: 450), .enosys)
        XCTAssertEqual(run(s, arch: x86_64, nr: 1000), .enosys)
        XCTAssertEqual(run(s, arch: x86_64, nr: 449), .filter)
        XCTAssertEqual(run(s, arch: x86_64, nr: 0), .filter)
        XCTAssertEqual(
            run(s, arch: x86_64, nr: x32Bit | 500), .filter, "x32 is not listed: libseccomp's bad-arch action")
        XCTAssertEqual(run(s, arch: i386, nr: 1000), .filter, "i386 is not listed")
    }

    /// x86_64, x32 and i386 listed: each has its own maximum; the x32 bit picks between the first two.
    func testX86_64X32AndI386() throws {
        let s = try XCTUnwrap(
            stub(
                profile(
                    "SCMP_ACT_ERRNO", archs: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_X86"],
                    names: ["read", "clone3"])))
        XCTAssertEqual(run(s, arch: x86_64, nr: 435), .filter)
        XCTAssertEqual(run(s, arch: x86_64, nr: 436), .enosys)
        XCTAssertEqual(run(s, arch: x86_64, nr: x32Bit | 435), .filter)
        XCTAssertEqual(run(s, arch: x86_64, nr: x32Bit | 436), .enosys)
        XCTAssertEqual(run(s, arch: i386, nr: 435), .filter)
        XCTAssertEqual(run(s, arch: i386, nr: 436), .enosys)
    }

    func testS390xMultiplexerSyscallIsENOSYS() throws {
        let s = try XCTUnwrap(stub(profile("SCMP_ACT_ERRNO", archs: ["SCMP_ARCH_S390X"], names: ["read", "clone3"])))
        XCTAssertEqual(run(s, arch: s390x, nr: 0), .enosys)
        XCTAssertEqual(run(s, arch: s390x, nr: 3), .filter)
        XCTAssertEqual(run(s, arch: s390x, nr: 436), .enosys)
    }
}
