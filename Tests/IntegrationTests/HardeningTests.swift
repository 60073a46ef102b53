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

extension HardeningTests {
    /// CVE-2024-21626: cwd set to /proc/self/fd/N, where N is a descriptor the runtime holds while
    /// setting up (here: the detached tree of an id-mapped mount, a directory outside the rootfs).
    /// Every attempt either fails cleanly (nothing left behind) or leaves the process inside the container.
    func testCwdThroughLeakedFdIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leak-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for fd in 3...9 {
            let id = "cwd\(fd)"
            let r = try run(["sh", "-c", "pwd"], id: id) { spec in
                var p = spec[dict: "process"]
                p["cwd"] = "/proc/self/fd/\(fd)"
                spec["process"] = p
                var linux = spec[dict: "linux"]
                var ns = linux["namespaces"] as? [[String: Any]] ?? []
                ns.append(["type": "user"])
                linux["namespaces"] = ns
                linux["uidMappings"] = [["containerID": 0, "hostID": 100000, "size": 65536]]
                linux["gidMappings"] = [["containerID": 0, "hostID": 100000, "size": 65536]]
                spec["linux"] = linux
                var mounts = spec["mounts"] as? [[String: Any]] ?? []
                mounts.append(["destination": "/v", "type": "bind", "source": dir, "options": ["bind", "idmap"]])
                spec["mounts"] = mounts
            }
            if r.status == 0 {
                XCTAssertTrue(r.stdout.hasPrefix("/") && !r.stdout.contains("unreachable"), "fd \(fd): \(r.stdout)")
            } else {
                XCTAssertTrue(r.stderr.contains("unable to start container process"), "fd \(fd): \(r.stderr)")
                assertNothingLeft(id)
            }
        }
    }
}
