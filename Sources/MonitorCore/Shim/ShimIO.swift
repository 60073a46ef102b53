import CLinux
import Glibc
import LinuxSystem
import OCI

/// Copies bytes from `src` to `dst` in the event loop. When `dst` is full, `src` is no longer polled
/// until the pending bytes are written (the writer's slowness reaches the process, as with a pipe).
/// End of input or an error on either side finishes the pump, which closes the fds it owns.
final class Pump {
    let src: Int32
    let dst: Int32
    private let loop: EventLoop
    private let owns: (src: Bool, dst: Bool)
    private var pending: [UInt8] = []
    private(set) var finished = false

    init(src: Int32, dst: Int32, loop: EventLoop, ownsSrc: Bool, ownsDst: Bool) {
        self.src = src
        self.dst = dst
        self.loop = loop
        owns = (ownsSrc, ownsDst)
        _ = sl_set_nonblock(src)
        _ = sl_set_nonblock(dst)
    }

    func start() throws(SysError) {
        try loop.watch(src) { [weak self] _ in self?.readSome() }
    }

    private func readSome() {
        let (buf, n) = FS.readChunk(src, max: 32768)
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard n > 0 else {
            finish()
            return
        }
        pending = buf
        flush()
    }

    private func flush() {
        while !pending.isEmpty {
            let w = pending.withUnsafeBytes { Glibc.write(dst, $0.baseAddress, $0.count) }
            if w > 0 {
                pending.removeFirst(w)
            } else if w < 0 && (errno == EAGAIN || errno == EINTR) {
                loop.change(src, events: 0)
                if (try? loop.watch(dst, events: SL_EPOLLOUT, { [weak self] _ in self?.flush() })) == nil {
                    loop.change(dst, events: SL_EPOLLOUT)
                }
                return
            } else {
                finish()
                return
            }
        }
        loop.unwatch(dst)
        if !finished { loop.change(src, events: SL_EPOLLIN) }
    }

    /// Copies what the source holds now (best effort, without blocking), then finishes: CloseIO
    /// can arrive before the loop has polled the last bytes ctr wrote.
    func drainAndFinish() {
        while !finished {
            let (buf, n) = FS.readChunk(src, max: 32768)
            guard n > 0 else { break }
            pending += buf
            while !pending.isEmpty {
                let w = pending.withUnsafeBytes { Glibc.write(dst, $0.baseAddress, $0.count) }
                guard w > 0 else { break }
                pending.removeFirst(w)
            }
            if !pending.isEmpty { break }
        }
        finish()
    }

    func finish() {
        guard !finished else { return }
        finished = true
        pending = []
        loop.unwatch(src)
        loop.unwatch(dst)
        if owns.src { close(src) }
        if owns.dst { close(dst) }
    }
}

/// The stdio of one shim process. Without a terminal the process gets pipes: the shim copies its
/// output into containerd's stdout/stderr FIFOs and its stdin from the FIFO, so CloseIO can end it. With a terminal the
/// pty master
/// (from the console socket) is copied to stdout and stdin into it. The stdin FIFO is opened
/// non-blocking for reading: epoll reports it neither readable nor hung up before a writer came,
/// so its end of file is the writer's close (ctr closes it when its own stdin ends).
final class ProcessIO {
    let loop: EventLoop
    var childStdio: (Int32, Int32, Int32) = (-1, -1, -1)
    private var owned: [Int32] = []
    private var pumps: [Pump] = []
    private var stdinPump: Pump?
    var console: ConsoleSocket?
    private(set) var master: Int32 = -1
    private let paths: (stdin: String, stdout: String, stderr: String)
    let terminal: Bool
    /// The binary:// logger the output goes to, and what it is told (CONTAINER_ID, CONTAINER_NAMESPACE).
    private(set) var logger: BinaryLogger?
    private let owner: (id: String, namespace: String)

    init(
        loop: EventLoop, stdin: String, stdout: String, stderr: String, terminal: Bool, id: String = "",
        namespace: String = ""
    ) {
        self.loop = loop
        paths = (stdin, stdout, stderr)
        self.terminal = terminal
        owner = (id, namespace)
    }

    /// Opens the FIFOs (and the console socket) before the runtime runs.
    func prepare() throws(SysError) {
        let uri = LogURI(paths.stdout)
        if terminal {
            if let uri, uri.scheme != "fifo" {
                let what = "open stdio (a terminal's output goes to a FIFO, not \(uri.scheme)://)"
                throw SysError(what, paths.stdout, errno: EINVAL)
            }
            console = try ConsoleSocket.make()
            return
        }
        var stdinFd: Int32 = -1
        if !paths.stdin.isEmpty {
            let fifo = try openFifo(paths.stdin, O_RDONLY | O_NONBLOCK)
            var p: [Int32] = [-1, -1]
            try sys("pipe") { sl_pipe2(&p, O_CLOEXEC) }
            owned.append(p[0])
            stdinFd = p[0]
            let pump = Pump(src: fifo, dst: p[1], loop: loop, ownsSrc: true, ownsDst: true)
            _ = fcntl(p[0], F_SETFL, 0)
            try pump.start()
            stdinPump = pump
        }
        if let uri, uri.scheme == "binary" {
            let l = try BinaryLogger.start(uri, containerID: owner.id, namespace: owner.namespace)
            logger = l
            owned += [l.stdout, l.stderr]
            childStdio = (stdinFd, l.stdout, l.stderr)
            return
        }
        childStdio = (stdinFd, try output(paths.stdout), try output(paths.stderr))
    }

    /// The process's end of an output: a pipe the shim copies into containerd's FIFO (a read end of
    /// the FIFO kept open here, so a departed reader does not mean SIGPIPE) or into the file of a
    /// file:// URI; nothing (/dev/null) when no path was given. A pipe rather than the FIFO itself:
    /// criu dumps a process whose stdio are pipes (declared external), not one holding a host FIFO.
    private func output(_ path: String) throws(SysError) -> Int32 {
        if path.isEmpty { return -1 }
        let sink: Int32
        if let uri = LogURI(path), uri.scheme == "file" {
            // As the runc shim: the file's directory is made, the file appended to.
            try FS.mkdirAll(FS.dirname(uri.path), 0o755)
            sink = try FS.open(uri.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        } else {
            if let uri = LogURI(path), uri.scheme != "fifo" {
                throw SysError("open stdio (only FIFOs, file:// and binary:// are supported)", path, errno: EINVAL)
            }
            owned.append(try openFifo(path, O_RDONLY | O_NONBLOCK))
            sink = try openFifo(path, O_WRONLY)
        }
        var p: [Int32] = [-1, -1]
        do throws(SysError) { try sys("pipe") { sl_pipe2(&p, O_CLOEXEC) } } catch {
            Glibc.close(sink)
            throw error
        }
        let pump = Pump(src: p[0], dst: sink, loop: loop, ownsSrc: true, ownsDst: true)
        _ = fcntl(p[1], F_SETFL, 0)
        pumps.append(pump)
        owned.append(p[1])
        try pump.start()
        return p[1]
    }

    private func openFifo(_ path: String, _ flags: Int32) throws(SysError) -> Int32 {
        try FS.open(path, flags | O_CLOEXEC)
    }

    /// After the runtime ran: the terminal's master, copied to and from the FIFOs.
    func started() throws(SysError) {
        guard terminal, let console else { return }
        defer {
            console.close()
            self.console = nil
        }
        guard let m = console.receiveMaster() else {
            throw SysError("receive the pty master from the console socket", console.path, errno: EPROTO)
        }
        master = m
        if !paths.stdout.isEmpty {
            owned.append(try openFifo(paths.stdout, O_RDONLY | O_NONBLOCK))  // keep-alive read end
            let out = try openFifo(paths.stdout, O_WRONLY)
            let pump = Pump(src: m, dst: out, loop: loop, ownsSrc: false, ownsDst: true)
            try pump.start()
            pumps.append(pump)
        }
        if !paths.stdin.isEmpty {
            let fifo = try openFifo(paths.stdin, O_RDONLY | O_NONBLOCK)
            let pump = Pump(src: fifo, dst: dup(m), loop: loop, ownsSrc: true, ownsDst: true)
            try pump.start()
            stdinPump = pump
        }
    }

    /// The runtime has the process's ends now: the shim's copies go.
    func closeChildEnds() {
        for fd in [childStdio.0, childStdio.1, childStdio.2] where fd >= 0 {
            if let i = owned.firstIndex(of: fd) { owned.remove(at: i) }
            Glibc.close(fd)
        }
        childStdio = (-1, -1, -1)
    }

    func closeStdin() {
        stdinPump?.drainAndFinish()
        stdinPump = nil
    }

    func resize(width: UInt16, height: UInt16) -> Bool {
        master >= 0 && sl_set_winsize(master, height, width) == 0
    }

    func close() {
        closeStdin()
        for p in pumps { p.finish() }
        pumps = []
        closeChildEnds()
        for fd in owned { Glibc.close(fd) }
        owned = []
        if master >= 0 {
            Glibc.close(master)
            master = -1
        }
        console?.close()
        console = nil
        logger?.stop(loop)
        logger = nil
    }
}

/// What a runtime call printed and how it ended.
struct RuntimeRun {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut = false

    var ok: Bool { status == 0 && !timedOut }
}

/// Runs short-lived commands (the runtime, criu through it) to completion, bounded in time. The shim
/// is single-threaded: the event loop waits while the runtime runs, as it waits for no one else.
enum ShimCommand {
    static func run(
        _ args: [String], stdin: Int32 = -1, stdout: Int32 = -1, stderr: Int32 = -1, cwd: String? = nil,
        timeoutMs: Int32 = 60_000
    ) -> RuntimeRun {
        let out = stdout >= 0 ? -1 : sl_memfd("stdout")
        let err = stderr >= 0 ? -1 : sl_memfd("stderr")
        defer {
            if out >= 0 { close(out) }
            if err >= 0 { close(err) }
        }
        var spec = SpawnSpec(args: args, env: Spawn.childEnvironment())
        spec.stdin = stdin
        spec.stdout = stdout >= 0 ? stdout : out
        spec.stderr = stderr >= 0 ? stderr : err
        spec.cwd = cwd
        let pid: pid_t
        do { pid = try Spawn.start(spec) } catch {
            return RuntimeRun(status: 127, stdout: "", stderr: "\(error)")
        }
        var timedOut = false
        let pidfd = sl_pidfd_open(pid, 0)
        if pidfd >= 0 {
            var p = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            var r: Int32
            repeat { r = poll(&p, 1, timeoutMs) } while r < 0 && errno == EINTR
            if r == 0 {
                timedOut = true
                kill(pid, SIGKILL)
            }
            close(pidfd)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return RuntimeRun(
            status: Proc.exitCode(status), stdout: readBack(out), stderr: readBack(err), timedOut: timedOut)
    }

    private static func readBack(_ fd: Int32) -> String {
        guard fd >= 0 else { return "" }
        lseek(fd, 0, SEEK_SET)
        return String(decoding: (try? FS.readAll(fd: fd)) ?? [], as: UTF8.self)
    }

    /// A memfd holding `bytes`, positioned at its start (a child's stdin).
    static func memfd(_ bytes: [UInt8]) -> Int32 {
        let fd = sl_memfd("stdin")
        guard fd >= 0 else { return -1 }
        _ = try? FS.writeAll(fd: fd, bytes)
        lseek(fd, 0, SEEK_SET)
        return fd
    }

    /// `name` on $PATH (execve does not search it).
    static func lookPath(_ name: String) -> String? {
        if name.contains("/") { return name }
        let path =
            getenv("PATH").map { String(cString: $0) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 { return "\(dir)/\(name)" }
        return nil
    }
}

/// How the shim calls swiftlet: the binary (runtime options' BinaryName, else the `swiftlet` beside
/// the shim, else on $PATH), its --root (options' Root, else /run/containerd/swiftlet, + /<namespace>),
/// --criu and --systemd-cgroup; create and restore get --no-pivot, --no-new-keyring and restore
/// --work-path from the options; errors come back through `--log <bundle>/log.json --log-format json`.
struct ShimRuntime: Equatable {
    var binary: String
    var root: String
    var criu = ""
    var systemdCgroup = false
    var noPivot = false
    var noNewKeyring = false
    var criuWorkPath = ""

    static func defaults(namespace: String) -> ShimRuntime {
        var binary = "swiftlet"
        if let exe = try? FS.realpath("/proc/self/exe"), FS.exists(FS.dirname(exe) + "/swiftlet") {
            binary = FS.dirname(exe) + "/swiftlet"
        }
        return ShimRuntime(binary: binary, root: "/run/containerd/swiftlet/" + namespace)
    }

    /// The options applied; a Root gets the namespace appended, as the runc shim does.
    func with(_ o: RuntimeOptions, namespace: String) -> ShimRuntime {
        var r = self
        if !o.binaryName.isEmpty { r.binary = o.binaryName }
        if !o.root.isEmpty { r.root = o.root + "/" + namespace }
        r.criu = o.criuPath
        r.systemdCgroup = o.systemdCgroup
        r.noPivot = o.noPivotRoot
        r.noNewKeyring = o.noNewKeyring
        r.criuWorkPath = o.criuWorkPath
        return r
    }

    /// The options of `create` and `restore`.
    var createFlags: [String] {
        (noPivot ? ["--no-pivot"] : []) + (noNewKeyring ? ["--no-new-keyring"] : [])
    }

    /// The binary's path, checked before anything is created: a BinaryName that is not there is the
    /// Create's error, not a failed runtime call.
    func resolvedBinary() throws(RPCError) -> String {
        guard let path = ShimCommand.lookPath(binary) else {
            throw RPCError(.invalidArgument, "runtime options: BinaryName \(binary): not found in $PATH")
        }
        guard access(path, X_OK) == 0 else {
            throw RPCError(.invalidArgument, "runtime options: BinaryName \(path): \(errnoString(errno))")
        }
        return path
    }

    func command(_ verb: [String], bundle: String, log: Bool = true) -> [String] {
        var a = [ShimCommand.lookPath(binary) ?? binary, "--root", root]
        if log { a += ["--log", bundle + "/log.json", "--log-format", "json"] }
        if systemdCgroup { a.append("--systemd-cgroup") }
        if !criu.isEmpty { a += ["--criu", criu] }
        return a + verb
    }

    /// The runtime's error: the last error in its JSON log, else its stderr, else its status.
    static func failure(_ r: RuntimeRun, _ what: String, bundle: String) -> RPCError {
        if r.timedOut { return RPCError(.deadlineExceeded, "\(what): the runtime did not finish in time") }
        var message = r.stderr.split(separator: "\n").last.map(String.init) ?? ""
        if let log = try? FS.readString(bundle + "/log.json") {
            for line in log.split(separator: "\n").reversed() {
                if case .object(let o)? = try? JSONValue.parse(String(line)), case .string(let m)? = o["msg"],
                    case .string("error")? = o["level"]
                {
                    message = m
                    break
                }
            }
        }
        if message.isEmpty { message = "exit status \(r.status)" }
        let notFound =
            message.contains("does not exist") || message.contains("not running") || message.contains("not found")
        return RPCError(notFound ? .notFound : .unknown, "\(what): \(message)")
    }

    /// Stored in the bundle at Create, so `delete` after a crash uses the same binary and root.
    func save(bundle: String) {
        try? FS.writeFileAtomic(
            bundle + "/swiftlet-shim.runtime", Array((binary + "\n" + root + "\n").utf8), mode: 0o600, durable: false)
    }

    static func load(bundle: String, namespace: String) -> ShimRuntime {
        var r = defaults(namespace: namespace)
        if let text = try? FS.readString(bundle + "/swiftlet-shim.runtime") {
            let lines = text.split(separator: "\n").map(String.init)
            if lines.count >= 2 {
                r.binary = lines[0]
                r.root = lines[1]
            }
        }
        return r
    }
}
