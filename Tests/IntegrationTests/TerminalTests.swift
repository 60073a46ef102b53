import CLinux
import Foundation
import Glibc
import TestSupport
import XCTest

final class TerminalTests: ContainerTestCase {
    func terminal(_ spec: inout [String: Any]) {
        var p = spec[dict: "process"]
        p["terminal"] = true
        p["consoleSize"] = ["height": 40, "width": 120]
        spec["process"] = p
    }

    /// create --console-socket: the pty master arrives over the socket (SCM_RIGHTS) and carries the
    /// container's output; the container sees a terminal of the configured size.
    func testConsoleSocketReceivesPtyMaster() throws {
        let sockPath = root.path + "/console.sock"
        let listener = socket(AF_UNIX, SocketType.stream, 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in sockPath.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 1), 0)

        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "tty; stty size; echo done"])(&spec)
            self.terminal(&spec)
        }
        // create blocks until it has handed over the pty, so accept on another thread.
        final class Received: @unchecked Sendable { var fd: Int32 = -1 }
        let received = Received()
        let accepted = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let conn = accept(listener, nil, nil)
            var buf = [UInt8](repeating: 0, count: 64)
            var fd: Int32 = -1
            _ = sl_recv_fd(conn, &fd, &buf, buf.count)
            received.fd = fd
            close(conn)
            accepted.signal()
        }
        let created = sl(["create", "--console-socket", sockPath, "--bundle", b, "tty1"])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertEqual(accepted.wait(timeout: .now() + 10), .success)
        let master = received.fd
        XCTAssertGreaterThanOrEqual(master, 0)
        defer { close(master) }
        XCTAssertEqual(sl(["start", "tty1"]).status, 0)
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = read(master, &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
            if String(decoding: out, as: UTF8.self).contains("done") { break }
        }
        let text = String(decoding: out, as: UTF8.self)
        XCTAssertTrue(text.contains("/dev/pts/0"), text)
        XCTAssertTrue(text.contains("40 120"), text)
        XCTAssertEqual(sl(["delete", "-f", "tty1"]).status, 0)
    }

    /// run in the foreground with a terminal and no console socket: the runtime copies the pty.
    func testForegroundRunCopiesPty() throws {
        let r = try run(["sh", "-c", "tty; stat -c '%t:%T' /dev/console /dev/pts/0; exit 4"]) { self.terminal(&$0) }
        XCTAssertEqual(r.status, 4, r.stderr)
        XCTAssertTrue(r.stdout.contains("/dev/pts/0"), r.stdout)
        // /dev/console is the container's pty (same device numbers as /dev/pts/0).
        let devs = r.stdout.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            $0.contains(":")
        }
        XCTAssertEqual(devs.count, 2, r.stdout)
        XCTAssertEqual(devs.first, devs.last, r.stdout)
    }

    func testExecWithTty() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "tty2"]).status, 0)
        let r = sl(["exec", "-t", "tty2", "tty"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("/dev/pts/"), r.stdout)
    }
}
