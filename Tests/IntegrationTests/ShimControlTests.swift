// The monitor's control API for containers started through containerd-shim-swiftlet-v2: each
// container a shim creates gets `<bundle>/monitor.sock` (Spec/monitor.md "Control API", Spec/shim.md)
// with the monitor's methods, limits, probes and events, served on the shim's event loop. A private
// containerd 1.6 (PrivateContainerd, its dir /tmp/swiftlet-shimctl.XXXXXX, namespace shimctl-PID)
// runs the containers with `ctr run --runtime io.containerd.swiftlet.v2`; the shim is the monitor
// binary under the shim's name with `swiftlet` beside it linked to SWIFTLET_BINARY (so the runc anchors
// can stand in as the runtime).

import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

final class ShimControlTests: XCTestCase {
    nonisolated(unsafe) static var containerd: PrivateContainerd?
    nonisolated(unsafe) static var setupError: String?
    static let runtime = "io.containerd.swiftlet.v2"

    override class func tearDown() {
        if let c = containerd {
            for id in ctr(c, ["task", "ls", "-q"]).stdout.split(separator: "\n") {
                _ = ctr(c, ["task", "kill", "-s", "KILL", String(id)])
                _ = ctr(c, ["task", "rm", "-f", String(id)])
            }
            for id in ctr(c, ["container", "ls", "-q"]).stdout.split(separator: "\n") {
                _ = ctr(c, ["container", "rm", String(id)])
            }
            c.stopDaemon()
            for pid in processesWithCommandLine(containing: c.socket) { kill(pid, SIGKILL) }
            c.removeDir()
            // The namespace's parent cgroups (ctr's default cgroupsPath is /NAMESPACE/ID) and the
            // shim's default runtime root for the namespace.
            for h in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] {
                rmdir("/sys/fs/cgroup/\(h)/\(c.namespace)")
            }
            rmdir("/sys/fs/cgroup/\(c.namespace)")
            rmdir(PrivateContainerd.shimRuntimeRoot + "/" + c.namespace)
        }
        containerd = nil
        super.tearDown()
    }

    /// One containerd for the class, started by the first test.
    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "the shim runs real containers as root")
        try XCTSkipUnless(Runtime.binaryAvailable && Runtime.rootfsAvailable, "no runtime binary or test rootfs")
        guard PrivateContainerd.shimBinary != nil else {
            throw XCTSkip(
                "no containerd-shim-swiftlet-v2: set SWIFTLET_SHIM or SWIFTLET_MONITOR (the monitor is the shim)")
        }
        if let e = Self.setupError { throw XCTSkip(e) }
        if Self.containerd == nil {
            do {
                let c = try PrivateContainerd(prefix: "swiftlet-shimctl", namespace: "shimctl-\(getpid())")
                Self.containerd = c
                // The runtime finds criu on the PATH it inherits from containerd through the shim.
                if let criu = ProcessInfo.processInfo.environment["SWIFTLET_CRIU"], !criu.isEmpty {
                    try FileManager.default.createSymbolicLink(atPath: c.dir + "/bin/criu", withDestinationPath: criu)
                }
            } catch let skip as XCTSkip {
                Self.setupError = "\(skip)"
                throw skip
            }
        }
    }

    var containerd: PrivateContainerd { Self.containerd! }

    @discardableResult
    static func ctr(_ c: PrivateContainerd, _ args: [String], timeout: Double = 60) -> RunResult {
        runProgram(
            findExecutable("ctr") ?? "ctr", ["--address", c.socket, "--namespace", c.namespace] + args,
            timeout: timeout)
    }

    @discardableResult
    func ctr(_ args: [String], timeout: Double = 60) -> RunResult { Self.ctr(containerd, args, timeout: timeout) }

    func id(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// A detached container under our shim, running; removed after the test whatever happens.
    func runDetached(_ id: String, _ args: [String], flags: [String] = []) {
        let c = containerd
        addTeardownBlock {
            _ = Self.ctr(c, ["task", "kill", "-s", "KILL", id])
            _ = Self.ctr(c, ["task", "rm", "-f", id])
            _ = Self.ctr(c, ["container", "rm", id])
        }
        let r = ctr(["run", "-d", "--runtime", Self.runtime] + flags + [PrivateContainerd.image, id] + args)
        XCTAssertEqual(r.status, 0, "\(r)\n\(containerd.logTail())")
        XCTAssertTrue(waitUntil(timeout: 20) { self.taskStatus(id) == "RUNNING" }, "\(id): \(taskStatus(id) ?? "none")")
    }

    func taskLine(_ id: String) -> [Substring]? {
        for line in ctr(["task", "ls"]).stdout.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count >= 3 && f[0] == id { return f }
        }
        return nil
    }

    func taskStatus(_ id: String) -> String? { taskLine(id).map { String($0[2]) } }
    func taskPid(_ id: String) -> Int? { taskLine(id).flatMap { Int($0[1]) } }

    func bundle(_ id: String) -> String {
        "\(containerd.dir)/state/io.containerd.runtime.v2.task/\(containerd.namespace)/\(id)"
    }

    func socketPath(_ id: String) -> String { bundle(id) + "/monitor.sock" }

    /// Our shims: processes running the shim binary in containerd's bin dir.
    func shimPids() -> [Int32] {
        let exe = containerd.dir + "/bin/containerd-shim-swiftlet-v2"
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        return pids.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/exe")) == exe && processAlive($0)
        }
    }

    func fdCount(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// True once `fd` reads end-of-file (the shim closed it) within `timeout` seconds.
    func closedByPeer(_ fd: Int32, timeout: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return false }
        var b: UInt8 = 0
        return recv(fd, &b, 1, Int32(MSG_DONTWAIT)) == 0
    }

    func killAndRemove(_ id: String, file: StaticString = #filePath, line: UInt = #line) {
        if taskStatus(id) == "RUNNING" {
            XCTAssertEqual(ctr(["task", "kill", "-s", "KILL", id]).status, 0, file: file, line: line)
            XCTAssertTrue(waitUntil(timeout: 20) { self.taskStatus(id) == "STOPPED" }, file: file, line: line)
        }
        XCTAssertEqual(ctr(["task", "rm", id]).status, 0, file: file, line: line)
        XCTAssertEqual(ctr(["container", "rm", id]).status, 0, file: file, line: line)
    }

    func result(_ reply: [String: Any], file: StaticString = #filePath, line: UInt = #line) -> [String: Any] {
        let r = reply["result"] as? [String: Any]
        XCTAssertNotNil(r, "\(reply)", file: file, line: line)
        return r ?? [:]
    }

    /// Loopback up, busybox httpd on 127.0.0.1:8080 in the container's own network namespace (its pid
    /// in /httpd.pid), then a sleep that outlives it.
    static let serverScript =
        "ip link set lo up && mkdir -p /www && echo ok > /www/index.html && "
        + "(httpd -f -p 127.0.0.1:8080 -h /www & echo $! > /httpd.pid; wait); exec sleep 1000"

    // MARK: - Tests

    /// A `ctr run` container: its monitor.sock (0600) answers `state` (running, the task's pid) and
    /// execSync (output, exit code); an exec probe and tcp and http probes (run by the shim, the
    /// network ones from inside the container's network namespace) turn healthy, then unhealthy when
    /// the file appears and the server is killed; removeProbe drops one; a subscriber gets the exit
    /// event when the container is killed, `state` says exited with the code, and the socket is
    /// removed by `ctr task rm`.
    func testProbesExecSyncAndExitEventOfACtrRunContainer() throws {
        let c = id("ctl")
        runDetached(c, ["sh", "-c", Self.serverScript], flags: ["--cap-add", "CAP_NET_ADMIN"])
        var st = stat()
        XCTAssertEqual(lstat(socketPath(c), &st), 0, "no \(socketPath(c))")
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(Int(st.st_mode & 0o7777), 0o600)

        let api = try ControlClient(socketPath(c))
        let state = result(api.call("state"))
        XCTAssertEqual(state["id"] as? String, c)
        XCTAssertEqual(state["status"] as? String, "running")
        XCTAssertEqual(state["pid"] as? Int, taskPid(c))
        let exec = result(
            api.call("execSync", ["args": ["sh", "-c", "echo out; echo err >&2; exit 4"], "timeout": 20]))
        XCTAssertEqual(exec["exitCode"] as? Int, 4, "\(exec)")
        XCTAssertEqual(exec["stdout"] as? String, "out\n")
        XCTAssertEqual(exec["stderr"] as? String, "err\n")
        XCTAssertTrue(
            waitUntil(timeout: 20) {
                self.result(api.call("execSync", ["args": ["test", "-s", "/httpd.pid"]]))["exitCode"] as? Int == 0
            }, "httpd did not start")

        let events = try ControlClient(socketPath(c))
        XCTAssertEqual(result(events.call("subscribe"))["status"] as? String, "running")
        let probes: [[String: Any]] = [
            ["name": "file", "exec": ["command": ["test", "!", "-e", "/fail"]]],
            ["name": "tcp", "tcpSocket": ["port": 8080]],
            ["name": "http", "httpGet": ["port": 8080, "path": "/index.html"]],
        ]
        for p in probes {
            XCTAssertNotNil(
                api.call("addProbe", p.merging(["periodSeconds": 1, "failureThreshold": 1]) { $1 })["result"])
        }
        func health(until expected: [String: Bool]) -> [String: Bool] {
            var seen: [String: Bool] = [:]
            let deadline = Date().addingTimeInterval(30)
            while seen != expected, Date() < deadline, let e = events.next(timeout: 5) {
                if e["event"] as? String == "probe", let n = e["name"] as? String, let h = e["healthy"] as? Bool {
                    seen[n] = h
                }
            }
            return seen
        }
        XCTAssertEqual(
            health(until: ["file": true, "tcp": true, "http": true]), ["file": true, "tcp": true, "http": true])
        XCTAssertEqual(result(api.call("execSync", ["args": ["touch", "/fail"]]))["exitCode"] as? Int, 0)
        XCTAssertEqual(
            result(api.call("execSync", ["args": ["sh", "-c", "kill $(cat /httpd.pid)"]]))["exitCode"] as? Int, 0)
        XCTAssertEqual(
            health(until: ["file": false, "tcp": false, "http": false]), ["file": false, "tcp": false, "http": false])
        XCTAssertNotNil(api.call("removeProbe", ["name": "tcp"])["result"])
        let listed = (result(api.call("state"))["probes"] as? [[String: Any]])?.map { $0["name"] as? String ?? "" }
        XCTAssertEqual(listed, ["file", "http"])

        XCTAssertEqual(ctr(["task", "kill", "-s", "KILL", c]).status, 0)
        let exit = events.waitEvent(timeout: 20) { $0["event"] as? String == "exit" }
        XCTAssertEqual(exit?["exitCode"] as? Int, 137, "\(String(describing: exit))")
        XCTAssertEqual(exit?["oomKilled"] as? Bool, false)
        XCTAssertNotNil(exit?["time"] as? String)
        XCTAssertTrue(waitUntil(timeout: 20) { self.taskStatus(c) == "STOPPED" })
        let after = result(try ControlClient(socketPath(c)).call("state"))
        XCTAssertEqual(after["status"] as? String, "exited")
        XCTAssertEqual(after["exitCode"] as? Int, 137)
        XCTAssertEqual((after["probes"] as? [[String: Any]])?.count, 2, "the probes' last status stays")
        let late = api.call("execSync", ["args": ["true"]])["error"] as? String ?? ""
        XCTAssertTrue(late.contains("not running"), late)

        XCTAssertEqual(ctr(["task", "rm", c]).status, 0)
        XCTAssertTrue(closedByPeer(events.fd, timeout: 10), "Delete closes the subscriber's connection")
        XCTAssertEqual(lstat(socketPath(c), &st), -1, "the socket is removed by Delete")
        XCTAssertEqual(ctr(["container", "rm", c]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 20) { self.shimPids().isEmpty }, "shims left: \(shimPids())")
    }

    /// Two containers of one pod share a shim, each with a socket, state and probes of its own; the
    /// first one's exit and removal leave the other's socket serving. A Create that fails in that
    /// shim leaves no fd behind (its control socket is closed again).
    func testContainersOfOnePodShimHaveTheirOwnSockets() throws {
        let pod = id("pod")
        let app = id("app")
        let ann = ["--annotation", "io.kubernetes.cri.sandbox-id=\(pod)"]
        runDetached(pod, ["sleep", "1000"], flags: ann)
        runDetached(app, ["sleep", "1001"], flags: ann)
        let shims = shimPids()
        XCTAssertEqual(shims.count, 1, "one shim for the pod")
        let podAPI = try ControlClient(socketPath(pod))
        let appAPI = try ControlClient(socketPath(app))
        XCTAssertEqual(result(podAPI.call("state"))["pid"] as? Int, taskPid(pod))
        XCTAssertEqual(result(appAPI.call("state"))["pid"] as? Int, taskPid(app))
        XCTAssertEqual(result(appAPI.call("state"))["id"] as? String, app)
        XCTAssertEqual(
            result(appAPI.call("execSync", ["args": ["cat", "/proc/1/cmdline"]]))["stdout"] as? String,
            "sleep\u{0}1001\u{0}")
        XCTAssertEqual(
            result(podAPI.call("execSync", ["args": ["cat", "/proc/1/cmdline"]]))["stdout"] as? String,
            "sleep\u{0}1000\u{0}")
        if let shim = shims.first {  // before any probe: no probe's pipes are counted
            let fds = fdCount(shim)
            let bad = id("bad")
            let r = ctr(
                ["run", "-d", "--runtime", Self.runtime] + ann + [PrivateContainerd.image, bad, "/no-such-binary"])
            XCTAssertNotEqual(r.status, 0, "a container with a missing binary was created: \(r)")
            _ = ctr(["task", "rm", "-f", bad])
            _ = ctr(["container", "rm", bad])
            // (At most: an idle client may meanwhile be closed by the idle timeout, never one more.)
            XCTAssertTrue(
                waitUntil(timeout: 20) { self.fdCount(shim) <= fds }, "shim fds: \(fdCount(shim)), before: \(fds)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath(bad)))
        }
        XCTAssertNotNil(
            appAPI.call("addProbe", ["name": "app-only", "exec": ["command": ["true"]], "periodSeconds": 1])["result"])
        XCTAssertEqual((result(podAPI.call("state"))["probes"] as? [Any])?.count, 0)
        XCTAssertEqual((result(appAPI.call("state"))["probes"] as? [Any])?.count, 1)

        let podEvents = try ControlClient(socketPath(pod))
        XCTAssertNotNil(podEvents.call("subscribe")["result"])
        killAndRemove(app)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath(app)), "app's socket removed")
        XCTAssertNil(podEvents.next(timeout: 2), "the app's exit is no event on the pod's socket")
        XCTAssertEqual(result(podAPI.call("state"))["status"] as? String, "running")
        XCTAssertEqual(shimPids(), shims, "the shim stays for the sandbox")
        XCTAssertEqual(result(podAPI.call("execSync", ["args": ["echo", "still"]]))["stdout"] as? String, "still\n")
        killAndRemove(pod)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath(pod)))
        XCTAssertTrue(waitUntil(timeout: 20) { self.shimPids().isEmpty }, "shims left: \(shimPids())")
    }

    /// https and grpc probes under the shim (OpenSSL and the HTTP/2 health client in the shim's own
    /// process): a self-signed TLS server in the container's network namespace, then killed; a gRPC
    /// health server on the host for a container with the host's network, then NOT_SERVING.
    func testHTTPSAndGRPCProbes() throws {
        try XCTSkipUnless(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"),
            "openssl not installed (Scripts/install-deps.sh)")
        let c = id("tls")
        runDetached(c, ["sh", "-c", Self.serverScript], flags: ["--cap-add", "CAP_NET_ADMIN"])
        let pid = try XCTUnwrap(taskPid(c))
        let server = try startTLSServer(inNetworkNamespaceOf: pid)
        let tls = try ControlClient(socketPath(c))
        XCTAssertNotNil(tls.call("subscribe")["result"])
        let https: [String: Any] = [
            "name": "tls", "httpGet": ["port": 8443, "scheme": "HTTPS", "path": "/"], "periodSeconds": 1,
            "failureThreshold": 1,
        ]
        XCTAssertNotNil(tls.call("addProbe", https)["result"])
        let up = tls.waitEvent(timeout: 30) { $0["name"] as? String == "tls" && $0["healthy"] as? Bool == true }
        XCTAssertEqual(up?["message"] as? String, "HTTP 200", "\(String(describing: up))")
        kill(server.processIdentifier, SIGKILL)
        XCTAssertNotNil(
            tls.waitEvent(timeout: 15) { $0["name"] as? String == "tls" && $0["healthy"] as? Bool == false })

        let health = try FakeGRPCHealthServer()
        defer { health.stop() }
        let g = id("grpc")
        runDetached(g, ["sleep", "1000"], flags: ["--net-host"])
        let api = try ControlClient(socketPath(g))
        XCTAssertNotNil(api.call("subscribe")["result"])
        let grpc: [String: Any] = [
            "name": "grpc", "grpc": ["port": health.port, "service": "shop"], "periodSeconds": 1,
            "failureThreshold": 1,
        ]
        XCTAssertNotNil(api.call("addProbe", grpc)["result"])
        XCTAssertNotNil(
            api.waitEvent(timeout: 15) { $0["name"] as? String == "grpc" && $0["healthy"] as? Bool == true })
        XCTAssertTrue(health.lastRequest.contains("/grpc.health.v1.Health/Check"))
        health.status = 2
        let down = api.waitEvent(timeout: 15) { $0["name"] as? String == "grpc" && $0["healthy"] as? Bool == false }
        XCTAssertEqual(down?["message"] as? String, "status NOT_SERVING")
        killAndRemove(c)
        killAndRemove(g)
    }

    /// A container killed by the OOM killer: its subscriber gets the `oom` event, then `exit` with
    /// oomKilled; `state` says so too.
    func testOOMEventThenExit() throws {
        let c = id("oom")
        runDetached(
            c, ["sh", "-c", "while [ ! -e /go ]; do sleep 0.1; done; x=$(tail /dev/zero)"],
            flags: ["--memory-limit", "16777216"])
        let events = try ControlClient(socketPath(c))
        XCTAssertNotNil(events.call("subscribe")["result"])
        XCTAssertEqual(result(events.call("execSync", ["args": ["touch", "/go"]]))["exitCode"] as? Int, 0)
        let oom = events.waitEvent(timeout: 30) { $0["event"] as? String == "oom" }
        XCTAssertNotNil(oom, "no oom event")
        let exit = events.waitEvent(timeout: 30) { $0["event"] as? String == "exit" }
        XCTAssertEqual(exit?["exitCode"] as? Int, 137, "\(String(describing: exit))")
        XCTAssertEqual(exit?["oomKilled"] as? Bool, true)
        XCTAssertEqual(result(events.call("state"))["oomKilled"] as? Bool, true)
        killAndRemove(c)
    }

    /// The monitor's cap of 32 connections holds under the shim: 40 idle clients leave the 8 oldest
    /// closed and the newest open; a fresh client is still served, and so is containerd.
    func testConnectionCap() throws {
        let c = id("cap")
        runDetached(c, ["sleep", "1000"])
        var clients: [ControlClient] = []
        for _ in 0..<40 { clients.append(try ControlClient(socketPath(c))) }
        for (i, client) in clients.prefix(8).enumerated() {
            XCTAssertTrue(closedByPeer(client.fd, timeout: 10), "client \(i) of the 8 oldest is closed")
        }
        for (i, client) in clients.suffix(24).enumerated() {
            XCTAssertFalse(closedByPeer(client.fd, timeout: 0), "client \(i + 16) stays")
        }
        XCTAssertEqual(result(try ControlClient(socketPath(c)).call("state"))["status"] as? String, "running")
        XCTAssertEqual(taskStatus(c), "RUNNING")
        killAndRemove(c)
    }

    /// SO_PEERCRED: even with the socket file open to everyone, uid 65534 is closed unanswered; root
    /// is still served.
    func testOtherUsersAreRefused() throws {
        let c = id("peer")
        runDetached(c, ["sleep", "1000"])
        XCTAssertEqual(chmod(socketPath(c), 0o666), 0)
        let client = """
            use IO::Socket::UNIX; $SIG{PIPE} = 'IGNORE';
            my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => 'monitor.sock') or die "connect: $!\\n";
            print $s "{\\"id\\":1,\\"method\\":\\"state\\"}\\n";
            $SIG{ALRM} = sub { print "TIMEOUT\\n"; exit 0 }; alarm 10;
            my $l = <$s>; print defined $l ? "REPLY $l" : "CLOSED\\n";
            """
        // From inside the bundle (the directories above it are not searchable for uid 65534).
        let dir = open(bundle(c), O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(dir, 0)
        defer { close(dir) }
        var st = stat()
        XCTAssertEqual(fstat(dir, &st), 0)
        XCTAssertEqual(fchmod(dir, (st.st_mode & 0o7777) | 0o001), 0)
        let r = runProgram(
            "/bin/sh",
            [
                "-c", "cd \"$0\" && exec setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/perl -e \"$1\"",
                bundle(c), client,
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "CLOSED\n", "uid 65534 got an answer: \(r.stdout) \(r.stderr)")
        XCTAssertEqual(result(try ControlClient(socketPath(c)).call("state"))["status"] as? String, "running")
        killAndRemove(c)
    }

    /// `checkpoint` through a shim container's socket: a forensic archive (CRIU images, spec.dump,
    /// config.dump) of the running container, which keeps running.
    func testCheckpointArchiveThroughTheSocket() throws {
        guard let criu = ProcessInfo.processInfo.environment["SWIFTLET_CRIU"], !criu.isEmpty else {
            throw XCTSkip("SWIFTLET_CRIU is not set: Scripts/install-criu.sh prints the criu to use")
        }
        let c = id("ckpt")
        runDetached(c, ["sh", "-c", "while true; do sleep 0.1; done"])
        let archive = containerd.dir + "/\(c).tar"
        let r = result(try ControlClient(socketPath(c)).call("checkpoint", ["archive": archive], timeout: 300))
        XCTAssertEqual(r["archive"] as? String, archive)
        XCTAssertGreaterThan(r["size"] as? Int ?? 0, 0)
        let list = runProgram("/bin/tar", ["-tf", archive]).stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(list.contains("./spec.dump") && list.contains("./config.dump"), "\(list)")
        XCTAssertTrue(list.contains { $0.hasPrefix("./checkpoint/") && $0.hasSuffix(".img") }, "\(list)")
        let config = runProgram("/bin/tar", ["-xOf", archive, "./config.dump"]).stdout
        let dump = try JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any]
        XCTAssertEqual(dump?["id"] as? String, c, config)
        XCTAssertEqual(taskStatus(c), "RUNNING")
        try? FileManager.default.removeItem(atPath: archive)
        killAndRemove(c)
    }
}
