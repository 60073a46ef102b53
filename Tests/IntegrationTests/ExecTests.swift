import Foundation
import TestSupport
import XCTest

final class ExecTests: ContainerTestCase {
    /// Random: the cgroup /swiftlet/<id> is shared by every --root on the machine (a fixed id let two
    /// checkouts' runs meet in one cgroup, and one's delete kill the other's container).
    let ex = "ex\(UInt32.random(in: 0...UInt32.max))"

    override func setUpWithError() throws {
        try super.setUpWithError()
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, ex]).status, 0)
    }

    func testExecArgsEnvCwdUserAndExitCode() throws {
        let r = sl([
            "exec", "--env", "A=1", "--env", "B=2", "--cwd", "/tmp", "--user", "1000:1000", ex,
            "sh", "-c", "echo $A$B; pwd; id -u; id -g; echo $$; exit 5",
        ])
        XCTAssertEqual(r.status, 5, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, r.stdout)
        XCTAssertEqual(Array(lines.prefix(4)), ["12", "/tmp", "1000", "1000"])
        XCTAssertNotEqual(lines.last, "1", "exec'd process is not the container's init")
    }

    func testExecSeesContainerNamespacesAndRoot() throws {
        let r = sl([
            "exec", ex, "sh", "-c",
            "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; test -e /bin/busybox && echo rootfs",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "swiftlet-test\nsleep 100 \nrootfs\n")
    }

    func testExecProcessJSONDetachAndPidFile() throws {
        let dir = root.path
        let process: [String: Any] = [
            "args": ["sh", "-c", "echo detached > /dev/shm/marker; sleep 100"], "cwd": "/",
            "user": ["uid": 0, "gid": 0], "env": ["PATH=/bin"],
        ]
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: dir + "/p.json"))
        let r = sl(["exec", "-d", "--pid-file", dir + "/exec.pid", "-p", dir + "/p.json", ex])
        XCTAssertEqual(r.status, 0, r.stderr)
        let pid = Int32(try String(contentsOfFile: dir + "/exec.pid", encoding: .utf8)) ?? 0
        XCTAssertTrue(processAlive(pid))
        XCTAssertTrue(waitUntil(timeout: 5) { self.sl(["exec", ex, "cat", "/dev/shm/marker"]).stdout == "detached\n" })
    }

    func testExecPreserveFds() throws {
        try "kept\n".write(toFile: root.path + "/fd3", atomically: true, encoding: .utf8)
        let r = runProgram(
            "/bin/sh",
            [
                "-c",
                "exec 3<\(root.path)/fd3 4<\(root.path)/fd3; \(Runtime.binary) --root \(root.path) exec "
                    + "--preserve-fds 1 \(ex) sh -c 'cat <&3; test -e /proc/self/fd/4 || echo no-fd4'",
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "kept\nno-fd4\n")
    }

    func testExecExitStatusOfSignalledProcess() {
        // Not pid 1 of the namespace, so SIGKILL to itself works: status 128+9.
        XCTAssertEqual(sl(["exec", ex, "sh", "-c", "kill -9 $$"]).status, 137)
    }

    func testExecFailures() throws {
        let missing = sl(["exec", ex, "no-such-binary"])
        XCTAssertEqual(missing.status, 255)
        XCTAssertTrue(missing.stderr.contains("executable file not found in $PATH"), missing.stderr)
        // An unknown capability is a warning (runtime-spec 1.2, runc 1.3), not a failure.
        let badCap = sl(["exec", "--cap", "CAP_BOGUS", ex, "true"])
        XCTAssertEqual(badCap.status, 0, badCap.stderr)
        // Swiftlet's own wording; runc words its errors differently ("exec failed: ..." in a logrus
        // line, "exec args" in 1.3).
        XCTAssertTrue(badCap.stderr.contains("CAP_BOGUS"), badCap.stderr)
        let noCommand = sl(["exec", ex])
        XCTAssertEqual(noCommand.status, 255, "runc: every error of exec itself exits 255")
        XCTAssertTrue(noCommand.stderr.contains("args cannot be empty"), noCommand.stderr)
        // runc 1.1 and 1.3 word every exec error `exec failed: ...`, the process's own failure
        // `exec failed: unable to start container process: ...`.
        XCTAssertTrue(
            missing.stderr.contains("exec failed: unable to start container process: exec: \\\"no-such-binary\\\"")
                || missing.stderr.contains("exec failed: unable to start container process: exec: \"no-such-binary\""),
            missing.stderr)
        let nope = sl(["exec", "nope", "true"])
        XCTAssertEqual(nope.status, 255)
        XCTAssertTrue(nope.stderr.contains("exec failed: container does not exist"), nope.stderr)
        if isSwiftlet {
            XCTAssertEqual(nope.stderr.trimmingCharacters(in: .newlines), "exec failed: container does not exist")
        }
        XCTAssertEqual(sl(["kill", ex, "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.sl(["state", ex]).stdout.contains("stopped") })
        let stopped = sl(["exec", ex, "true"])
        XCTAssertTrue(stopped.stderr.contains("cannot exec in a stopped container"), stopped.stderr)
    }
}

extension ExecTests {
    /// exec joins every namespace of init (through a pidfd of init, user namespace first): the exec'd
    /// process's namespaces are init's, in a container with a user namespace and a cgroup namespace.
    func testExecJoinsEveryNamespaceOfInit() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            ContainerTestCase.userNamespace()(&spec)
            var linux = spec[dict: "linux"]
            var ns = linux["namespaces"] as? [[String: Any]] ?? []
            if !ns.contains(where: { ($0["type"] as? String) == "cgroup" }) { ns.append(["type": "cgroup"]) }
            linux["namespaces"] = ns
            spec["linux"] = linux
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "exns"]).status, 0)
        defer { sl(["delete", "-f", "exns"]) }
        let r = sl([
            "exec", "exns", "sh", "-c",
            "for n in cgroup ipc mnt net pid user uts; do echo $n $(readlink /proc/self/ns/$n) $(readlink "
                + "/proc/1/ns/$n); done",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(lines.count, 7, r.stdout)
        for l in lines {
            XCTAssertEqual(l.count, 3, r.stdout)
            if l.count == 3 { XCTAssertEqual(l[1], l[2], "\(l[0]) namespace differs from init's: \(r.stdout)") }
        }
        let host = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user")
        XCTAssertFalse(
            lines.contains { $0.first == "user" && $0.count == 3 && $0[1] == host },
            "exec stayed in the host's user namespace")
    }
}
