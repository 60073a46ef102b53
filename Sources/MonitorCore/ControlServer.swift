import CLinux
import Glibc
import LinuxSystem
import OCI

/// The container a control server serves and its probes check, with what runs them: the monitor's
/// one container, or one of the containers of a shim (containerd-shim-swiftlet-v2). Children started
/// through `spawnChild` are reaped by the host's event loop, which calls `onExit` with the wait status.
protocol ControlledContainer: AnyObject {
    var loop: EventLoop { get }
    var cid: String { get }
    /// 0 until the container exists (a shim's container restored at Start).
    var containerPid: pid_t { get }
    var exitCode: Int32? { get }
    var oomKilled: Bool { get }
    var bundle: String? { get }
    /// When the container was created (RFC 3339), and its name, for checkpoint archives.
    var startedAt: String { get }
    var displayName: String { get }
    /// Seconds a control connection may stay silent (--control-idle-timeout).
    var controlIdleTimeout: Int { get }
    /// The environment every child gets.
    var childEnv: [String] { get }
    /// `<runtime> <its global flags> VERB...`: exec (execSync, exec probes) and checkpoint.
    func runtimeArgv(_ verb: [String]) -> [String]
    func spawnChild(_ spec: SpawnSpec, onExit: @escaping (Int32) -> Void) throws(SysError) -> pid_t
}

/// The agent's control API (beyond conmon): `<bundle>/monitor.sock`, a unix stream socket speaking
/// newline-delimited JSON. Requests `{"id": X, "method": M, "params": {...}}` get one reply
/// `{"id": X, "result": {...}}` or `{"id": X, "error": "..."}`; subscribers also get events
/// `{"event": ...}`. Spec/monitor.md documents every method and event.
final class ControlServer {
    /// Requests are small; with at most `maxConnections` clients this bounds what they can make the
    /// monitor buffer (2 MiB).
    static let maxLine = 64 << 10
    /// Open connections at most; at the cap the oldest idle one makes room (see `admit`).
    static let maxConnections = 32

    /// One client: its unparsed input, whether it subscribed, its requests still running.
    final class Connection {
        let fd: Int32
        var buffer: [UInt8] = []
        var subscribed = false
        var busy = 0
        var idleTimer: Int?
        init(_ fd: Int32) { self.fd = fd }
    }

    let fd: Int32
    let path: String
    unowned let container: any ControlledContainer
    private var connections: [Int32: Connection] = [:]
    /// Accept order, oldest first.
    private var order: [Int32] = []
    var probes: [String: Probe] = [:]
    private(set) var network: NetworkNamespace?
    private var backoff: UnixSocket.AcceptBackoff?

    init(container: any ControlledContainer, bundle: String) throws(SysError) {
        self.container = container
        path = bundle + "/monitor.sock"
        fd = try UnixSocket.listen(
            directory: bundle, name: "monitor.sock", type: Int32(SOCK_STREAM.rawValue), mode: 0o600)
        do {
            backoff = try UnixSocket.serve(
                fd, loop: container.loop, accepted: { [unowned self] c in self.admit(c) },
                onReadable: { [unowned self] c in self.receive(c) })
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Only root and the monitor's own user may talk to it (SO_PEERCRED), whatever the socket
    /// file's mode. At the cap, the oldest connection that is neither subscribed nor waiting for a
    /// reply is closed for the new one; when every one is, the new one is refused.
    private func admit(_ c: Int32) -> Bool {
        var uid: UInt32 = 0
        guard sl_peer_uid(c, &uid) == 0, uid == 0 || uid == geteuid() else { return false }
        if connections.count >= Self.maxConnections {
            guard let victim = order.first(where: { connections[$0].map { !$0.subscribed && $0.busy == 0 } ?? false })
            else {
                reply(["error": .string("too many connections (\(Self.maxConnections))")], on: c)
                return false
            }
            drop(victim)
        }
        connections[c] = Connection(c)
        order.append(c)
        armIdleTimer(c)
        return true
    }

    /// A connection that sends nothing for --control-idle-timeout seconds is closed, unless it
    /// subscribed or waits for a reply.
    private func armIdleTimer(_ c: Int32) {
        guard let conn = connections[c] else { return }
        if let t = conn.idleTimer { container.loop.cancel(t) }
        conn.idleTimer = nil
        guard !conn.subscribed else { return }
        conn.idleTimer = container.loop.after(ms: Int64(container.controlIdleTimeout) * 1000) { [unowned self] in
            conn.idleTimer = nil
            guard self.connections[c] === conn else { return }
            if conn.busy > 0 { self.armIdleTimer(c) } else { self.drop(c) }
        }
    }

    private func receive(_ c: Int32) {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
            drop(c)
            return
        }
        guard n > 0, let conn = connections[c] else { return }
        armIdleTimer(c)
        let complete = buf[0..<n].contains(UInt8(ascii: "\n"))  // else only the new bytes to keep
        conn.buffer += buf[0..<n]
        while complete, connections[c] === conn, let nl = conn.buffer.firstIndex(of: UInt8(ascii: "\n")) {
            let line = Array(conn.buffer[0..<nl])
            conn.buffer.removeSubrange(0...nl)
            handle(line, from: conn)
        }
        if connections[c] === conn && conn.buffer.count > Self.maxLine {
            send(["error": .string("request line longer than \(Self.maxLine) bytes")], to: conn)
            drop(c)
        }
    }

    private func drop(_ c: Int32) {
        guard let conn = connections.removeValue(forKey: c) else { return }
        if let t = conn.idleTimer { container.loop.cancel(t) }
        order.removeAll { $0 == c }
        container.loop.unwatch(c)
        Glibc.close(c)
    }

    /// One line on a connection that is not (or no longer) in `connections`.
    private func reply(_ obj: JSONObject, on c: Int32) {
        let bytes = JSONValue.object(obj).serializedBytes() + [UInt8(ascii: "\n")]
        _ = bytes.withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    func send(_ obj: JSONObject, to conn: Connection) {
        guard connections[conn.fd] === conn else { return }  // the client left meanwhile
        let bytes = JSONValue.object(obj).serializedBytes() + [UInt8(ascii: "\n")]
        // Replies are small; a client that stops reading is dropped rather than blocking the monitor.
        let n = bytes.withUnsafeBytes {
            Glibc.send(conn.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
        if n != bytes.count { drop(conn.fd) }
    }

    func broadcast(_ event: JSONObject) {
        var e = event
        e.members.append(("time", .string(Clock.rfc3339Nano())))
        for conn in Array(connections.values) where conn.subscribed { send(e, to: conn) }
    }

    /// The container exited: subscribers get the exit event; the probes stop (their last status
    /// stays for `state`) and the network namespace is let go. The socket stays until `close`.
    func containerExited(timedOut: Bool = false) {
        broadcast([
            "event": .string("exit"), "exitCode": .number(String(container.exitCode ?? -1)),
            "oomKilled": .bool(container.oomKilled), "timedOut": .bool(timedOut),
        ])
        for p in probes.values { p.stop() }
        network = nil
    }

    func close() {
        for c in Array(connections.keys) { drop(c) }
        for p in probes.values { p.stop() }
        probes = [:]
        if let t = backoff?.timer { container.loop.cancel(t) }
        container.loop.unwatch(fd)
        Glibc.close(fd)
        unlink(path)
    }

    // MARK: - Requests

    private func handle(_ line: [UInt8], from c: Connection) {
        let request: JSONObject
        do {
            guard case .object(let o) = try JSONValue.parse(line, maxDepth: 32) else {
                throw MonitorFailure("request must be a JSON object")
            }
            request = o
        } catch let e as MonitorFailure {
            send(["error": .string(e.message)], to: c)
            return
        } catch {
            send(["error": .string("invalid JSON: \(error)")], to: c)
            return
        }
        let id = request["id"] ?? .null
        do throws(MonitorFailure) {
            guard case .string(let method)? = request["method"] else { throw MonitorFailure("missing \"method\"") }
            var params = JSONObject()
            if let p = request["params"] {
                guard case .object(let o) = p else { throw MonitorFailure("\"params\" must be an object") }
                params = o
            }
            try dispatch(method, params, id: id, client: c)
        } catch {
            send(["id": id, "error": .string(error.message)], to: c)
        }
    }

    private func dispatch(_ method: String, _ params: JSONObject, id: JSONValue, client c: Connection)
        throws(MonitorFailure)
    {
        switch method {
        case "state":
            send(["id": id, "result": .object(state())], to: c)
        case "subscribe":
            c.subscribed = true
            armIdleTimer(c.fd)
            send(["id": id, "result": .object(state())], to: c)
        case "execSync":
            let req = try ExecRequest(params)
            try ExecRunner.run(req, container: container) { [weak self] result in
                c.busy -= 1
                self?.send(["id": id, "result": .object(result.json)], to: c)
            }
            c.busy += 1
        case "checkpoint":
            let req = try CheckpointArchive.Request(params)
            try CheckpointArchive.create(req, container: container) { [weak self] result in
                c.busy -= 1
                switch result {
                case .success(let r): self?.send(["id": id, "result": .object(r)], to: c)
                case .failure(let e): self?.send(["id": id, "error": .string(e.message)], to: c)
                }
            }
            c.busy += 1
        case "addProbe":
            let spec = try ProbeSpec(params)
            guard container.exitCode == nil, container.containerPid > 0 else {
                throw MonitorFailure("container \(container.cid) is not running")
            }
            if spec.needsNetwork && network == nil {
                network = try NetworkNamespace(pid: container.containerPid)
            }
            probes[spec.name]?.stop()
            let probe = Probe(spec, server: self)
            probes[spec.name] = probe
            probe.schedule()
            send(["id": id, "result": .object(["name": .string(spec.name)])], to: c)
        case "removeProbe":
            guard case .string(let name)? = params["name"] else {
                throw MonitorFailure("params.name: missing probe name")
            }
            guard let p = probes.removeValue(forKey: name) else {
                throw MonitorFailure("params.name: no probe \"\(name)\"")
            }
            p.stop()
            send(["id": id, "result": .object([:])], to: c)
        default:
            throw MonitorFailure(
                "method: unknown method \"\(method)\" (state, subscribe, execSync, checkpoint, addProbe, removeProbe)")
        }
    }

    func state() -> JSONObject {
        var s: JSONObject = [
            "id": .string(container.cid),
            "pid": .number(String(container.containerPid)),
            "status": .string(container.exitCode == nil ? "running" : "exited"),
            "oomKilled": .bool(container.oomKilled),
        ]
        if let code = container.exitCode { s.members.append(("exitCode", .number(String(code)))) }
        s.members.append(
            ("probes", .array(probes.keys.sorted().compactMap { probes[$0].map { .object($0.status()) } })))
        return s
    }
}

// MARK: - Exec-sync

struct ExecRequest {
    var args: [String]
    var env: [String] = []
    var cwd: String?
    var user: String?
    var timeoutSeconds = 0
    var outputLimit = 16 << 20

    init(args: [String], timeoutSeconds: Int) {
        self.args = args
        self.timeoutSeconds = timeoutSeconds
    }

    init(_ p: JSONObject) throws(MonitorFailure) {
        args = try stringArray(p, "args", required: true)
        guard !args.isEmpty else { throw MonitorFailure("params.args: must not be empty") }
        env = try stringArray(p, "env", required: false)
        cwd = try optionalString(p, "cwd")
        user = try optionalString(p, "user")
        timeoutSeconds = try integer(p, "timeout", default: 0, range: 0...86400)
    }
}

struct ExecResult {
    var exitCode: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
    var timedOut: Bool

    var json: JSONObject {
        [
            "exitCode": .number(String(exitCode)), "stdout": .string(String(decoding: stdout, as: UTF8.self)),
            "stderr": .string(String(decoding: stderr, as: UTF8.self)), "timedOut": .bool(timedOut),
        ]
    }
}

/// Runs `<runtime> exec` in the foreground in its own process group, captures its output (up to a
/// limit), kills the whole group at the timeout (CRI ExecSync semantics: exit code -1 when timed out).
enum ExecRunner {
    static func run(_ r: ExecRequest, container c: any ControlledContainer, done: @escaping (ExecResult) -> Void)
        throws(MonitorFailure)
    {
        guard c.exitCode == nil, c.containerPid > 0 else { throw MonitorFailure("container \(c.cid) is not running") }
        var verb = ["exec"]
        for e in r.env { verb += ["--env", e] }
        if let cwd = r.cwd { verb += ["--cwd", cwd] }
        if let user = r.user { verb += ["--user", user] }
        verb += [c.cid] + r.args
        try CapturedCommand.run(
            c.runtimeArgv(verb), timeoutSeconds: r.timeoutSeconds, outputLimit: r.outputLimit, container: c,
            done: done)
    }
}

/// A child of the monitor (or shim) with stdout and stderr captured, in its own process group (killed as a
/// whole at the timeout or when the command exits), reported through the event loop.
enum CapturedCommand {
    static func run(
        _ args: [String], timeoutSeconds: Int, outputLimit: Int = 16 << 20, container c: any ControlledContainer,
        done: @escaping (ExecResult) -> Void
    ) throws(MonitorFailure) {
        let out: Pipe
        let err: Pipe
        do {
            out = try Pipe.make()
            err = try Pipe.make()
        } catch { throw MonitorFailure("\(args[0]): \(error)") }
        var result = ExecResult(exitCode: -1, stdout: [], stderr: [], timedOut: false)
        var open = 2
        var exited = false
        var timer: Int?
        let loop = c.loop
        func finishIfDone() {
            guard exited && open == 0 else { return }
            if let timer { loop.cancel(timer) }
            done(result)
        }
        func append(_ bytes: ArraySlice<UInt8>, toStdout: Bool) {
            if toStdout {
                result.stdout += bytes.prefix(max(0, outputLimit - result.stdout.count))
            } else {
                result.stderr += bytes.prefix(max(0, outputLimit - result.stderr.count))
            }
        }
        for (fd, isOut) in [(out.read, true), (err.read, false)] {
            _ = sl_set_nonblock(fd)
            do {
                try loop.watch(fd) { _ in
                    var buf = [UInt8](repeating: 0, count: 8192)
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        append(buf[0..<n], toStdout: isOut)
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        loop.unwatch(fd)
                        Glibc.close(fd)
                        open -= 1
                        finishIfDone()
                    }
                }
            } catch { throw MonitorFailure("\(args[0]): \(error)") }
        }
        var group: pid_t = 0
        let pid: pid_t
        do {
            pid = try c.spawnChild(
                SpawnSpec(
                    args: args, env: c.childEnv, stdout: out.write,
                    stderr: err.write, ownProcessGroup: true)
            ) { status in
                exited = true
                if !result.timedOut { result.exitCode = Proc.exitCode(status) }
                // Processes left in the group would keep the pipes open: end them with the command.
                if group > 0 { kill(-group, SIGKILL) }
                finishIfDone()
            }
        } catch {
            for fd in [out.read, err.read] {
                loop.unwatch(fd)
                Glibc.close(fd)
            }
            Glibc.close(out.write)
            Glibc.close(err.write)
            throw MonitorFailure("start \(args[0]): \(error)")
        }
        group = pid
        Glibc.close(out.write)
        Glibc.close(err.write)
        if timeoutSeconds > 0 {
            timer = loop.after(ms: Int64(timeoutSeconds) * 1000) {
                guard !exited else { return }
                result.timedOut = true
                result.exitCode = -1
                kill(-pid, SIGKILL)
            }
        }
    }
}

// MARK: - Parameter helpers (errors name the field)

func stringArray(_ p: JSONObject, _ key: String, required: Bool) throws(MonitorFailure) -> [String] {
    guard let v = p[key] else {
        if required { throw MonitorFailure("params.\(key): missing") }
        return []
    }
    guard case .array(let items) = v else { throw MonitorFailure("params.\(key): must be an array of strings") }
    var out: [String] = []
    for item in items {
        guard case .string(let s) = item else { throw MonitorFailure("params.\(key): must be an array of strings") }
        out.append(s)
    }
    return out
}

func optionalString(_ p: JSONObject, _ key: String, prefix: String = "params.") throws(MonitorFailure) -> String? {
    guard let v = p[key] else { return nil }
    guard case .string(let s) = v else { throw MonitorFailure("\(prefix)\(key): must be a string") }
    return s
}

func integer(_ p: JSONObject, _ key: String, default d: Int, range: ClosedRange<Int>, prefix: String = "params.")
    throws(MonitorFailure) -> Int
{
    guard let v = p[key] else { return d }
    guard case .number(let text) = v, let n = Int(text), range.contains(n) else {
        throw MonitorFailure("\(prefix)\(key): must be an integer in \(range.lowerBound)...\(range.upperBound)")
    }
    return n
}
