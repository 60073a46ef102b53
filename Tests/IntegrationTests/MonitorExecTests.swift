import Foundation
import TestSupport
import XCTest

/// conmon's exec mode (-e): podman's exec sessions (api-version 1) and CRI-O's ExecSync (legacy, --sync, -T).
final class MonitorExecModeTests: MonitorTestCase {
    func execMonitor(_ c: MonitoredContainer, _ args: [String], apiVersion: Bool, extra: [String] = []) throws -> (
        RunResult, [String], String
    ) {
        let dir = try makeTempDir(prefix: "swiftlet-monitor-exec.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let process: [String: Any] = [
            "args": args, "cwd": "/", "env": ["PATH=/bin:/usr/bin"], "user": ["uid": 0, "gid": 0],
            "terminal": false,
        ]
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: dir + "/process.json"))
        try FileManager.default.createDirectory(atPath: dir + "/exits", withIntermediateDirectories: true)
        var margs = apiVersion ? ["--api-version", "1"] : []
        margs +=
            [
                "-c", c.id, "-n", c.id, "-r", c.runtime.path, "--runtime-arg", "--root=" + c.runtimeRoot,
                "-p", dir + "/exec.pid", "-e", "--exec-process-spec", dir + "/process.json",
                "-l", "k8s-file:" + dir + "/exec.log", "--exit-dir", dir + "/exits",
            ] + extra
        let fifo = dir + "/sync"
        mkfifo(fifo, 0o600)
        let fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        defer { close(fd) }
        var env = ProcessInfo.processInfo.environment
        env["_OCI_SYNCPIPE"] = "3"
        let r = runProgram(
            "/bin/sh", ["-c", "exec 3<>\"$0\"; exec \"$@\"", fifo, Runtime.monitor] + margs, timeout: 60,
            environment: env)
        let lines = readLines(fd, count: apiVersion ? 2 : 1, timeout: 30)
        let log = (try? String(contentsOfFile: dir + "/exec.log", encoding: .utf8)) ?? ""
        return (r, lines, log)
    }

    func testLegacyExecSyncReportsExitCodeAndLogsOutput() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let (r, lines, log) = try execMonitor(
            c, ["sh", "-c", "echo from-exec; exit 5"], apiVersion: false, extra: ["--sync", "-T", "10"])
        XCTAssertEqual(r.status, 5, "with --sync the monitor itself exits with the status: \(r)")
        XCTAssertEqual(lines.first, "{\"exit_code\":5}")
        XCTAssertTrue(log.contains("stdout F from-exec"), log)
    }

    func testExecTimeoutKillsTheProcessGroup() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let t0 = Date()
        let (_, lines, _) = try execMonitor(
            c, ["sh", "-c", "sleep 31.5 & sleep 32.5"], apiVersion: false, extra: ["--sync", "-T", "1"])
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        XCTAssertEqual(lines.first, "{\"exit_code\":-1,\"message\":\"command timed out\"}")
        XCTAssertTrue(
            waitUntil(timeout: 5) {
                self.processes(matching: "sleep\u{0}31.5").isEmpty && self.processes(matching: "sleep\u{0}32.5").isEmpty
            },
            "the exec'd command and its background child were killed")
    }

    func testPodmanExecSessionReportsPidThenStatus() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let (_, lines, log) = try execMonitor(c, ["sh", "-c", "echo podman-exec; exit 6"], apiVersion: true)
        XCTAssertEqual(lines.count, 2)
        let pidLine = (try? JSONSerialization.jsonObject(with: Data(lines[0].utf8))) as? [String: Any]
        XCTAssertGreaterThan(pidLine?["data"] as? Int ?? -1, 0, lines[0])
        XCTAssertEqual(lines[1], "{\"data\":6}")
        XCTAssertTrue(log.contains("stdout F podman-exec"), log)
    }

    func testExecIntoMissingContainerFails() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let ghost = MonitoredContainer(
            id: "ghost-\(UUID().uuidString.prefix(8))", dir: c.dir, runtime: .swiftlet,
            runtimeRoot: c.runtimeRoot, sync: c.sync, syncLine: "")
        let (r, lines, _) = try execMonitor(ghost, ["true"], apiVersion: false, extra: ["--sync"])
        XCTAssertEqual(r.status, 1)
        let msg = (try? JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8))) as? [String: Any]
        XCTAssertEqual(msg?["exit_code"] as? Int, -1, lines.first ?? "")
        XCTAssertEqual(
            msg?["message"] as? String, "exec failed: container does not exist\n",
            "the runtime's own error (runc's wording)")
    }

    func processes(matching cmdline: String) -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        return pids.filter { pid in
            guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: d, as: UTF8.self).hasPrefix(cmdline) && processAlive(pid)
        }
    }
}

/// The control API (beyond conmon): exec-sync and probes run by the monitor.
final class MonitorControlTests: MonitorTestCase {
    /// A container with a writable /tmp and its loopback up, serving HTTP on 127.0.0.1:8080 in its own
    /// network namespace (busybox httpd; its pid in /tmp/httpd.pid).
    func serverContainer() throws -> MonitoredContainer {
        let script =
            "ip link set lo up && mkdir -p /tmp/www && echo ok > /tmp/www/index.html && "
            + "(httpd -f -p 127.0.0.1:8080 -h /tmp/www & echo $! > /tmp/httpd.pid; wait); sleep 1000"
        let c = try launch(["sh", "-c", script]) { spec in
            var p = spec[dict: "process"]
            var caps = p["capabilities"] as? [String: Any] ?? [:]
            for set in ["bounding", "effective", "permitted"] {
                caps[set] = (caps[set] as? [String] ?? []) + ["CAP_NET_ADMIN"]
            }
            p["capabilities"] = caps
            spec["process"] = p
            spec["mounts"] =
                (spec["mounts"] as? [[String: Any]] ?? []) + [
                    ["destination": "/tmp", "type": "tmpfs", "source": "tmpfs"]
                ]
        }
        start(c)
        return c
    }

    func testExecSyncCapturesOutputAndExitCode() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let api = try ControlClient(c.bundle + "/monitor.sock")
        let reply = api.call("execSync", ["args": ["sh", "-c", "echo out; echo err >&2; exit 4"], "timeout": 10])
        let result = try XCTUnwrap(reply["result"] as? [String: Any], "\(reply)")
        XCTAssertEqual(result["exitCode"] as? Int, 4)
        XCTAssertEqual(result["stdout"] as? String, "out\n")
        XCTAssertEqual(result["stderr"] as? String, "err\n")
        XCTAssertEqual(result["timedOut"] as? Bool, false)
        let state = try XCTUnwrap(api.call("state")["result"] as? [String: Any])
        XCTAssertEqual(state["status"] as? String, "running")
        XCTAssertEqual(state["pid"] as? Int, c.syncJSON["data"] as? Int)
    }

    func testExecSyncTimeout() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let api = try ControlClient(c.bundle + "/monitor.sock")
        let t0 = Date()
        let reply = api.call("execSync", ["args": ["sleep", "30"], "timeout": 1])
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        let result = try XCTUnwrap(reply["result"] as? [String: Any], "\(reply)")
        XCTAssertEqual(result["timedOut"] as? Bool, true)
        XCTAssertEqual(result["exitCode"] as? Int, -1)
    }

    func testBadRequestsGetErrorsNamingTheField() throws {
        let c = try launch(["sleep", "100"])
        start(c)
        let api = try ControlClient(c.bundle + "/monitor.sock")
        func error(_ method: String, _ params: [String: Any]) -> String {
            api.call(method, params)["error"] as? String ?? "(no error)"
        }
        XCTAssertTrue(error("nope", [:]).contains("unknown method"))
        XCTAssertTrue(error("execSync", [:]).contains("params.args"))
        XCTAssertTrue(error("execSync", ["args": ["true"], "timeout": -1]).contains("params.timeout"))
        XCTAssertTrue(error("addProbe", ["name": "p"]).contains("exactly one of"))
        XCTAssertTrue(error("addProbe", ["name": "p", "tcpSocket": ["port": 70000]]).contains("params.tcpSocket.port"))
        XCTAssertTrue(
            error("addProbe", ["name": "p", "httpGet": ["port": 80, "scheme": "FTP"]]).contains("params.httpGet.scheme")
        )
        XCTAssertTrue(
            error("addProbe", ["name": "p", "tcpSocket": ["port": 80, "host": "example.com"]]).contains(
                "params.tcpSocket.host"))
        XCTAssertTrue(error("removeProbe", ["name": "missing"]).contains("params.name"))
        api.send("{not json")
        XCTAssertTrue((api.next(timeout: 5)?["error"] as? String ?? "").contains("invalid JSON"))
        // The monitor is still serving after bad input.
        XCTAssertEqual((api.call("state")["result"] as? [String: Any])?["status"] as? String, "running")
    }

    func testExecProbeTurnsUnhealthyWhenTheCommandStartsFailing() throws {
        let c = try serverContainer()
        let api = try ControlClient(c.bundle + "/monitor.sock")
        _ = api.call("subscribe")
        XCTAssertNotNil(
            api.call(
                "addProbe",
                [
                    "name": "live", "exec": ["command": ["test", "!", "-e", "/tmp/fail"]],
                    "periodSeconds": 1, "failureThreshold": 2,
                ])["result"])
        XCTAssertNotNil(
            api.waitEvent(timeout: 15) { $0["name"] as? String == "live" && $0["healthy"] as? Bool == true })
        XCTAssertEqual(
            (api.call("execSync", ["args": ["touch", "/tmp/fail"]])["result"] as? [String: Any])?["exitCode"] as? Int, 0
        )
        let down = api.waitEvent(timeout: 15) { $0["name"] as? String == "live" && $0["healthy"] as? Bool == false }
        XCTAssertNotNil(down)
        XCTAssertEqual(down?["consecutiveFailures"] as? Int, 2)
    }

    func testTCPAndHTTPProbesRunInTheContainersNetworkNamespace() throws {
        let c = try serverContainer()
        let api = try ControlClient(c.bundle + "/monitor.sock")
        _ = api.call("subscribe")
        XCTAssertTrue(
            waitUntil(timeout: 10) {
                (api.call("execSync", ["args": ["test", "-s", "/tmp/httpd.pid"]])["result"] as? [String: Any])?[
                    "exitCode"] as? Int == 0
            })
        let probes: [[String: Any]] = [
            ["name": "tcp", "tcpSocket": ["port": 8080]],
            [
                "name": "http",
                "httpGet": ["port": 8080, "path": "/index.html", "httpHeaders": [["name": "X-Probe", "value": "1"]]],
            ],
            ["name": "http404", "httpGet": ["port": 8080, "path": "/missing"]],
            ["name": "expect404", "httpGet": ["port": 8080, "path": "/missing", "expectedStatus": 404]],
        ]
        for p in probes {
            var params = p
            params["periodSeconds"] = 1
            params["failureThreshold"] = 1
            XCTAssertNotNil(api.call("addProbe", params)["result"], "\(p)")
        }
        var health: [String: Bool] = [:]
        let deadline = Date().addingTimeInterval(20)
        while health.count < 4, Date() < deadline, let e = api.next(timeout: 5) {
            if e["event"] as? String == "probe", let n = e["name"] as? String, let h = e["healthy"] as? Bool {
                health[n] = h
            }
        }
        XCTAssertEqual(health, ["tcp": true, "http": true, "http404": false, "expect404": true])
        // The server goes away: the tcp probe fails.
        _ = api.call("execSync", ["args": ["sh", "-c", "kill $(cat /tmp/httpd.pid)"]])
        let down = api.waitEvent(timeout: 15) { $0["name"] as? String == "tcp" && $0["healthy"] as? Bool == false }
        XCTAssertNotNil(down)
        XCTAssertTrue((down?["message"] as? String ?? "").contains("refused"), "\(String(describing: down))")
        // Results live in the monitor: a new connection sees them.
        let again = try ControlClient(c.bundle + "/monitor.sock")
        let state = try XCTUnwrap(again.call("state")["result"] as? [String: Any])
        let listed = state["probes"] as? [[String: Any]] ?? []
        XCTAssertEqual(listed.map { $0["name"] as? String ?? "" }, ["expect404", "http", "http404", "tcp"])
        XCTAssertGreaterThan(listed.first?["runs"] as? Int ?? 0, 0)
        XCTAssertNotNil(again.call("removeProbe", ["name": "tcp"])["result"])
        XCTAssertEqual(((again.call("state")["result"] as? [String: Any])?["probes"] as? [[String: Any]])?.count, 3)
    }

    func testHTTPSProbeWithoutCertificateVerification() throws {
        try XCTSkipUnless(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"),
            "openssl not installed (Scripts/install-deps.sh)")
        let c = try serverContainer()
        let pid = try XCTUnwrap(c.syncJSON["data"] as? Int)
        let server = try startTLSServer(inNetworkNamespaceOf: pid)
        let api = try ControlClient(c.bundle + "/monitor.sock")
        _ = api.call("subscribe")
        XCTAssertNotNil(
            api.call(
                "addProbe",
                [
                    "name": "tls", "httpGet": ["port": 8443, "scheme": "HTTPS", "path": "/"],
                    "periodSeconds": 1, "failureThreshold": 1,
                ])["result"])
        let up = api.waitEvent(timeout: 15) { $0["name"] as? String == "tls" && $0["healthy"] as? Bool == true }
        XCTAssertEqual(up?["message"] as? String, "HTTP 200", "\(String(describing: up))")
        kill(server.processIdentifier, SIGKILL)
        XCTAssertNotNil(
            api.waitEvent(timeout: 15) { $0["name"] as? String == "tls" && $0["healthy"] as? Bool == false })
    }

    func testGRPCHealthProbe() throws {
        let server = try FakeGRPCHealthServer()
        defer { server.stop() }
        // The container shares the host's network namespace, so it reaches the test's server.
        let c = try launch(["sleep", "100"]) { spec in
            var linux = spec[dict: "linux"]
            linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []).filter {
                $0["type"] as? String != "network"
            }
            spec["linux"] = linux
        }
        start(c)
        let api = try ControlClient(c.bundle + "/monitor.sock")
        _ = api.call("subscribe")
        XCTAssertNotNil(
            api.call(
                "addProbe",
                [
                    "name": "grpc", "grpc": ["port": server.port, "service": "shop"],
                    "periodSeconds": 1, "failureThreshold": 1,
                ])["result"])
        XCTAssertNotNil(
            api.waitEvent(timeout: 15) { $0["name"] as? String == "grpc" && $0["healthy"] as? Bool == true })
        XCTAssertTrue(server.lastRequest.contains("/grpc.health.v1.Health/Check"))
        XCTAssertTrue(server.lastRequest.contains("shop"))
        server.status = 2
        let down = api.waitEvent(timeout: 15) { $0["name"] as? String == "grpc" && $0["healthy"] as? Bool == false }
        XCTAssertEqual(down?["message"] as? String, "status NOT_SERVING")
    }
}

/// Answers every HTTP/2 connection with one grpc.health.v1 HealthCheckResponse(status).
final class FakeGRPCHealthServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let lock = NSLock()
    private var _status = 1
    private var _last = ""
    private var running = true
    var status: Int {
        get { lock.withLock { _status } }
        set { lock.withLock { _status = newValue } }
    }
    var lastRequest: String { lock.withLock { _last } }

    init() throws {
        let fd = socket(AF_INET, SocketType.stream, 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        listen(fd, 16)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread { [self] in serve() }.start()
    }

    func stop() {
        lock.withLock { running = false }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func frame(_ type: UInt8, _ flags: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [0, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), type, flags, 0, 0, 0, type == 4 ? 0 : 1] + payload
    }

    private func serve() {
        while lock.withLock({ running }) {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            var got = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 4096)
            // Read until the client's DATA frame arrived (it ends the request).
            let deadline = Date().addingTimeInterval(3)
            while Date() < deadline, !String(decoding: got, as: UTF8.self).contains("trailers") || got.count < 120 {
                var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 200) <= 0 { continue }
                let n = read(c, &buf, buf.count)
                if n <= 0 { break }
                got += buf[0..<n]
            }
            usleep(50_000)
            var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 0) > 0 {
                let n = read(c, &buf, buf.count)
                if n > 0 { got += buf[0..<n] }
            }
            let st = status
            lock.withLock { _last = String(decoding: got, as: UTF8.self) }
            var out = frame(4, 0, [])
            out += frame(1, 4, [0x88])  // :status 200
            out += frame(0, 0, [0, 0, 0, 0, 2, 0x08, UInt8(st)])  // HealthCheckResponse{status}
            out += frame(1, 5, [0x00, 11] + Array("grpc-status".utf8) + [1, UInt8(ascii: "0")])
            _ = out.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
            usleep(100_000)
            close(c)
        }
    }
}
