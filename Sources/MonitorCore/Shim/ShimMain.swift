import Argv
import CLinux
import Checkpoint
import Glibc
import LinuxSystem
import Mounts
import OCI

/// The name containerd runs for `runtime_type = "io.containerd.swiftlet.v2"`; swiftlet-monitor
/// entered by this name (a symlink or copy) is the shim.
public let shimBinaryName = "containerd-shim-swiftlet-v2"

/// Logs to the `log` FIFO containerd opens in the bundle (logrus' text format), dropped when no one
/// reads it: the shim never blocks on its log.
final class ShimLog {
    private var fd: Int32 = -1
    let debug: Bool

    init(bundle: String, debug: Bool) {
        self.debug = debug
        fd = Glibc.open(bundle + "/log", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
    }

    func write(_ message: String, level: String = "info") {
        guard fd >= 0, level != "debug" || debug else { return }
        var escaped = ""
        for ch in message { escaped += ch == "\"" ? "\\\"" : ch == "\n" ? "\\n" : String(ch) }
        let line = "level=\(level) msg=\"\(escaped)\" runtime=io.containerd.swiftlet.v2\n"
        _ = line.withCString { Glibc.write(fd, $0, strlen($0)) }
    }
}

/// Publishes events to containerd one at a time, in order. First choice, as containerd 1.6's own shims
/// do: a ttrpc call `containerd.services.events.ttrpc.v1.Events/Forward` on containerd's ttrpc socket
/// ($TTRPC_ADDRESS, which containerd gives its shims). Without it, or when that connection fails:
/// `<publish-binary> --address A publish --topic T --namespace N` with the event as a protobuf Any on
/// stdin. Each event gets publishTimeoutMs.
final class EventPublisher {
    static let publishTimeoutMs: Int64 = 30_000
    static let forwardService = "containerd.services.events.ttrpc.v1.Events"
    let binary: String
    let address: String
    let namespace: String
    let ttrpcAddress: String
    private let loop: EventLoop
    private let log: ShimLog
    private var queue: [ShimEvent] = []
    /// The publisher process in flight, or the event forwarded over ttrpc awaiting its reply.
    private var current: pid_t = 0
    private var forwarding: (event: ShimEvent, stream: UInt32)?
    private var timer = 0
    private var ttrpc: Int32 = -1
    private var reader = FrameReader()
    private var nextStream: UInt32 = 1
    var idle: Bool { current == 0 && forwarding == nil && queue.isEmpty }
    var onIdle: (() -> Void)?

    init(binary: String, address: String, namespace: String, loop: EventLoop, log: ShimLog, ttrpcAddress: String = "") {
        self.binary = binary
        self.address = address
        self.namespace = namespace
        self.ttrpcAddress = ttrpcAddress
        self.loop = loop
        self.log = log
    }

    func publish(_ e: ShimEvent) {
        log.write("publish \(e.topic)", level: "debug")
        queue.append(e)
        if current == 0 && forwarding == nil { next() }
    }

    private func next() {
        while current == 0, forwarding == nil, !queue.isEmpty {
            let e = queue.removeFirst()
            if forward(e) { return }
            spawnPublisher(e)
        }
        if idle { onIdle?() }
    }

    // MARK: ttrpc

    /// ForwardRequest{envelope=1: Envelope{timestamp=1, namespace=2, topic=3, event=4}}.
    static func forwardRequest(_ e: ShimEvent, namespace: String, at: Timestamp) -> [UInt8] {
        var w = ProtoWriter()
        w.message(1) { env in
            at.encode(1, &env)
            env.string(2, namespace)
            env.string(3, e.topic)
            env.message(4) { e.any.encode(&$0) }
        }
        return w.bytes
    }

    private func forward(_ e: ShimEvent) -> Bool {
        guard !ttrpcAddress.isEmpty, connect() else { return false }
        let stream = nextStream
        nextStream &+= 2
        let request = TTRPCRequest(
            service: Self.forwardService, method: "Forward",
            payload: Self.forwardRequest(e, namespace: namespace, at: Timestamp.now()),
            metadata: [("containerd-namespace-ttrpc", namespace)])
        let bytes = TTRPCFrame(stream: stream, type: TTRPCFrame.request, payload: request.encode()).encode()
        let n = bytes.withUnsafeBytes {
            Glibc.send(ttrpc, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
        guard n == bytes.count else {
            log.write(
                "forward \(e.topic) to \(ttrpcAddress): \(n < 0 ? errnoString(errno) : "short write")", level: "error")
            disconnect()
            return false
        }
        forwarding = (e, stream)
        timer = loop.after(ms: Self.publishTimeoutMs) { [weak self] in
            guard let self, let f = self.forwarding, f.stream == stream else { return }
            self.log.write("forwarding \(e.topic) timed out", level: "error")
            self.failForward()
        }
        return true
    }

    private func connect() -> Bool {
        if ttrpc >= 0 { return true }
        let path = ttrpcAddress.hasPrefix("unix://") ? String(ttrpcAddress.dropFirst(7)) : ttrpcAddress
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        let r = try? withUnixAddress(path, op: "connect") { (addr, len) throws(SysError) -> Int32 in
            Glibc.connect(fd, addr, len)
        }
        guard r == 0, (try? loop.watch(fd, { [weak self] _ in self?.readReplies() })) != nil else {
            log.write("connect \(path): \(errnoString(errno)); publishing with \(binary)", level: "debug")
            close(fd)
            return false
        }
        _ = sl_set_nonblock(fd)
        ttrpc = fd
        reader = FrameReader()
        return true
    }

    private func disconnect() {
        guard ttrpc >= 0 else { return }
        loop.unwatch(ttrpc)
        close(ttrpc)
        ttrpc = -1
    }

    private func readReplies() {
        while ttrpc >= 0 {
            let (buf, n) = FS.readChunk(ttrpc, max: 4096)
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            guard n > 0 else { return failForward() }
            reader.append(buf[...])
            while case .frame(let f) = reader.next() {
                guard let fw = forwarding, f.stream == fw.stream else { continue }
                if let r = try? TTRPCResponse.decode(f.payload), r.code != 0 {
                    log.write("containerd refused \(fw.event.topic): \(r.message)", level: "error")
                }
                loop.cancel(timer)
                forwarding = nil
                next()
            }
            if case .oversized = reader.next() { return failForward() }
        }
    }

    /// The ttrpc connection broke: the event in flight goes out through the publish binary.
    private func failForward() {
        disconnect()
        loop.cancel(timer)
        guard let fw = forwarding else { return }
        forwarding = nil
        spawnPublisher(fw.event)
        if current == 0 { next() }
    }

    // MARK: the publish binary

    private func spawnPublisher(_ e: ShimEvent) {
        guard !binary.isEmpty else { return }
        let input = ShimCommand.memfd(e.any.bytes)
        defer { if input >= 0 { close(input) } }
        var spec = SpawnSpec(
            args: [binary, "--address", address, "publish", "--topic", e.topic, "--namespace", namespace],
            env: Spawn.childEnvironment())
        spec.stdin = input
        spec.dieWithMonitor = false
        do {
            current = try Spawn.start(spec)
            let pid = current
            timer = loop.after(ms: Self.publishTimeoutMs) { [weak self] in
                guard let self, self.current == pid else { return }
                self.log.write("publishing \(e.topic) timed out", level: "error")
                Glibc.kill(pid, SIGKILL)
            }
        } catch {
            log.write("publish \(e.topic): \(error)", level: "error")
        }
    }

    /// True when `pid` was a publisher (the next event goes out).
    func reaped(pid: pid_t, status: Int32) -> Bool {
        guard pid == current, pid != 0 else { return false }
        loop.cancel(timer)
        if status != 0 { log.write("\(binary) publish exited with status \(waitStatusCode(status))", level: "error") }
        current = 0
        next()
        return true
    }
}

/// The shim's command line: Go flag syntax (`-name value`, `-name=value`, `--name`), then the action.
struct ShimFlags: Equatable {
    var namespace = "", address = "", publishBinary = "", id = "", bundle = "", socket = ""
    var debug = false
    var action = ""

    static let options: [OptionSpec] = [
        .string("namespace", usage: "namespace that owns the shim"),
        .string("address", usage: "grpc address back to main containerd"),
        .string("publish-binary", usage: "path to publish binary (used for publishing events)"),
        .string("id", usage: "id of the task"),
        .string("bundle", usage: "path to the bundle if not workdir"),
        .string("socket", usage: "the socket the long-lived shim serves (set by start)", hidden: true),
        .bool("debug", "v", usage: "enable debug output in logs"),
    ]

    static func parse(_ args: [String]) throws(RPCError) -> ShimFlags {
        let o: ParsedOptions
        do { o = try parseGoFlags(args, options: options) } catch {
            throw RPCError(.invalidArgument, error.message)
        }
        return ShimFlags(
            namespace: o.string("namespace") ?? "", address: o.string("address") ?? "",
            publishBinary: o.string("publish-binary") ?? "", id: o.string("id") ?? "",
            bundle: o.string("bundle") ?? "", socket: o.string("socket") ?? "", debug: o.bool("debug"),
            action: o.positionals.first ?? "")
    }
}

/// Entry point of `containerd-shim-swiftlet-v2`.
public func runShim(_ argv: [String]) -> Int32 {
    let flags: ShimFlags
    do { flags = try ShimFlags.parse(Array(argv.dropFirst())) } catch {
        printErr("\(shimBinaryName): \(error.message)")
        return 2
    }
    if flags.namespace.isEmpty && flags.action != "" {
        printErr("\(shimBinaryName): shim namespace cannot be empty")
        return 1
    }
    switch flags.action {
    case "start": return shimStart(flags)
    case "delete": return shimDelete(flags)
    case "": return shimServe(flags)
    default:
        printErr("\(shimBinaryName): unknown action \"\(flags.action)\" (start, delete)")
        return 2
    }
}

/// Socket directory containerd 1.6 uses for its shims.
let shimSocketDir = "/run/containerd/s"

/// The socket of the shim serving `group` (a pod sandbox or a lone container) for this containerd
/// and namespace: a hash, so the path fits sun_path.
func shimSocketPath(address: String, namespace: String, group: String) -> String {
    let key = Array((address + "\u{0}" + namespace + "\u{0}" + group).utf8)
    var hex = ""
    for seed: UInt64 in [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4] {
        var h = seed
        for b in key { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        var s = String(h, radix: 16)
        while s.count < 16 { s = "0" + s }
        hex += s
    }
    return shimSocketDir + "/" + hex
}

/// A pod's containers share one shim: the sandbox id annotation CRI puts in every container's spec.
func shimGroup(bundle: String, id: String) -> String {
    guard let bytes = try? FS.readFile(bundle + "/config.json"), case .object(let spec)? = try? JSONValue.parse(bytes),
        case .object(let ann)? = spec["annotations"], case .string(let sandbox)? = ann["io.kubernetes.cri.sandbox-id"],
        !sandbox.isEmpty
    else { return id }
    return sandbox
}

private func connectable(_ path: String) -> Bool {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let r = try? withUnixAddress(path, op: "connect") { (addr, len) throws(SysError) -> Int32 in
        Glibc.connect(fd, addr, len)
    }
    return r == 0
}

/// `start`: reuse the group's running shim, or start one listening on a new socket; print the address.
private func shimStart(_ f: ShimFlags) -> Int32 {
    let bundle = FS.cwd()
    let path = shimSocketPath(address: f.address, namespace: f.namespace, group: shimGroup(bundle: bundle, id: f.id))
    let address = "unix://" + path
    if !connectable(path) {
        do throws(SysError) {
            try FS.mkdirAll(shimSocketDir, 0o711)
            let name = String(path.dropFirst(shimSocketDir.count + 1))
            let listener = try UnixSocket.listen(
                directory: shimSocketDir, name: name, type: Int32(SOCK_STREAM.rawValue), mode: 0o600)
            // The daemon finds its socket at fd 3 (dup2 clears close-on-exec there).
            if listener != 3 {
                try sys("dup2") { dup2(listener, 3) }
                close(listener)
            }
            var args = [
                shimBinaryName, "-namespace", f.namespace, "-id", f.id, "-address", f.address,
                "-publish-binary", f.publishBinary, "-socket", path,
            ]
            if f.debug { args.append("-debug") }
            var spec = SpawnSpec(args: args, env: Spawn.childEnvironment())
            spec.program = "/proc/self/exe"
            spec.cwd = bundle
            spec.dieWithMonitor = false
            _ = try Spawn.start(spec)
            close(3)
        } catch {
            unlink(path)
            printErr("\(shimBinaryName) start: \(error)")
            return 1
        }
    }
    do throws(SysError) {
        try FS.writeFileAtomic(bundle + "/address", Array(address.utf8), mode: 0o600, durable: false)
    } catch {
        printErr("\(shimBinaryName) start: \(error)")
        return 1
    }
    printOut(address)
    return 0
}

/// `delete`: containerd lost the shim; force-delete the container, unmount its rootfs and print a
/// DeleteResponse (exit status 137: it was killed).
private func shimDelete(_ f: ShimFlags) -> Int32 {
    let bundle = f.bundle.isEmpty ? FS.cwd() : f.bundle
    guard !f.id.isEmpty else {
        printErr("\(shimBinaryName) delete: -id is required")
        return 1
    }
    let runtime = ShimRuntime.load(bundle: bundle, namespace: f.namespace)
    let run = ShimCommand.run(runtime.command(["delete", "--force", f.id], bundle: bundle), cwd: bundle)
    let logText = (try? FS.readString(bundle + "/log.json")) ?? ""
    if !run.ok && !(run.stderr + logText).contains("does not exist") {
        printErr("\(shimBinaryName) delete: \(ShimRuntime.failure(run, "delete", bundle: bundle).message)")
    }
    unmountStack(bundle + "/rootfs")
    // The dead shim's socket, unless a shim (of the same pod) still answers there.
    if let address = try? FS.readString(bundle + "/address"), address.hasPrefix("unix://" + shimSocketDir + "/") {
        let path = String(address.dropFirst(7))
        if !connectable(path) { unlink(path) }
    }
    unlink(bundle + "/monitor.sock")  // the dead shim's control socket (Spec/monitor.md)
    let reply = ShimReplies.delete(pid: 0, status: 128 + UInt32(SIGKILL), at: Timestamp.now())
    do throws(SysError) { try FS.writeAll(fd: 1, reply) } catch { return 1 }
    return 0
}

/// The long-lived shim: the ttrpc server on fd 3, the task service, the reaper.
private func shimServe(_ f: ShimFlags) -> Int32 {
    let bundle = FS.cwd()
    let log = ShimLog(bundle: bundle, debug: f.debug)
    _ = setsid()  // out of containerd's session: a signal to its group does not reach the shim
    // Entered through /proc/self/exe, the process would be called "exe"; ps shows what the runc shim shows.
    _ = "containerd-shim".withCString { sl_prctl(SL_PR_SET_NAME, UInt(bitPattern: $0), 0, 0, 0) }
    guard sl_sigmask_block_all() == 0 else { return 1 }
    let sfd = sl_signalfd_all()
    guard sfd >= 0 else {
        log.write("signalfd: \(errnoString(errno))", level: "error")
        return 1
    }
    do { try Proc.setChildSubreaper() } catch { log.write("\(error)", level: "error") }
    let loop = EventLoop()
    let ttrpcAddress = getenv("TTRPC_ADDRESS").map { String(cString: $0) } ?? ""
    let publisher = EventPublisher(
        binary: f.publishBinary, address: f.address, namespace: f.namespace, loop: loop, log: log,
        ttrpcAddress: ttrpcAddress)
    let service = TaskService(loop: loop, publisher: publisher, namespace: f.namespace, log: log)
    let server = TTRPCServer(loop: loop, handler: service.handle)
    var stopping = false
    service.onShutdown = {
        stopping = true
        if publisher.idle { loop.running = false }
    }
    publisher.onIdle = { if stopping { loop.running = false } }
    do {
        try server.serve(listener: 3)
        try loop.watch(sfd) { _ in
            while true {
                let sig = sl_signalfd_read(sfd)
                if sig <= 0 { break }
                guard sig == SIGCHLD else { continue }
                var status: Int32 = 0
                while true {
                    let pid = waitpid(-1, &status, WNOHANG)
                    if pid <= 0 { break }
                    if !publisher.reaped(pid: pid, status: status) { service.reaped(pid: pid, status: status) }
                }
            }
        }
    } catch {
        log.write("\(error)", level: "error")
        return 1
    }
    log.write("shim \(getpid()) serving \(f.socket)", level: "debug")
    loop.run()
    service.closeControlSockets()
    if !f.socket.isEmpty { unlink(f.socket) }
    return 0
}
