import Foundation
import TestSupport
import XCTest

/// swiftlet-monitor driven exactly as podman drives conmon (sync pipe, start by the caller, exit dir),
/// with swiftlet, runc and crun as the runtime.
final class MonitorLifecycleTests: MonitorTestCase {
    func lifecycle(_ r: MonitorRuntime) throws {
        try requireRuntime(r)
        let marker = dir(for: "exit-command")
        let c = try launch(
            ["sh", "-c", "echo hello; echo oops >&2; printf partial; exit 3"], runtime: r,
            monitorArgs: [
                "--exit-command", "/bin/sh", "--exit-command-arg", "-c",
                "--exit-command-arg", "echo \"$0 $1\" > \(marker)",
                "--exit-command-arg", "cleanup", "--exit-command-arg", "done",
            ])
        XCTAssertEqual(c.sync.status, 0, "launch: \(c.sync)")
        let pid = c.syncJSON["data"] as? Int ?? -1
        XCTAssertGreaterThan(pid, 0, "sync pipe: \(c.syncLine)")
        XCTAssertEqual(
            String(pid),
            try String(contentsOfFile: c.dir + "/ctr.pid", encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines))
        // The launched process exited; the daemon it forked is the one in the conmon pidfile.
        let monitor = try XCTUnwrap(c.monitorPid)
        XCTAssertTrue(processAlive(monitor))
        XCTAssertEqual(
            try String(contentsOfFile: "/proc/\(monitor)/stat", encoding: .utf8).split(separator: " ")[5],
            Substring(String(monitor)), "the monitor leads its own session")
        for name in ["attach", "ctl", "winsz", "monitor.sock"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: c.bundle + "/" + name), name)
        }
        start(c)
        XCTAssertEqual(c.exitCode(), "3", "exit file: decimal, no newline")
        XCTAssertEqual(try String(contentsOfFile: c.persistDir + "/exit", encoding: .utf8), "3")
        XCTAssertTrue(monitorGone(c))
        let log = c.logText().split(separator: "\n").map(String.init)
        let pattern = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d (stdout|stderr) [FP] "#
        for line in log {
            XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), "k8s-file line: \(line)")
        }
        XCTAssertTrue(log.contains { $0.hasSuffix(" stdout F hello") }, c.logText())
        XCTAssertTrue(log.contains { $0.hasSuffix(" stderr F oops") }, c.logText())
        XCTAssertTrue(log.contains { $0.hasSuffix(" stdout P partial") }, c.logText())
        XCTAssertTrue(
            waitUntil(timeout: 10) { (try? String(contentsOfFile: marker, encoding: .utf8)) == "cleanup done\n" },
            "exit command ran with its arguments")
        XCTAssertEqual(runtime(r, root: c.runtimeRoot, ["delete", c.id]).status, 0)
    }

    func testLifecycleWithSwiftlet() throws { try lifecycle(.swiftlet) }
    func testLifecycleWithRunc() throws { try lifecycle(.runc) }
    func testLifecycleWithCrun() throws { try lifecycle(.crun) }

    private func dir(for name: String) -> String {
        let d = (try? makeTempDir(prefix: "swiftlet-monitor-out.")) ?? NSTemporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d + "/" + name
    }

    func testRuntimeCreateFailureIsReportedOnTheSyncPipe() throws {
        let c = try launch(["sh"]) { spec in spec["root"] = ["path": "/nonexistent-rootfs-\(UUID().uuidString)"] }
        XCTAssertEqual(c.syncJSON["data"] as? Int, -1, c.syncLine)
        let message = c.syncJSON["message"] as? String ?? ""
        XCTAssertTrue(message.contains("nonexistent-rootfs"), "the runtime's error names the path: \(message)")
        XCTAssertTrue(monitorGone(c), "the monitor exits after a failed create")
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: c.exitFile), "no exit file for a container that never existed")
        assertNothingLeft(c.id)
    }

    func testBadCommandLineIsAClearError() throws {
        let dir = try makeTempDir(prefix: "swiftlet-monitor-test.")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (r, line) = runMonitor(["--api-version", "1", "-c", "x", "-u", "x", "--bogus"], dir: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--bogus"), r.stderr)
        XCTAssertTrue(line.contains("\"data\":-1") && line.contains("--bogus"), line)
        let (r2, _) = runMonitor(["--api-version", "1", "-c", "x", "-u", "x"], dir: dir)
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("--runtime"), r2.stderr)
        let (r3, _) = runMonitor(["-c", "x", "-u", "x", "-r", Runtime.binary, "--log-size-max", "lots"], dir: dir)
        XCTAssertTrue(r3.stderr.contains("--log-size-max"), r3.stderr)
    }

    func testVersionLineIsWhatPodmanParses() {
        let r = runProgram(Runtime.monitor, ["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertNotNil(r.stdout.range(of: #"^conmon version \d+\.\d+\.\d+\n"#, options: .regularExpression), r.stdout)
        let h = runProgram(Runtime.monitor, ["--help"])
        XCTAssertTrue(h.stdout.contains("--exec-process-spec"), h.stdout)
    }

    func testSignalledContainerReports128PlusSignal() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        XCTAssertEqual(sl(["kill", c.id, "KILL"]).status, 0)
        XCTAssertEqual(c.exitCode(), "137")
        XCTAssertTrue(monitorGone(c))
    }

    func testOOMKillIsReportedWithAMarkerFile() throws {
        let c = try launch(["sh", "-c", "tail /dev/zero"]) { spec in
            var linux = spec[dict: "linux"]
            linux["resources"] = ["memory": ["limit": 16 << 20, "swap": 16 << 20]]
            spec["linux"] = linux
        }
        let control = try ControlClient(c.bundle + "/monitor.sock")
        _ = control.call("subscribe")
        start(c)
        XCTAssertEqual(c.exitCode(timeout: 60), "137")
        XCTAssertTrue(FileManager.default.fileExists(atPath: c.persistDir + "/oom"), "oom marker in the persist dir")
        XCTAssertTrue(FileManager.default.fileExists(atPath: c.bundle + "/oom"), "oom marker in the bundle")
        let exit = control.waitEvent(timeout: 10) { $0["event"] as? String == "exit" }
        XCTAssertEqual(exit?["oomKilled"] as? Bool, true, "\(String(describing: exit))")
    }

    func testMonitorKilledInventsNoExitCodeAndDeleteCleansUp() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let monitor = try XCTUnwrap(c.monitorPid)
        kill(monitor, SIGKILL)
        XCTAssertTrue(monitorGone(c))
        // The container outlives its monitor; its exit is then nobody's to report.
        XCTAssertEqual(sl(["state", c.id]).stdout.contains("\"running\""), true)
        XCTAssertEqual(sl(["kill", c.id, "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.sl(["state", c.id]).stdout.contains("\"stopped\"") })
        XCTAssertNil(c.exitCode(timeout: 1), "no exit file without a monitor")
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.persistDir + "/exit"))
        XCTAssertEqual(sl(["delete", "--force", c.id]).status, 0)
        XCTAssertTrue(sl(["list", "-q"]).stdout.split(separator: "\n").allSatisfy { $0 != Substring(c.id) })
        assertNothingLeft(c.id)
    }

    func testNormalExitHasNoOOMMarker() throws {
        let c = try launch(["true"])
        start(c)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.persistDir + "/oom"))
    }
}

/// Attach socket, terminals, ctl FIFO, log rotation and reopening.
final class MonitorStdioTests: MonitorTestCase {
    func testAttachSocketCarriesStdinAndStdout() throws {
        let c = try launch(["sh", "-c", "read line; echo got-$line; echo to-err >&2"], monitorArgs: ["-i"])
        let s = socket(AF_UNIX, SocketType.seqpacket, 0)
        defer { close(s) }
        XCTAssertEqual(connectUnix(s, c.bundle + "/attach"), 0, String(cString: strerror(errno)))
        start(c)
        _ = "hello\n".withCString { write(s, $0, 6) }
        var packets: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && packets.count < 2 {
            var p = pollfd(fd: s, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 1000) > 0 else { continue }
            var buf = [UInt8](repeating: 0, count: 8193)
            let n = recv(s, &buf, buf.count, 0)
            if n <= 0 { break }
            packets.append(Array(buf[0..<n]))
        }
        XCTAssertTrue(packets.contains([2] + Array("got-hello\n".utf8)), "stdout packet: \(packets)")
        XCTAssertTrue(packets.contains([3] + Array("to-err\n".utf8)), "stderr packet: \(packets)")
        XCTAssertEqual(c.exitCode(), "0")
    }

    func testAttachClientHangUpClosesStdin() throws {
        let c = try launch(["sh", "-c", "cat; echo stdin-closed"], monitorArgs: ["-i"])
        let s = socket(AF_UNIX, SocketType.seqpacket, 0)
        XCTAssertEqual(connectUnix(s, c.bundle + "/attach"), 0)
        start(c)
        _ = "abc\n".withCString { write(s, $0, 4) }
        shutdown(s, Int32(SHUT_WR))
        XCTAssertEqual(c.exitCode(), "0", "cat saw EOF")
        close(s)
        XCTAssertTrue(c.logText().contains("stdout F abc"), c.logText())
        XCTAssertTrue(c.logText().contains("stdout F stdin-closed"), c.logText())
    }

    func testTerminalAndResizeThroughCtl() throws {
        let c = try launch(["sh", "-c", "tty; sleep 1; stty size"], monitorArgs: ["-t"]) { spec in
            var p = spec[dict: "process"]
            p["terminal"] = true
            spec["process"] = p
        }
        XCTAssertGreaterThan(c.syncJSON["data"] as? Int ?? -1, 0, c.syncLine)
        start(c)
        let ctl = open(c.bundle + "/ctl", O_WRONLY)
        XCTAssertGreaterThanOrEqual(ctl, 0)
        _ = "1 33 111\n".withCString { write(ctl, $0, 9) }
        close(ctl)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertTrue(c.logText().contains("stdout F /dev/pts/0\r"), c.logText())
        XCTAssertTrue(c.logText().contains("stdout F 33 111\r"), "resize reached the pty: \(c.logText())")
    }

    func testTerminalWithoutRuntimePtyIsAnError() throws {
        // A runtime that "creates" (writes a pid file) but never sends a pty master to the console socket.
        let (dir, fake) = try fakeRuntime { _ in
            "while [ $# -gt 0 ]; do [ \"$1\" = --pid-file ] && echo $$ > \"$2\"; shift; done\nexit 0"
        }
        let (_, line) = runMonitor(
            [
                "--api-version", "1", "-c", "t1", "-u", "t1", "-r", fake, "-b", dir, "-p", dir + "/pid",
                "-P", dir + "/mon.pid", "-t",
            ], dir: dir)
        XCTAssertEqual(line, "{\"data\":-1,\"message\":\"Runtime did not set up terminal\"}")
        // And a real runtime that refuses --console-socket for a non-terminal config: its error is relayed.
        let c = try launch(["true"], monitorArgs: ["-t"])
        XCTAssertEqual(c.syncJSON["data"] as? Int, -1, c.syncLine)
        XCTAssertTrue((c.syncJSON["message"] as? String ?? "").contains("console socket"), c.syncLine)
        XCTAssertTrue(monitorGone(c))
    }

    /// A runtime that passes the monitor's checks but cannot be executed (its interpreter is missing):
    /// a start-up error on the sync pipe naming the runtime and the errno, not a bare exit status.
    func testRuntimeThatCannotBeExecutedIsReportedWithItsErrno() throws {
        let (dir, fake) = try fakeRuntime { _ in "exit 0" }
        try "#!/nonexistent/interpreter\n".write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        let (r, line) = runMonitor(
            [
                "--api-version", "1", "-c", "x1", "-u", "x1", "-r", fake, "-b", dir, "-p", dir + "/pid",
                "-P", dir + "/mon.pid", "--sync",
            ], dir: dir)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(line.hasPrefix("{\"data\":-1"), line)
        if !Runtime.monitorIsConmon {
            XCTAssertTrue(line.contains("exec \(fake)") && line.contains("No such file or directory"), line)
        }
    }

    func testReplaceListenPidNamesTheRuntimeProcess() throws {
        let (dir, fake) = try fakeRuntime { dir in
            "echo \"$$ $LISTEN_PID\" > \(dir)/seen\nsleep 0.2 & while [ $# -gt 0 ]; do [ \"$1\" = --pid-file ] && "
                + "echo $! > \"$2\"; shift; done"
        }
        for (flag, same) in [([String](), false), (["--replace-listen-pid"], true)] {
            let (_, line) = runMonitor(
                [
                    "--api-version", "1", "-c", "l1", "-u", "l1", "-r", fake, "-b", dir, "-p", dir + "/pid",
                    "-P", dir + "/mon.pid", "--sync",
                ] + flag, dir: dir, extraEnv: ["LISTEN_PID": "4242"])
            XCTAssertTrue(line.hasPrefix("{\"data\":") && !line.contains("-1"), line)
            let seen = try String(contentsOfFile: dir + "/seen", encoding: .utf8).split(separator: " ").map {
                $0.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            XCTAssertEqual(seen.count, 2)
            if same {
                XCTAssertEqual(seen[0], seen[1], "LISTEN_PID is the runtime's own pid")
            } else {
                XCTAssertEqual(seen[1], "4242")
            }
        }
    }

    func testLogSizeMaxStartsTheFileAgain() throws {
        let c = try launch(
            ["sh", "-c", "for i in $(seq 1 200); do echo line-$i; done"], monitorArgs: ["--log-size-max", "2000"])
        start(c)
        XCTAssertEqual(c.exitCode(), "0")
        let size = (try? FileManager.default.attributesOfItem(atPath: c.log)[.size] as? Int) ?? -1
        XCTAssertLessThanOrEqual(size, 2000)
        XCTAssertGreaterThan(size, 0)
        XCTAssertFalse(c.logText().contains("stdout F line-1\n"), "old records were dropped")
        XCTAssertTrue(c.logText().hasSuffix("stdout F line-200\n"), c.logText())
    }

    func testCtlReopenStartsANewLogFile() throws {
        let c = try launch(["sh", "-c", "echo before; sleep 2; echo after"])
        start(c)
        XCTAssertTrue(waitUntil(timeout: 10) { c.logText().contains("before") })
        try FileManager.default.moveItem(atPath: c.log, toPath: c.log + ".1")
        let ctl = open(c.bundle + "/ctl", O_WRONLY)
        _ = "2 0 0\n".withCString { write(ctl, $0, 6) }
        close(ctl)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertTrue(c.logText().contains("stdout F after"), "after reopen: \(c.logText())")
        XCTAssertFalse(c.logText().contains("before"))
        XCTAssertTrue(((try? String(contentsOfFile: c.log + ".1", encoding: .utf8)) ?? "").contains("before"))
    }

    func testFullLogDiskKeepsTheContainerRunning() throws {
        // A 64 KiB tmpfs for the log: the container writes far more and must neither block nor die.
        let mnt = try makeTempDir(prefix: "swiftlet-logfs.")
        XCTAssertEqual(runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]).status, 0)
        defer {
            _ = runProgram("/bin/umount", [mnt])
            try? FileManager.default.removeItem(atPath: mnt)
        }
        let c = try launch(
            [
                "sh", "-c",
                "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); "
                    + "done; echo finished >&2",
            ],
            monitorArgs: ["-l", "k8s-file:" + mnt + "/full.log"])
        let control = try ControlClient(c.bundle + "/monitor.sock")
        _ = control.call("subscribe")
        start(c)
        XCTAssertEqual(c.exitCode(timeout: 30), "0", "the container ran to the end")
        XCTAssertNotNil(
            control.waitEvent(timeout: 5) { $0["event"] as? String == "log-error" }, "the full disk was reported")
        XCTAssertTrue(c.logText().contains("stderr F finished"), "the other log kept every record")
    }
}

func connectUnix(_ fd: Int32, _ path: String) -> Int32 {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
        errno = ENAMETOOLONG
        return -1
    }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
}
