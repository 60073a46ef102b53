import Foundation
import TestSupport
import XCTest

/// The terminal belongs to the process's user; the runtime's own relay of a pty is byte-exact.
extension TerminalTests {
    /// Runs the runtime with a pty as its stdin, stderr and controlling terminal (runc insists on
    /// one for a terminal it relays itself) and a pipe as its stdout, as in `runtime run x | cmp`.
    static let ptyRunner = """
        import fcntl, os, pty, select, sys, termios
        m, s = pty.openpty()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.setsid()
            fcntl.ioctl(s, termios.TIOCSCTTY, 0)
            os.dup2(s, 0); os.dup2(w, 1); os.dup2(s, 2)
            os.execv(sys.argv[1], sys.argv[1:])
        os.close(s); os.close(w)
        out, err = b"", b""
        while True:
            ready, _, _ = select.select([r] + ([m] if m >= 0 else []), [], [], 30)
            if not ready:
                break
            if m >= 0 and m in ready:
                try:
                    err += os.read(m, 4096)
                except OSError:
                    m = -1
            if r in ready:
                data = os.read(r, 4096)
                if not data:
                    break
                out += data
        _, status = os.waitpid(pid, 0)
        sys.stdout.buffer.write(out)
        sys.stderr.buffer.write(err)
        sys.exit(os.waitstatus_to_exitcode(status))
        """

    /// `sl` with a controlling terminal (stdin, stderr) and stdout to a pipe.
    func slOnTerminal(_ args: [String]) -> RunResult {
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        return runProgram(
            "/usr/bin/python3", ["-c", Self.ptyRunner, Runtime.binary, "--root", root.path] + args, environment: env)
    }

    /// The pty slave's owner as the process sees it: "uid:gid".
    static let ownerScript = "stat -c '%u:%g' \"$(readlink /proc/self/fd/0)\""

    /// process.user 1000:100 with a terminal: the pty is chowned to uid 1000; its group stays the
    /// devpts gid= (5, tty) as with runc.
    func testTerminalBelongsToTheProcessUser() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", Self.ownerScript])(&spec)
            self.terminal(&spec)
            var p = spec[dict: "process"]
            p["user"] = ["uid": 1000, "gid": 100]
            spec["process"] = p
        }
        let r = slOnTerminal(["run", "--bundle", b, "ttyown\(UInt32.random(in: 0...UInt32.max))"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1000:5", r.stdout + r.stderr)
    }

    func testExecTerminalBelongsToTheProcessUser() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let id = "ttyown\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        let r = slOnTerminal(["exec", "-t", "--user", "1000:100", id, "sh", "-c", Self.ownerScript])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "1000:5", r.stdout + r.stderr)
        XCTAssertEqual(sl(["delete", "-f", id]).status, 0)
    }

    /// When the runtime relays the pty itself (foreground run, exec -t without a console socket),
    /// ONLCR is off: "a\nb\n" arrives as it was written, not as "a\r\nb\r\n".
    func testRelayedTerminalOutputIsByteExact() throws {
        let rb = try bundle { spec in
            ContainerTestCase.args(["printf", "a\\nb\\n"])(&spec)
            self.terminal(&spec)
        }
        let r = slOnTerminal(["run", "--bundle", rb, "ttycr\(UInt32.random(in: 0...UInt32.max))"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Array(r.stdout.utf8), Array("a\nb\n".utf8), r.stdout.debugDescription)

        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let id = "ttycr\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        let e = slOnTerminal(["exec", "-t", id, "printf", "a\\nb\\n"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(Array(e.stdout.utf8), Array("a\nb\n".utf8), e.stdout.debugDescription)
        XCTAssertEqual(sl(["delete", "-f", id]).status, 0)
    }
}
