import Foundation
import TestSupport
import XCTest

/// An OCI runtime the monitor drives in the tests.
enum MonitorRuntime: String {
    case swiftlet, runc, crun

    var path: String {
        switch self {
        case .swiftlet: return Runtime.binary
        case .runc: return "/usr/sbin/runc"
        case .crun: return "/usr/bin/crun"
        }
    }

    /// crun 1.x refuses this host's hybrid layout when cgroup2 holds a controller: it runs in a
    /// private mount namespace without /sys/fs/cgroup/unified (nothing outside changes).
    var needsPrivateCgroupView: Bool { self == .crun }
}

/// One container under swiftlet-monitor, launched exactly as podman launches conmon: a sync pipe in
/// _OCI_SYNCPIPE, `--api-version 1`, exit dir, persist dir, k8s-file log, full attach.
struct MonitoredContainer {
    let id: String
    let dir: String
    let runtime: MonitorRuntime
    let runtimeRoot: String
    var sync: RunResult
    var syncLine: String

    var bundle: String { dir + "/bundle" }
    var log: String { dir + "/ctr.log" }
    var exitFile: String { dir + "/exits/" + id }
    var persistDir: String { dir + "/persist" }

    var syncJSON: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(syncLine.utf8))) as? [String: Any] ?? [:]
    }

    var monitorPid: Int32? {
        (try? String(contentsOfFile: dir + "/mon.pid", encoding: .utf8)).flatMap { Int32($0) }
    }

    func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func exitCode(timeout: Double = 20) -> String? {
        guard waitUntil(timeout: timeout, { FileManager.default.fileExists(atPath: exitFile) }) else { return nil }
        return try? String(contentsOfFile: exitFile, encoding: .utf8)
    }
}

class MonitorTestCase: ContainerTestCase {
    var launched: [MonitoredContainer] = []
    /// Runs on the next launches' directory before the monitor starts (to plant things in it).
    var prepareDir: ((String) throws -> Void)?

    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(
            FileManager.default.isExecutableFile(atPath: Runtime.monitor),
            "swiftlet-monitor not built at \(Runtime.monitor) (Scripts/test.sh builds it)")
    }

    override func tearDown() {
        for c in launched {
            if let pid = c.monitorPid, processAlive(pid) { kill(pid, SIGKILL) }
            _ = runtime(c.runtime, root: c.runtimeRoot, ["delete", "--force", c.id])
            try? FileManager.default.removeItem(atPath: c.dir)
        }
        super.tearDown()
    }

    func requireRuntime(_ r: MonitorRuntime) throws {
        try XCTSkipUnless(
            FileManager.default.isExecutableFile(atPath: r.path),
            "\(r.rawValue) not installed (Scripts/install-deps.sh installs it)")
    }

    /// Runs an OCI runtime command (crun in its private cgroup view).
    @discardableResult
    func runtime(_ r: MonitorRuntime, root: String, _ args: [String], timeout: Double = 30) -> RunResult {
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        if r.needsPrivateCgroupView {
            return runProgram(
                "/usr/bin/unshare",
                [
                    "-m", "--propagation", "private", "/bin/sh", "-c",
                    "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"", "sh",
                    r.path, "--root", root,
                ] + args, timeout: timeout, environment: env)
        }
        return runProgram(r.path, ["--root", root] + args, timeout: timeout, environment: env)
    }

    /// Launches the monitor for a new container and returns once the sync pipe answered. `logs`: the
    /// `-l` values (`{dir}` is the container's directory), default `k8s-file:{dir}/ctr.log`.
    func launch(
        _ args: [String], runtime r: MonitorRuntime = .swiftlet, id: String = "m\(UInt32.random(in: 0...UInt32.max))",
        monitorArgs: [String] = [], apiVersion: Bool = true, logs: [String]? = nil, journalDir: String? = nil,
        _ edit: (inout [String: Any]) -> Void = { _ in }
    ) throws -> MonitoredContainer {
        let dir = try makeTempDir(prefix: "swiftlet-monitor-test.")
        for sub in ["bundle", "exits", "persist", "rt-root"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try prepareDir?(dir)
        var spec = defaultConfig()
        if r == .crun { spec["ociVersion"] = "1.0.2" }  // crun 1.8 refuses newer versions
        ContainerTestCase.args(args)(&spec)
        edit(&spec)
        try writeConfigThrowing(spec, to: dir + "/bundle")
        let rtRoot = r == .swiftlet ? root.path : dir + "/rt-root"
        var margs = apiVersion ? ["--api-version", "1"] : []
        margs +=
            [
                "-c", id, "-u", id + "-uuid", "-n", id, "-r", r.path, "-b", dir + "/bundle",
                "-p", dir + "/ctr.pid", "-P", dir + "/mon.pid", "--exit-dir", dir + "/exits",
                "--persist-dir", dir + "/persist",
            ]
            + (logs ?? ["k8s-file:{dir}/ctr.log"]).flatMap { ["-l", $0.replacingOccurrences(of: "{dir}", with: dir)] }
            + ["--full-attach", "--runtime-arg", "--root=" + rtRoot] + monitorArgs
        let (result, line) = runMonitor(
            margs, dir: dir, privateCgroupView: r.needsPrivateCgroupView, journalDir: journalDir)
        let c = MonitoredContainer(id: id, dir: dir, runtime: r, runtimeRoot: rtRoot, sync: result, syncLine: line)
        launched.append(c)
        return c
    }

    /// A stand-in runtime: `/bin/sh` running `body(dir)` in a temp dir (removed after the test).
    func fakeRuntime(_ body: (String) -> String) throws -> (dir: String, path: String) {
        let dir = try makeTempDir(prefix: "swiftlet-fake-runtime.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/fake-runtime"
        try ("#!/bin/sh\n" + body(dir) + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return (dir, path)
    }

    /// Runs swiftlet-monitor with a FIFO as fd 3 = _OCI_SYNCPIPE; returns the launch result and the
    /// first line on the sync pipe ("" if none within 30 s). `journalDir`: the directory whose `socket`
    /// is the journal's (swiftlet-monitor: SWIFTLET_JOURNAL_SOCKET; conmon, whose libsystemd has the
    /// path built in: bound over /run/systemd/journal in a private mount namespace).
    func runMonitor(
        _ args: [String], dir: String, privateCgroupView: Bool = false,
        extraEnv: [String: String] = [:], journalDir: String? = nil
    ) -> (RunResult, String) {
        let fifo = dir + "/sync"
        unlink(fifo)
        mkfifo(fifo, 0o600)
        let fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        defer { close(fd) }
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        env["_OCI_SYNCPIPE"] = "3"
        for (k, v) in extraEnv { env[k] = v }
        var prefix = privateCgroupView ? "umount /sys/fs/cgroup/unified 2>/dev/null; " : ""
        var privateMounts = privateCgroupView
        if let journalDir {
            if Runtime.monitorIsConmon {
                prefix +=
                    "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && mount --bind '\(journalDir)' "
                    + "/run/systemd/journal || exit 1; "
                privateMounts = true
            } else {
                env["SWIFTLET_JOURNAL_SOCKET"] = journalDir + "/socket"
            }
        }
        let shell = ["/bin/sh", "-c", prefix + "exec 3<>\"$0\"; exec \"$@\"", fifo, Runtime.monitor] + args
        let result =
            privateMounts
            ? runProgram("/usr/bin/unshare", ["-m", "--propagation", "private"] + shell, environment: env)
            : runProgram(shell[0], Array(shell.dropFirst()), environment: env)
        return (result, readLines(fd, count: 1, timeout: 30).first ?? "")
    }

    /// Up to `count` lines from a non-blocking fd, waiting at most `timeout` seconds in all.
    func readLines(_ fd: Int32, count: Int, timeout: Double) -> [String] {
        var data = [UInt8]()
        var lines: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && lines.count < count {
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &buf, buf.count)
            if n > 0 {
                data += buf[0..<n]
                while let nl = data.firstIndex(of: 10), lines.count < count {
                    lines.append(String(decoding: data[0..<nl], as: UTF8.self))
                    data.removeSubrange(0...nl)
                }
            } else {
                usleep(10_000)
            }
        }
        return lines
    }

    func start(_ c: MonitoredContainer) {
        let r = runtime(c.runtime, root: c.runtimeRoot, ["start", c.id])
        XCTAssertEqual(r.status, 0, "start: \(r)")
    }

    /// True once the monitor process is gone (exited and reaped, or a zombie of PID 1).
    func monitorGone(_ c: MonitoredContainer, timeout: Double = 10) -> Bool {
        guard let pid = c.monitorPid else { return false }
        return waitUntil(timeout: timeout) { !processAlive(pid) }
    }
}

/// A client of the monitor's control socket (newline-delimited JSON).
final class ControlClient {
    let fd: Int32
    private var pending = [UInt8]()

    init(_ path: String) throws {
        fd = socket(AF_UNIX, SocketType.stream | SocketType.cloexec, 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw NSError(domain: "path too long", code: 1)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw NSError(domain: "connect \(path): \(String(cString: strerror(errno)))", code: 2)
        }
    }

    deinit { close(fd) }

    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Sends a request and returns the reply with the same id (events in between are skipped).
    func call(
        _ method: String, _ params: [String: Any] = [:], id: Int = Int.random(in: 1...1_000_000), timeout: Double = 30
    ) -> [String: Any] {
        let req: [String: Any] = ["id": id, "method": method, "params": params]
        let data = (try? JSONSerialization.data(withJSONObject: req)) ?? Data()
        send(String(decoding: data, as: UTF8.self))
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let msg = next(timeout: deadline.timeIntervalSinceNow) else { break }
            if msg["id"] as? Int == id { return msg }
        }
        return [:]
    }

    /// The next message (reply or event), nil at timeout or EOF.
    func next(timeout: Double) -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let nl = pending.firstIndex(of: 10) {
                let line = Data(pending[0..<nl])
                pending.removeSubrange(0...nl)
                return (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] ?? [
                    "unparsed": String(decoding: line, as: UTF8.self)
                ]
            }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(left * 1000)) > 0 else { return nil }
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &buf, buf.count)
            if n <= 0 { return nil }
            pending += buf[0..<n]
        }
    }

    /// Waits for an event matching `match`.
    func waitEvent(timeout: Double, _ match: ([String: Any]) -> Bool) -> [String: Any]? {
        let deadline = Date().addingTimeInterval(timeout)
        while let msg = next(timeout: deadline.timeIntervalSinceNow) {
            if msg["event"] != nil && match(msg) { return msg }
        }
        return nil
    }
}

extension Runtime {
    /// SWIFTLET_MONITOR=/usr/bin/conmon runs the Monitor tests against conmon itself.
    static var monitorIsConmon: Bool { URL(fileURLWithPath: monitor).lastPathComponent.hasPrefix("conmon") }
}
