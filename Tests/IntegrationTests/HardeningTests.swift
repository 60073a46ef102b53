import Foundation
import XCTest
import TestSupport

/// Attack tests: each would succeed against a naive runtime.
final class HardeningTests: ContainerTestCase {
    /// CVE-2019-5736: while the container is `created`, its init is still the host's swiftlet binary.
    /// A process in the container must not be able to read or open it through /proc/1/exe.
    func testRuntimeBinaryUnreachableThroughProcExe() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["create", "--bundle", b, "cve5736"]).status, 0)
        let r = sl(["exec", "cve5736", "sh", "-c", "head -c 4 /proc/1/exe > /dev/null 2>&1 && echo READ-HOST-BINARY; readlink /proc/1/exe || echo no-exe-link"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.contains("READ-HOST-BINARY"), r.stdout)
        XCTAssertEqual(r.stdout, "no-exe-link\n")
        XCTAssertEqual(sl(["delete", "-f", "cve5736"]).status, 0)
    }

    /// The user process itself is dumpable again after execve (so ps/ptrace/coredumps behave).
    func testUserProcessIsDumpable() throws {
        let r = try run(["sh", "-c", "readlink /proc/1/exe"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "/bin/busybox\n")
    }
}
