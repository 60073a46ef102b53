import CLinux
import Foundation
import TestSupport
import XCTest

/// Issue 13.7: the monitor's control socket takes only root and its own user, caps its connections,
/// closes idle ones and does not spin when accept runs out of fds.
final class ControlSocketLimitTests: MonitorTestCase {
    func running(_ monitorArgs: [String] = []) throws -> (MonitoredContainer, Int32) {
        let c = try launch(["sleep", "1000"], monitorArgs: monitorArgs)
        start(c)
        return (c, try XCTUnwrap(c.monitorPid))
    }

    func fdCount(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// utime + stime in clock ticks.
    func cpuTicks(_ pid: Int32) -> Int {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return -1 }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return (Int(f[11]) ?? 0) + (Int(f[12]) ?? 0)
    }

    /// Waits (at most 10 s) until the monitor used no CPU time for half a second: the work the test
    /// gave it is done. A busy loop never settles.
    func settle(_ pid: Int32) {
        var last = cpuTicks(pid)
        _ = waitUntil(timeout: 10) {
            usleep(500_000)
            let now = self.cpuTicks(pid)
            defer { last = now }
            return now == last
        }
    }

    func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        return f.count > 1 ? Int(f[1]) ?? -1 : -1
    }

    /// `n` connections to the socket (each connect gives up after 3 s); the connected fds.
    func connectMany(_ path: String, _ n: Int) -> [Int32] {
        var fds: [Int32] = []
        for _ in 0..<n {
            let fd = socket(AF_UNIX, SocketType.stream | SocketType.cloexec, 0)
            var tv = timeval(tv_sec: 3, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            if connectUnix(fd, path) == 0 { fds.append(fd) } else { close(fd) }
        }
        return fds
    }

    /// True once `fd` reads end-of-file (the monitor closed it) within `timeout` seconds.
    func closedByPeer(_ fd: Int32, timeout: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return false }
        var b: UInt8 = 0
        return recv(fd, &b, 1, Int32(MSG_DONTWAIT)) == 0
    }

    func stateWorks(_ c: MonitoredContainer) -> Bool {
        guard let api = try? ControlClient(c.bundle + "/monitor.sock") else { return false }
        return (api.call("state", timeout: 5)["result"] as? [String: Any])?["status"] as? String == "running"
    }

    /// Even with the socket file open to everyone, a client running as another user is refused.
    func testOtherUsersAreRefused() throws {
        let (c, _) = try running()
        for (name, mode) in [("monitor.sock", 0o600), ("attach", 0o700)] {
            var st = stat()
            XCTAssertEqual(lstat(c.bundle + "/" + name, &st), 0)
            XCTAssertEqual(Int(st.st_mode & 0o7777), mode, name)
        }
        XCTAssertEqual(chmod(c.bundle + "/monitor.sock", 0o666), 0)
        let client = """
            use IO::Socket::UNIX; $SIG{PIPE} = 'IGNORE';
            my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => 'monitor.sock') or die "connect: $!\\n";
            print $s "{\\"id\\":1,\\"method\\":\\"state\\"}\\n";
            $SIG{ALRM} = sub { print "TIMEOUT\\n"; exit 0 }; alarm 10;
            my $l = <$s>; print defined $l ? "REPLY $l" : "CLOSED\\n";
            """
        let r = runProgram(
            "/bin/sh",
            [
                "-c", "cd \"$0\" && exec setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/perl -e \"$1\"",
                c.bundle, client,
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "CLOSED\n", "uid 65534 got an answer: \(r.stdout) \(r.stderr)")
        XCTAssertTrue(stateWorks(c), "root is still served")
    }

    /// 300 connections at once, each sending an unfinished 60 KB request line: at most 32 stay open
    /// (the oldest idle ones make room), a fresh connection is served, the monitor's CPU time stays
    /// flat while they sit idle and its memory does not grow with them.
    func testConnectionFloodIsCappedAndTheMonitorKeepsServing() throws {
        let (c, pid) = try running()
        let fds0 = fdCount(pid)
        let rss0 = rssKiB(pid)
        let clients = connectMany(c.bundle + "/monitor.sock", 300)
        defer { for fd in clients { close(fd) } }
        XCTAssertGreaterThan(clients.count, 200, "most connects went through")
        let partial = [UInt8](repeating: UInt8(ascii: "x"), count: 60_000)
        for fd in clients { _ = send(fd, partial, partial.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        XCTAssertTrue(
            waitUntil(timeout: 10) { self.fdCount(pid) <= fds0 + 33 }, "fds: \(fdCount(pid)), before: \(fds0)")
        settle(pid)
        let t0 = cpuTicks(pid)
        sleep(2)
        let used = cpuTicks(pid) - t0
        XCTAssertLessThan(used, 30, "CPU ticks used in 2 s with idle connections")
        XCTAssertTrue(stateWorks(c), "a fresh connection is served")
        // Holding every connection's 60 KB would be 18 MB.
        XCTAssertLessThan(rssKiB(pid) - rss0, 8 * 1024, "RSS before \(rss0) KiB, now \(rssKiB(pid)) KiB")
    }

    /// At the fd limit accept fails with EMFILE and the pending clients stay queued: the monitor
    /// backs off instead of spinning, and serves again once fds are free.
    func testAcceptAtTheFdLimitBacksOff() throws {
        let (c, pid) = try running()
        let limit = fdCount(pid) + 4
        let r = runProgram("/usr/bin/prlimit", ["--pid", String(pid), "--nofile=\(limit):\(limit)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let clients = connectMany(c.bundle + "/monitor.sock", 60)
        XCTAssertTrue(waitUntil(timeout: 10) { self.fdCount(pid) >= limit }, "the monitor reached its fd limit")
        settle(pid)
        let t0 = cpuTicks(pid)
        sleep(2)
        let used = cpuTicks(pid) - t0
        XCTAssertLessThan(used, 30, "CPU ticks used in 2 s at the fd limit (a busy loop on accept uses ~100-200)")
        for fd in clients { close(fd) }
        XCTAssertTrue(waitUntil(timeout: 20) { self.stateWorks(c) }, "served again once the clients left")
    }

    func testIdleConnectionsAreClosedButSubscribersStay() throws {
        let (c, _) = try running(["--control-idle-timeout", "1"])
        let subscriber = try ControlClient(c.bundle + "/monitor.sock")
        XCTAssertNotNil(subscriber.call("subscribe")["result"])
        let idle = connectMany(c.bundle + "/monitor.sock", 1)
        defer { for fd in idle { close(fd) } }
        XCTAssertEqual(idle.count, 1)
        XCTAssertTrue(closedByPeer(idle[0], timeout: 15), "a connection that sends nothing is closed")
        sleep(2)
        XCTAssertFalse(closedByPeer(subscriber.fd, timeout: 0), "the subscriber stays connected")
        XCTAssertEqual((subscriber.call("state")["result"] as? [String: Any])?["status"] as? String, "running")
    }
}
