import CLinux
import CSeccomp
import Foundation
import Glibc
import TestSupport
import XCTest

/// Seccomp profiles enforced by the kernel, in init and in exec'd processes.
final class SeccompIntegrationTests: ContainerTestCase {
    /// mkdir fails with ENOSYS (38); chmod to 0777 fails with EPERM, other modes work.
    func profile(_ spec: inout [String: Any], noNewPrivileges: Bool = true) {
        var linux = spec[dict: "linux"]
        linux["seccomp"] = [
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                ["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38],
                [
                    "names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                    "args": [["index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"]],
                ],
                [
                    "names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                    "args": [["index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"]],
                ],
                ["names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"],
            ],
        ]
        spec["linux"] = linux
        var p = spec[dict: "process"]
        p["noNewPrivileges"] = noNewPrivileges
        spec["process"] = p
    }

    let script =
        "mkdir /dev/shm/d 2>&1; touch /dev/shm/f; chmod 777 /dev/shm/f 2>&1; chmod 755 /dev/shm/f && echo chmod-755-ok"

    /// Twice in one --root: the second run gets swiftlet's program from its cache (SeccompCacheTests),
    /// with the same effect and the same warning.
    func testFilterAppliesToInit() throws {
        for round in 1...2 {
            let r = try run(["sh", "-c", script]) { self.profile(&$0) }
            XCTAssertEqual(r.status, 0, "round \(round): \(r.stderr)")
            XCTAssertTrue(
                r.stderr.contains("warning: linux.seccomp: unknown syscalls skipped: no_such_syscall_anywhere"),
                "round \(round): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("Function not implemented"), "round \(round): \(r.stdout)")
            XCTAssertTrue(r.stdout.contains("Operation not permitted"), "round \(round): \(r.stdout)")
            XCTAssertTrue(r.stdout.contains("chmod-755-ok"), "round \(round): \(r.stdout)")
        }
    }

    func testFilterWithoutNoNewPrivsAndNonRootUser() throws {
        let r = try run(["sh", "-c", script + "; grep NoNewPrivs /proc/self/status; id -u"]) { spec in
            self.profile(&spec, noNewPrivileges: false)
            var p = spec[dict: "process"]
            p["user"] = ["uid": 1000, "gid": 1000]
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Function not implemented"), r.stdout)
        XCTAssertTrue(r.stdout.contains("NoNewPrivs:\t0"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("1000\n"), r.stdout)
    }

    func testExecGetsTheContainerFilter() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            self.profile(&spec)
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "sc"]).status, 0)
        for _ in 1...2 {
            let r = sl(["exec", "sc", "sh", "-c", "mkdir /dev/shm/x 2>&1; true"])
            XCTAssertTrue(r.stdout.contains("Function not implemented"), r.stdout + r.stderr)
        }
    }

    func testBadProfilesNameTheField() throws {
        let cases: [(String, [String: Any])] = [
            (
                "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_BOGUS\"",
                ["defaultAction": "SCMP_ACT_BOGUS"]
            ),
            (
                "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_ALMOST\"",
                [
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [
                        [
                            "names": ["read"], "action": "SCMP_ACT_ERRNO",
                            "args": [["index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"]],
                        ]
                    ],
                ]
            ),
            (
                "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_VAX\"",
                ["defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]]
            ),
            (
                "linux.seccomp.flags[0]: unknown seccomp flag",
                ["defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]]
            ),
            (
                "linux.seccomp.listenerPath: required when an action is SCMP_ACT_NOTIFY",
                ["defaultAction": "SCMP_ACT_ALLOW", "syscalls": [["names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"]]]
            ),
            (
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule",
                ["defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]]
            ),
        ]
        for (i, (want, seccomp)) in cases.enumerated() {
            let b = try bundle { spec in
                var linux = spec[dict: "linux"]
                linux["seccomp"] = seccomp
                spec["linux"] = linux
            }
            let r = sl(["create", "--bundle", b, "bad\(i)"])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains(want), "\(r.stderr) lacks \(want)")
            assertNothingLeft("bad\(i)", bundle: b)
        }
    }
}

extension SeccompIntegrationTests {
    /// SCMP_ACT_NOTIFY: the listener at listenerPath gets the notify fd with the process state
    /// (runc's format) and answers the container's mkdir with EACCES.
    /// Twice: the second container's program comes from swiftlet's cache.
    func testNotifyListenerReceivesFdAndAnswers() throws {
        for _ in 1...2 { try notifyRoundTrip(flags: []) }
    }

    /// WAIT_KILLABLE_RECV (libseccomp 2.5 cannot set it): loaded through seccomp(2) directly, also
    /// with the cached program (the flag bits from the profile: SeccompCacheUnitTests).
    func testNotifyWithWaitKillableRecv() throws {
        for _ in 1...2 { try notifyRoundTrip(flags: ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]) }
    }

    func notifyRoundTrip(flags: [String]) throws {
        let sockPath = root.path + "/listener.sock"
        unlink(sockPath)
        let listener = socket(AF_UNIX, SocketType.stream, 0)
        defer { close(listener) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in sockPath.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 1), 0)

        final class Seen: @unchecked Sendable {
            var json = ""
            var answered = false
        }
        let seen = Seen()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            let conn = accept(listener, nil, nil)
            var buf = [UInt8](repeating: 0, count: 16384)
            var fd: Int32 = -1
            let n = sl_recv_fd(conn, &fd, &buf, buf.count)
            close(conn)
            seen.json = String(decoding: buf.prefix(max(0, n)), as: UTF8.self)
            guard fd >= 0 else { return }
            defer { close(fd) }
            var req: UnsafeMutablePointer<seccomp_notif>?
            var resp: UnsafeMutablePointer<seccomp_notif_resp>?
            guard seccomp_notify_alloc(&req, &resp) == 0, let req, let resp else { return }
            defer { seccomp_notify_free(req, resp) }
            if seccomp_notify_receive(fd, req) == 0 {
                resp.pointee.id = req.pointee.id
                resp.pointee.error = -EACCES
                resp.pointee.val = 0
                resp.pointee.flags = 0
                seen.answered = seccomp_notify_respond(fd, resp) == 0
            }
        }
        let r = try run(["sh", "-c", "mkdir /dev/shm/notified 2>&1; echo done"]) { spec in
            var linux = spec[dict: "linux"]
            linux["seccomp"] = [
                "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sockPath, "listenerMetadata": "meta-42",
                "flags": flags, "syscalls": [["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"]],
            ]
            spec["linux"] = linux
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Permission denied"), r.stdout)
        XCTAssertTrue(seen.answered)
        let obj = try JSONSerialization.jsonObject(with: Data(seen.json.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["fds"] as? [String], ["seccompFd"])
        XCTAssertEqual(obj?["metadata"] as? String, "meta-42")
        XCTAssertGreaterThan(obj?["pid"] as? Int ?? 0, 0)
        XCTAssertNotNil((obj?["state"] as? [String: Any])?["id"])
    }
}
