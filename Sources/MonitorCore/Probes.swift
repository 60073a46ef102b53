import CLinux
import Glibc
import LinuxSystem
import OCI

/// What a probe checks. Field names follow the Kubernetes Probe API.
enum ProbeAction {
    case exec([String])
    case tcp(host: String, port: Int)
    case http(host: String, port: Int, path: String, headers: [(String, String)], expectedStatus: Int?, tls: Bool)
    case grpc(host: String, port: Int, service: String)
}

struct ProbeSpec {
    var name: String
    var action: ProbeAction
    var initialDelaySeconds = 0
    var periodSeconds = 10
    var timeoutSeconds = 1
    var successThreshold = 1
    var failureThreshold = 3

    var needsNetwork: Bool { if case .exec = action { false } else { true } }

    init(_ p: JSONObject) throws(MonitorFailure) {
        guard case .string(let name)? = p["name"], !name.isEmpty else {
            throw MonitorFailure("params.name: missing probe name")
        }
        self.name = name
        var actions: [ProbeAction] = []
        if case .object(let e)? = p["exec"] {
            let command = try stringArray(e, "command", required: true)
            guard !command.isEmpty else { throw MonitorFailure("params.exec.command: must not be empty") }
            actions.append(.exec(command))
        }
        if case .object(let t)? = p["tcpSocket"] {
            actions.append(.tcp(host: try host(t, "tcpSocket"), port: try port(t, "tcpSocket")))
        }
        if case .object(let h)? = p["httpGet"] {
            let scheme = try optionalString(h, "scheme", prefix: "params.httpGet.") ?? "HTTP"
            guard scheme.uppercased() == "HTTP" || scheme.uppercased() == "HTTPS" else {
                throw MonitorFailure("params.httpGet.scheme: \(scheme) is neither HTTP nor HTTPS")
            }
            let path = try optionalString(h, "path", prefix: "params.httpGet.") ?? "/"
            guard path.hasPrefix("/"), !path.utf8.contains(where: { $0 <= 32 || $0 == 127 }) else {
                throw MonitorFailure("params.httpGet.path: must start with / and contain no spaces or line breaks")
            }
            var headers: [(String, String)] = []
            if let hv = h["httpHeaders"] {
                guard case .array(let items) = hv else {
                    throw MonitorFailure("params.httpGet.httpHeaders: must be an array")
                }
                for item in items {
                    guard case .object(let o) = item, case .string(let n)? = o["name"],
                        case .string(let v)? = o["value"],
                        !n.isEmpty, !hasLineBreak(n + v), !n.contains(":")
                    else {
                        throw MonitorFailure(
                            "params.httpGet.httpHeaders: each header needs a name and a value without line breaks")
                    }
                    headers.append((n, v))
                }
            }
            var expected: Int?
            if h["expectedStatus"] != nil {
                expected = try integer(h, "expectedStatus", default: 200, range: 100...599, prefix: "params.httpGet.")
            }
            actions.append(
                .http(
                    host: try host(h, "httpGet"), port: try port(h, "httpGet"), path: path,
                    headers: headers, expectedStatus: expected, tls: scheme.uppercased() == "HTTPS"))
        }
        if case .object(let g)? = p["grpc"] {
            actions.append(
                .grpc(
                    host: try host(g, "grpc"), port: try port(g, "grpc"),
                    service: try optionalString(g, "service", prefix: "params.grpc.") ?? ""))
        }
        guard actions.count == 1, let action = actions.first else {
            throw MonitorFailure("params: exactly one of exec, tcpSocket, httpGet, grpc is required")
        }
        self.action = action
        initialDelaySeconds = try integer(p, "initialDelaySeconds", default: 0, range: 0...86400)
        periodSeconds = try integer(p, "periodSeconds", default: 10, range: 1...86400)
        timeoutSeconds = try integer(p, "timeoutSeconds", default: 1, range: 1...86400)
        successThreshold = try integer(p, "successThreshold", default: 1, range: 1...1000)
        failureThreshold = try integer(p, "failureThreshold", default: 3, range: 1...1000)
    }
}

/// CR or LF anywhere (String.contains("\r") misses the "\r\n" grapheme).
private func hasLineBreak(_ s: String) -> Bool { s.utf8.contains { $0 == 10 || $0 == 13 } }

private func port(_ o: JSONObject, _ field: String) throws(MonitorFailure) -> Int {
    guard o["port"] != nil else { throw MonitorFailure("params.\(field).port: missing") }
    return try integer(o, "port", default: 0, range: 1...65535, prefix: "params.\(field).")
}

private func host(_ o: JSONObject, _ field: String) throws(MonitorFailure) -> String {
    let h = try optionalString(o, "host", prefix: "params.\(field).") ?? "127.0.0.1"
    guard IPAddress(h) != nil else {
        throw MonitorFailure("params.\(field).host: \"\(h)\" is not an IPv4 or IPv6 address")
    }
    return h
}

/// A probe with Kubernetes' semantics: `healthy` turns true after successThreshold consecutive
/// successes and false after failureThreshold consecutive failures; unknown (null) until then.
final class Probe {
    let spec: ProbeSpec
    unowned let server: ControlServer
    private var successes = 0
    private var failures = 0
    private var healthy: Bool?
    private var lastResult: String?
    private var lastMessage = ""
    private var runs = 0
    private var timer: Int?
    private var inFlight: NetCheck?
    private var stopped = false

    init(_ spec: ProbeSpec, server: ControlServer) {
        self.spec = spec
        self.server = server
    }

    func schedule(afterMs: Int64? = nil) {
        guard !stopped else { return }
        timer = server.container.loop.after(ms: afterMs ?? Int64(spec.initialDelaySeconds) * 1000) { [weak self] in
            self?.run()
        }
    }

    func stop() {
        stopped = true
        if let timer { server.container.loop.cancel(timer) }
        inFlight?.cancel()
        inFlight = nil
    }

    private func run() {
        guard !stopped, server.container.exitCode == nil else { return }
        let done: (Bool, String) -> Void = { [weak self] ok, message in self?.record(ok, message) }
        switch spec.action {
        case .exec(let command):
            do {
                try ExecRunner.run(
                    ExecRequest(args: command, timeoutSeconds: spec.timeoutSeconds), container: server.container
                ) { r in
                    if r.timedOut {
                        done(false, "timed out after \(self.spec.timeoutSeconds)s")
                    } else {
                        done(r.exitCode == 0, "exit code \(r.exitCode)" + tail(r.stdout + r.stderr))
                    }
                }
            } catch {
                done(false, error.message)
            }
        case .tcp, .http, .grpc:
            guard let netns = server.network else {
                done(false, "no network namespace")
                return
            }
            inFlight = NetCheck.start(
                spec.action, netns: netns, timeoutMs: Int64(spec.timeoutSeconds) * 1000,
                loop: server.container.loop
            ) { [weak self] ok, message in
                self?.inFlight = nil
                done(ok, message)
            }
        }
    }

    private func record(_ ok: Bool, _ message: String) {
        guard !stopped else { return }
        runs += 1
        lastResult = ok ? "success" : "failure"
        lastMessage = message
        if ok {
            successes += 1
            failures = 0
            if successes >= spec.successThreshold { healthy = true }
        } else {
            failures += 1
            successes = 0
            if failures >= spec.failureThreshold { healthy = false }
        }
        var event = status()
        event.members.insert(("event", .string("probe")), at: 0)
        server.broadcast(event)
        schedule(afterMs: Int64(spec.periodSeconds) * 1000)
    }

    func status() -> JSONObject {
        [
            "name": .string(spec.name), "result": lastResult.map { .string($0) } ?? .null,
            "healthy": healthy.map { .bool($0) } ?? .null, "message": .string(lastMessage),
            "consecutiveSuccesses": .number(String(successes)), "consecutiveFailures": .number(String(failures)),
            "runs": .number(String(runs)),
        ]
    }
}

private func tail(_ bytes: [UInt8]) -> String {
    bytes.isEmpty ? "" : ": " + trimmed(String(decoding: bytes.suffix(256), as: UTF8.self))
}

// MARK: - Network namespace

/// The container's network namespace, entered only for the `socket()` call: a socket keeps the
/// namespace it was created in, so the monitor connects from inside the container without a process.
final class NetworkNamespace {
    let container: Int32
    let own: Int32
    let same: Bool

    init(pid: pid_t) throws(MonitorFailure) {
        let path = "/proc/\(pid)/ns/net"
        container = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard container >= 0 else { throw MonitorFailure("open \(path): \(errnoString(errno))") }
        own = Glibc.open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
        guard own >= 0 else {
            let e = errno
            Glibc.close(container)
            throw MonitorFailure("open /proc/self/ns/net: \(errnoString(e))")
        }
        var a = stat()
        var b = stat()
        same = fstat(container, &a) == 0 && fstat(own, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev
    }

    deinit {
        Glibc.close(container)
        Glibc.close(own)
    }

    func socket(family: Int32) throws(SysError) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        if same { return try sys("socket") { Glibc.socket(family, type, 0) } }
        try sys("setns", "container network namespace") { sl_setns(container, SL_CLONE_NEWNET) }
        let fd = Glibc.socket(family, type, 0)
        let e = errno
        // Back to our own namespace whatever happened; failing that, the monitor must not go on.
        guard sl_setns(own, SL_CLONE_NEWNET) == 0 else {
            if fd >= 0 { Glibc.close(fd) }
            throw SysError("setns", "monitor network namespace", errno: errno)
        }
        guard fd >= 0 else { throw SysError("socket", "container network namespace", errno: e) }
        return fd
    }
}

struct IPAddress {
    var family: Int32
    var bytes: [UInt8]

    init?(_ text: String) {
        var buf = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &buf) == 1 {
            family = AF_INET
            bytes = Array(buf[0..<4])
        } else if inet_pton(AF_INET6, text, &buf) == 1 {
            family = AF_INET6
            bytes = buf
        } else {
            return nil
        }
    }
}

// MARK: - tcp / http / grpc checks

/// One network check: non-blocking connect from inside the container's netns, then (http, grpc) a
/// request and the first response bytes, all inside the monitor's event loop with a timeout.
final class NetCheck {
    private let action: ProbeAction
    private let loop: EventLoop
    private var fd: Int32 = -1
    private var timer: Int?
    private var response: [UInt8] = []
    private var done: ((Bool, String) -> Void)?
    private var grpc = GRPCHealthClient()

    private init(_ action: ProbeAction, loop: EventLoop, done: @escaping (Bool, String) -> Void) {
        self.action = action
        self.loop = loop
        self.done = done
    }

    static func start(
        _ action: ProbeAction, netns: NetworkNamespace, timeoutMs: Int64, loop: EventLoop,
        done: @escaping (Bool, String) -> Void
    ) -> NetCheck {
        let c = NetCheck(action, loop: loop, done: done)
        c.timer = loop.after(ms: timeoutMs) { [weak c] in c?.finish(false, "timed out after \(timeoutMs / 1000)s") }
        let (host, port) = c.target
        guard let addr = IPAddress(host) else {
            c.finish(false, "bad address \(host)")
            return c
        }
        do {
            c.fd = try netns.socket(family: addr.family)
            let r = addr.bytes.withUnsafeBytes { sl_connect_inet(c.fd, addr.family, $0.baseAddress, UInt16(port)) }
            if r < 0 && errno != EINPROGRESS {
                c.finish(false, "connect \(host):\(port): \(errnoString(errno))")
                return c
            }
            let fd = c.fd
            try loop.watch(fd, events: SL_EPOLLOUT) { [weak c] ev in c?.onEvent(ev) }
        } catch {
            c.finish(false, "\(error)")
        }
        return c
    }

    private var target: (String, Int) {
        switch action {
        case .tcp(let h, let p), .http(let h, let p, _, _, _, _), .grpc(let h, let p, _): return (h, p)
        case .exec: return ("", 0)
        }
    }

    private var connected = false

    private func onEvent(_ events: UInt32) {
        if !connected {
            let err = sl_socket_error(fd)
            guard err == 0 else {
                let (h, p) = target
                finish(false, "connect \(h):\(p): \(errnoString(err))")
                return
            }
            connected = true
            switch action {
            case .tcp:
                finish(true, "connected")
            case .http(let h, let p, let path, let headers, _, let tls):
                var req =
                    "GET \(path) HTTP/1.1\r\nHost: \(h.contains(":") ? "[\(h)]" : h):\(p)\r\nUser-Agent: "
                    + "swiftlet-monitor/\(monitorVersion)\r\nAccept: */*\r\nConnection: close\r\n"
                for (n, v) in headers { req += "\(n): \(v)\r\n" }
                if tls {
                    guard let t = TLSClient(fd: fd) else {
                        finish(false, "TLS: cannot set up a session")
                        return
                    }
                    self.tls = t
                    tlsPending = Array((req + "\r\n").utf8)
                    driveTLS()
                } else {
                    sendRequest(Array((req + "\r\n").utf8))
                }
            case .grpc(let h, let p, let service):
                sendRequest(grpc.request(authority: "\(h):\(p)", service: service))
            case .exec:
                finish(false, "not a network probe")
            }
            return
        }
        if tls != nil {
            driveTLS()
            return
        }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            response += buf[0..<n]
            evaluate(eof: false)
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            evaluate(eof: true)
        }
    }

    // MARK: https

    private var tls: TLSClient?
    private var tlsHandshakeDone = false
    /// The request not yet written through TLS (nil once sent).
    private var tlsPending: [UInt8]?

    /// Handshake, then the request, then the response, each step resumed when epoll says so.
    private func driveTLS() {
        guard let tls else { return }
        while done != nil {
            let step: TLSClient.Step
            if !tlsHandshakeDone {
                step = tls.handshake()
                if case .done = step {
                    tlsHandshakeDone = true
                    continue
                }
            } else if let pending = tlsPending {
                step = tls.write(pending)
                if case .done = step {
                    tlsPending = nil
                    continue
                }
            } else {
                var buf = [UInt8](repeating: 0, count: 4096)
                step = tls.read(&buf)
                if case .done(let n) = step {
                    response += buf[0..<n]
                    evaluate(eof: false)
                    continue
                }
            }
            switch step {
            case .wantRead:
                loop.change(fd, events: SL_EPOLLIN)
                return
            case .wantWrite:
                loop.change(fd, events: SL_EPOLLOUT)
                return
            case .eof:
                evaluate(eof: true)
                return
            case .failed(let why):
                finish(false, why)
                return
            case .done: return
            }
        }
    }

    private func sendRequest(_ bytes: [UInt8]) {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else {
            finish(false, "send request: \(errnoString(errno))")
            return
        }
        loop.change(fd, events: SL_EPOLLIN)
    }

    private func evaluate(eof: Bool) {
        switch action {
        case .http(_, _, _, _, let expected, _):
            guard let end = response.firstIndex(of: UInt8(ascii: "\n")) else {
                if eof || response.count > 8192 { finish(false, "no HTTP status line") }
                return
            }
            let line = trimmed(String(decoding: response[0..<end], as: UTF8.self))
            let parts = line.split(separator: " ")
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
                finish(false, "bad HTTP status line \"\(line.prefix(80))\"")
                return
            }
            let ok = expected.map { code == $0 } ?? (200..<400).contains(code)
            finish(ok, "HTTP \(code)")
        case .grpc:
            switch grpc.parse(response) {
            case .serving: finish(true, "SERVING")
            case .notServing(let why): finish(false, why)
            case .needMore:
                if let ack = grpc.pendingAck() {
                    _ = ack.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                if eof { finish(false, "connection closed before a health response") }
            }
        default:
            if eof { finish(false, "connection closed") }
        }
    }

    private func finish(_ ok: Bool, _ message: String) {
        if let timer { loop.cancel(timer) }
        timer = nil
        tls = nil
        if fd >= 0 {
            loop.unwatch(fd)
            Glibc.close(fd)
            fd = -1
        }
        let d = done
        done = nil
        d?(ok, message)
    }

    func cancel() {
        done = nil
        finish(false, "cancelled")
    }
}
