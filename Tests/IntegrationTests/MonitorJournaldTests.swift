import Foundation
import TestSupport
import XCTest

/// A SOCK_DGRAM socket standing in for journald's (`<dir>/socket`): the test reads the exact datagrams.
final class FakeJournal {
    let dir: String
    let fd: Int32

    init(dir: String) throws {
        self.dir = dir
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array((dir + "/socket").utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw NSError(domain: "bind \(dir)/socket: \(String(cString: strerror(errno)))", code: 1)
        }
        chmod(dir + "/socket", 0o666)
    }

    deinit { close(fd) }

    /// Datagrams until `done(all so far)` holds or `timeout` passes.
    func receive(timeout: Double = 30, until done: ([[UInt8]]) -> Bool) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(timeout)
        while !done(out) {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { break }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000)) > 0 else { break }
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { out.append(Array(buf[0..<n])) }
        }
        return out
    }

    /// The native protocol's fields, in order: `KEY=value\n` or `KEY\n<le64 length><value>\n`.
    static func fields(_ d: [UInt8]) -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        var i = 0
        while i < d.count {
            guard let end = d[i...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\n") }) else {
                break
            }
            let key = String(decoding: d[i..<end], as: UTF8.self)
            if d[end] == UInt8(ascii: "=") {
                let nl = d[(end + 1)...].firstIndex(of: UInt8(ascii: "\n")) ?? d.count
                out.append((key, Array(d[(end + 1)..<nl])))
                i = nl + 1
            } else {
                guard end + 9 <= d.count else { break }
                var len = 0
                for k in 0..<8 { len |= Int(d[end + 1 + k]) << (8 * k) }
                let start = end + 9
                guard start + len < d.count, d[start + len] == UInt8(ascii: "\n") else { break }
                out.append((key, Array(d[start..<(start + len)])))
                i = start + len + 1
            }
        }
        return out
    }

    static func message(_ d: [UInt8]) -> String {
        String(decoding: fields(d).first { $0.0 == "MESSAGE" }?.1 ?? [], as: UTF8.self)
    }
}

/// The journald log driver and the sd-notify relay, as conmon 2.1.6 does them; every test here also
/// passes with SWIFTLET_MONITOR=/usr/bin/conmon.
final class MonitorJournaldTests: MonitorTestCase {
    /// journald needs an id over 12 characters (conmon refuses shorter ones).
    func newID() -> String { "j" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

    func journal() throws -> FakeJournal {
        let d = try makeTempDir(prefix: "swiftlet-journal.")
        chmod(d, 0o755)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return try FakeJournal(dir: d)
    }

    func field(_ key: String, _ value: String) -> [UInt8] { Array("\(key)=\(value)\n".utf8) }

    func binaryField(_ key: String, _ value: String) -> [UInt8] {
        let v = Array(value.utf8)
        var out = Array("\(key)\n".utf8)
        for k in 0..<8 { out.append(UInt8((v.count >> (8 * k)) & 0xff)) }
        return out + v + [UInt8(ascii: "\n")]
    }

    /// `got` is `expected`, except that conmon's libsystemd appends its source location
    /// (CODE_FILE, CODE_LINE, CODE_FUNC), which swiftlet-monitor does not send.
    func assertEntry(_ got: [UInt8], _ expected: [UInt8], line: UInt = #line) {
        let rest = got.starts(with: expected) ? Array(got[expected.count...]) : got
        XCTAssertTrue(
            got.starts(with: expected)
                && FakeJournal.fields(rest).allSatisfy { ["CODE_FILE", "CODE_LINE", "CODE_FUNC"].contains($0.0) },
            "got:\n\(String(decoding: got, as: UTF8.self))\nexpected:\n\(String(decoding: expected, as: UTF8.self))",
            line: line)
    }

    func runToExit(_ c: MonitoredContainer, code: String = "0") {
        XCTAssertEqual(c.sync.status, 0, "launch: \(c.sync)")
        XCTAssertGreaterThan(c.syncJSON["data"] as? Int ?? -1, 0, "sync pipe: \(c.syncLine)")
        start(c)
        XCTAssertEqual(c.exitCode(), code)
        XCTAssertTrue(monitorGone(c))
    }

    /// Exact datagrams: a whole line has a newline, so MESSAGE takes the binary-safe form;
    /// PRIORITY 6 for stdout, 3 for stderr; SYSLOG_IDENTIFIER is the name.
    func testStdoutAndStderrLinesCarryConmonsFields() throws {
        let j = try journal()
        let id = newID()
        let c = try launch(
            ["sh", "-c", "echo hello; sleep 0.2; echo oops >&2"], id: id, logs: ["journald:"], journalDir: j.dir)
        runToExit(c)
        let got = j.receive { $0.count >= 2 }
        XCTAssertEqual(got.count, 2, got.map(FakeJournal.message).description)
        let common = field("CONTAINER_ID_FULL", id)
        let tail =
            field("CONTAINER_ID", String(id.prefix(12))) + field("CONTAINER_NAME", id) + field("SYSLOG_IDENTIFIER", id)
        let out = got.first { FakeJournal.message($0) == "hello\n" } ?? []
        let err = got.first { FakeJournal.message($0) == "oops\n" } ?? []
        assertEntry(out, binaryField("MESSAGE", "hello\n") + common + field("PRIORITY", "6") + tail)
        assertEntry(err, binaryField("MESSAGE", "oops\n") + common + field("PRIORITY", "3") + tail)
    }

    /// A line written in pieces is one entry; output without a final newline is sent at exit as a
    /// partial entry (plain KEY=value form). --log-tag names the entries.
    func testPiecesJoinAndAPartialLineIsMarked() throws {
        let j = try journal()
        let id = newID()
        let c = try launch(
            ["sh", "-c", "printf abc; sleep 0.3; echo def; printf tail"], id: id,
            monitorArgs: ["--log-tag", "web"], logs: ["journald:"], journalDir: j.dir)
        runToExit(c)
        let got = j.receive { $0.count >= 2 }
        XCTAssertEqual(got.map(FakeJournal.message), ["abcdef\n", "tail"])
        guard got.count == 2 else { return }
        let ids =
            field("CONTAINER_ID_FULL", id) + field("PRIORITY", "6") + field("CONTAINER_ID", String(id.prefix(12)))
            + field("CONTAINER_TAG", "web") + field("CONTAINER_NAME", id) + field("SYSLOG_IDENTIFIER", "web")
        assertEntry(got[0], binaryField("MESSAGE", "abcdef\n") + ids)
        assertEntry(got[1], field("MESSAGE", "tail") + ids + field("CONTAINER_PARTIAL_MESSAGE", "true"))
    }

    /// A line longer than the 8 KiB buffer: partial entries, then the end of the line; nothing lost.
    func testLineLongerThanTheBufferIsSplitIntoPartialEntries() throws {
        let j = try journal()
        let c = try launch(
            ["sh", "-c", "head -c 30000 /dev/zero | tr '\\0' x; echo"], id: newID(), logs: ["journald:"],
            journalDir: j.dir)
        runToExit(c)
        let got = j.receive { $0.map(FakeJournal.message).joined().hasSuffix("\n") }
        let messages = got.map(FakeJournal.message)
        XCTAssertEqual(messages.joined(), String(repeating: "x", count: 30000) + "\n")
        XCTAssertGreaterThan(got.count, 1)
        for (i, d) in got.enumerated() {
            let partial = FakeJournal.fields(d).contains {
                $0.0 == "CONTAINER_PARTIAL_MESSAGE" && $0.1 == Array("true".utf8)
            }
            XCTAssertEqual(partial, i < got.count - 1, "entry \(i) of \(got.count)")
            XCTAssertLessThanOrEqual(messages[i].utf8.count, 16384, "an entry holds at most two 8 KiB reads")
        }
    }

    /// podman's `--log-path k8s-file:X --log-path journald:` with a --log-tag: both get every line.
    func testK8sFileAndJournaldTogether() throws {
        let j = try journal()
        let c = try launch(
            ["sh", "-c", "echo one; echo two >&2"], id: newID(), monitorArgs: ["--log-tag", "t"],
            logs: ["k8s-file:{dir}/ctr.log", "journald:"], journalDir: j.dir)
        runToExit(c)
        let got = j.receive { $0.count >= 2 }.map(FakeJournal.message)
        XCTAssertEqual(Set(got), ["one\n", "two\n"])
        let log = c.logText()
        XCTAssertTrue(log.contains(" stdout F one\n") && log.contains(" stderr F two\n"), log)
    }

    /// No journal socket: conmon's libsystemd drops the entries silently; the container runs and
    /// exits normally and the k8s-file log still gets its lines.
    func testMissingJournalSocketDoesNotStopTheContainer() throws {
        let d = try makeTempDir(prefix: "swiftlet-journal.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        let c = try launch(
            ["sh", "-c", "echo still-here; exit 4"], id: newID(),
            logs: ["k8s-file:{dir}/ctr.log", "journald:"], journalDir: d)
        // swiftlet-monitor (not conmon) reports the first dropped entry on its control socket.
        let client = Runtime.monitorIsConmon ? nil : try ControlClient(c.bundle + "/monitor.sock")
        _ = client?.call("subscribe")
        runToExit(c, code: "4")
        XCTAssertTrue(c.logText().contains(" stdout F still-here\n"), c.logText())
        if let client {
            XCTAssertNotNil(
                client.waitEvent(timeout: 10) {
                    $0["event"] as? String == "log-error" && $0["path"] as? String == d + "/socket"
                })
        }
    }

    func testShortContainerIDIsRefusedForJournald() throws {
        let c = try launch(["true"], id: "short12chars", logs: ["journald:"])
        let said = c.sync.stderr + c.sync.stdout + c.syncLine
        XCTAssertTrue(said.contains("Container ID must be longer than 12 characters"), said)
        XCTAssertNotEqual(c.sync.status, 0)
    }
}

/// `--sdnotify-socket HOST` (podman run --sdnotify=container): the monitor binds
/// `<bundle>/notify/notify.sock`, which podman mounts into the container (at /run/notify; here /dev/notify,
/// as the shared test rootfs has no /run) and names in NOTIFY_SOCKET; READY=1 and WATCHDOG=1 reach HOST.
final class MonitorSdNotifyTests: MonitorTestCase {
    /// A static sd_notify client: sends each argument as one datagram to $NOTIFY_SOCKET.
    static let helperSource = """
        #include <stdlib.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <sys/un.h>
        int main(int argc, char **argv) {
            struct sockaddr_un a = { .sun_family = AF_UNIX };
            strncpy(a.sun_path, getenv("NOTIFY_SOCKET"), sizeof a.sun_path - 1);
            int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
            for (int i = 1; i < argc; i++)
                if (sendto(fd, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&a, sizeof a) < 0) return 1;
            return 0;
        }
        """

    func testReadyAndWatchdogAreRelayedToTheHostSocket() throws {
        let host = try FakeJournal(dir: try makeTempDir(prefix: "swiftlet-notify-host."))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: host.dir) }
        var notifyDir = ""
        prepareDir = { dir in
            notifyDir = dir + "/bundle/notify"
            try FileManager.default.createDirectory(atPath: notifyDir, withIntermediateDirectories: true)
            try Self.helperSource.write(toFile: dir + "/notify.c", atomically: true, encoding: .utf8)
            let cc = runProgram("/usr/bin/gcc", ["-static", "-O", "-o", notifyDir + "/notify", dir + "/notify.c"])
            XCTAssertEqual(cc.status, 0, "gcc: \(cc)")
        }
        let script =
            "/dev/notify/notify STATUS=starting 'MAINPID=1\nREADY=1\nSTATUS=up' WATCHDOG=1 EXTEND_TIMEOUT_USEC=5 || "
            + "exit 9; "
            + "while [ ! -e /dev/notify/done ]; do sleep 0.1; done"
        let c = try launch(["sh", "-c", script], monitorArgs: ["--sdnotify-socket", host.dir + "/socket"]) { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/dev/notify", "type": "bind", "source": notifyDir, "options": ["bind"]])
            spec["mounts"] = mounts
            var process = spec["process"] as? [String: Any] ?? [:]
            process["env"] = (process["env"] as? [String] ?? []) + ["NOTIFY_SOCKET=/dev/notify/notify.sock"]
            spec["process"] = process
        }
        XCTAssertEqual(c.sync.status, 0, "launch: \(c.sync)")
        XCTAssertGreaterThan(c.syncJSON["data"] as? Int ?? -1, 0, "sync pipe: \(c.syncLine)")
        var st = stat()
        XCTAssertEqual(lstat(notifyDir + "/notify.sock", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(st.st_mode & 0o777, 0o777, "any container user may notify")
        start(c)
        let got = host.receive { $0.count >= 2 }.map { String(decoding: $0, as: UTF8.self) }
        XCTAssertEqual(got, ["READY=1", "WATCHDOG=1"], "only READY=1 and WATCHDOG=1 are passed on, as conmon does")
        FileManager.default.createFile(atPath: notifyDir + "/done", contents: nil)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertTrue(monitorGone(c))
        XCTAssertTrue(host.receive(timeout: 0.5) { !$0.isEmpty }.isEmpty, "nothing else was relayed")
    }

    /// conmon needs the `notify` directory (podman makes it): without it the monitor fails before the
    /// runtime runs; no container, no pid on the sync pipe.
    func testMissingNotifyDirectoryFailsTheLaunch() throws {
        let c = try launch(["true"], monitorArgs: ["--sdnotify-socket", "/nonexistent-\(UUID().uuidString)"])
        XCTAssertLessThanOrEqual(c.syncJSON["data"] as? Int ?? -1, 0, c.syncLine)
        if !Runtime.monitorIsConmon {
            XCTAssertTrue((c.syncJSON["message"] as? String ?? "").contains(c.bundle + "/notify"), c.syncLine)
        }
        XCTAssertNotEqual(
            runtime(c.runtime, root: c.runtimeRoot, ["state", c.id]).status, 0, "no container was created")
    }
}
