import Foundation
import Glibc
import LinuxSystem
import XCTest

/// `Proc.spawn`, the one way the runtime and the monitor start a program: an exec failure comes back
/// as an error naming the step, the child gets the listed descriptors and no others.
final class SpawnTests: XCTestCase {
    func testExecFailureIsReportedWithItsErrno() {
        XCTAssertThrowsError(try Proc.spawn(SpawnRequest(["/nonexistent/program"]))) { error in
            XCTAssertEqual((error as? SysError)?.op, "exec")
            XCTAssertEqual((error as? SysError)?.path, "/nonexistent/program")
            XCTAssertEqual((error as? SysError)?.errno, ENOENT)
        }
        var r = SpawnRequest(["/bin/true"])
        r.cwd = "/nonexistent/dir"
        XCTAssertThrowsError(try Proc.spawn(r)) { error in
            XCTAssertEqual((error as? SysError)?.op, "chdir")
        }
    }

    /// Reads what the child wrote to fd 1 (a pipe) and its exit status.
    func output(_ r: (Int32) -> SpawnRequest) throws -> (String, Int32) {
        var pipe = try OwnedPipe()
        let pid = try Proc.spawn(r(pipe.write.raw))
        pipe.write = OwnedFD(-1)
        let out = try FS.readAll(fd: pipe.read.raw, path: "pipe")
        return (String(decoding: out, as: UTF8.self), Proc.exitCode(try Proc.wait(pid).status))
    }

    func testOnlyTheListedDescriptorsReachTheChild() throws {
        // An fd without FD_CLOEXEC, as a leaked one would be.
        let null = open("/dev/null", O_RDONLY)
        let stray = fcntl(null, F_DUPFD, 50)  // above any number the child's ls may get
        close(null)
        defer { close(stray) }
        let extra = open("/dev/zero", O_RDONLY | O_CLOEXEC)
        defer { close(extra) }
        let script = "ls /proc/self/fd; readlink /proc/self/fd/3"
        let (text, status) = try output { SpawnRequest(["/bin/sh", "-c", script], fds: [-1, $0, -1, extra]) }
        XCTAssertEqual(status, 0)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertFalse(lines.contains(String(stray)), "fd \(stray) leaked: \(lines)")
        XCTAssertEqual(lines.last, "/dev/zero", "fd 3 is the listed one")
        XCTAssertEqual(Array(lines.prefix(4)), ["0", "1", "2", "3"])
    }

    func testInheritOtherFdsPassesNonCloexecDescriptors() throws {
        let null = open("/dev/null", O_RDONLY)
        let kept = fcntl(null, F_DUPFD, 50)
        close(null)
        defer { close(kept) }
        let (text, _) = try output { fd in
            var r = SpawnRequest(["/bin/sh", "-c", "ls /proc/self/fd"], fds: [-1, fd, -1])
            r.inheritOtherFds = true
            return r
        }
        XCTAssertTrue(text.split(separator: "\n").contains(Substring(String(kept))), text)
    }

    func testPidVariableNamesTheChild() throws {
        var pid: pid_t = 0
        var pipe = try OwnedPipe()
        var r = SpawnRequest(
            ["/bin/sh", "-c", "echo $LISTEN_PID $$"], env: ["LISTEN_PID=0", "PATH=/bin:/usr/bin"],
            fds: [-1, pipe.write.raw, -1])
        r.pidVariable = "LISTEN_PID"
        pid = try Proc.spawn(r)
        pipe.write = OwnedFD(-1)
        let out = String(decoding: try FS.readAll(fd: pipe.read.raw, path: "pipe"), as: UTF8.self)
        _ = try Proc.wait(pid)
        XCTAssertEqual(out, "\(pid) \(pid)\n")
    }

    /// collectOutput stops when the child exits (not at EOF, which a grandchild holding the pipe
    /// would delay), and at the deadline.
    func testCollectOutputEndsWithTheChildOrAtTheDeadline() throws {
        var pipe = try OwnedPipe()
        var r = SpawnRequest(["/bin/sh", "-c", "echo before; sleep 60 & echo after"], fds: [-1, pipe.write.raw, -1])
        r.ownProcessGroup = true
        let pid = try Proc.spawn(r)
        defer { kill(-pid, SIGKILL) }
        pipe.write = OwnedFD(-1)
        let (out, timedOut) = Proc.collectOutput(pid, from: pipe.read.raw, deadline: Clock.monotonicMs() + 30_000)
        XCTAssertFalse(timedOut, "waited for the grandchild's end of the pipe")
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "before\nafter\n")
        _ = try Proc.wait(pid)

        var slow = try OwnedPipe()
        let sleeper = try Proc.spawn(SpawnRequest(["/bin/sleep", "60"], fds: [-1, slow.write.raw, -1]))
        slow.write = OwnedFD(-1)
        let late = Proc.collectOutput(sleeper, from: slow.read.raw, deadline: Clock.monotonicMs() + 100)
        XCTAssertTrue(late.timedOut)
        kill(sleeper, SIGKILL)
        _ = try Proc.wait(sleeper)
    }

    func testCaptureReadsAllOfStdout() throws {
        let (status, output) = try Proc.capture(["sh", "-c", "seq 1 20000; exit 3"])
        XCTAssertEqual(status, 3)
        XCTAssertEqual(output.split(separator: "\n").count, 20000)
    }
}
