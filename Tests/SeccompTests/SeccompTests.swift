import XCTest

@testable import OCI
@testable import Seccomp

final class SeccompBuildTests: XCTestCase {
    func rule(_ names: [String], _ action: String, args: [OCI.Seccomp.Arg]? = nil) -> OCI.Seccomp.Syscall {
        OCI.Seccomp.Syscall(names: names, action: action, errnoRet: nil, args: args)
    }

    func profile(default d: String = "SCMP_ACT_ALLOW", _ rules: [OCI.Seccomp.Syscall] = []) -> OCI.Seccomp {
        OCI.Seccomp(
            defaultAction: d, defaultErrnoRet: nil, architectures: ["SCMP_ARCH_X86_64"], flags: nil,
            listenerPath: nil, listenerMetadata: nil, syscalls: rules)
    }

    func testBuildsWithArgsAndRepeatedArgumentIndex() throws {
        let args = [
            OCI.Seccomp.Arg(index: 0, value: 1, valueTwo: nil, op: "SCMP_CMP_EQ"),
            OCI.Seccomp.Arg(index: 0, value: 2, valueTwo: nil, op: "SCMP_CMP_EQ"),
        ]
        XCTAssertNoThrow(
            try SeccompFilter.build(
                profile([
                    rule(["personality"], "SCMP_ACT_ERRNO", args: args),
                    rule(["unknown_call_xyz", "read"], "SCMP_ACT_LOG"),
                ])))
    }

    func testActionValues() throws {
        XCTAssertEqual(try SeccompFilter.action("SCMP_ACT_ERRNO", errnoRet: nil, field: "f"), 0x0005_0001)
        XCTAssertEqual(try SeccompFilter.action("SCMP_ACT_ERRNO", errnoRet: 38, field: "f"), 0x0005_0026)
        XCTAssertEqual(try SeccompFilter.action("SCMP_ACT_ALLOW", errnoRet: nil, field: "f"), 0x7fff_0000)
        XCTAssertEqual(try SeccompFilter.action("SCMP_ACT_KILL_PROCESS", errnoRet: nil, field: "f"), 0x8000_0000)
    }

    func testErrorsNameTheField() {
        XCTAssertThrowsError(try SeccompFilter.build(profile([rule(["read"], "SCMP_ACT_MAYBE")]))) {
            XCTAssertEqual("\($0)", "linux.seccomp.syscalls[0].action: unknown seccomp action \"SCMP_ACT_MAYBE\"")
        }
        XCTAssertThrowsError(try SeccompFilter.build(profile(default: "nope"))) {
            XCTAssertTrue("\($0)".hasPrefix("linux.seccomp.defaultAction:"))
        }
        XCTAssertThrowsError(try SeccompFilter.arch("SCMP_ARCH_PDP11", field: "a[0]")) {
            XCTAssertEqual("\($0)", "a[0]: unknown architecture \"SCMP_ARCH_PDP11\"")
        }
    }
}
