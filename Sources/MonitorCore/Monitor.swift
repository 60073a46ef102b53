import CLinux
import Cgroups
import Glibc
import LinuxSystem

public let monitorVersion = "0.1.0"

/// Entry point of `swiftlet-monitor`: returns the process exit status.
public func runMonitor(_ argv: [String]) -> Int32 {
    let o: MonitorOptions
    do { o = try parseMonitorOptions(Array(argv.dropFirst())) } catch {
        printErr("swiftlet-monitor: \(error.message)")
        // The agent waits on the sync pipe: tell it too (the key as the flags we could read ask for).
        SyncPipe.fromEnvironment(
            apiVersion: argv.contains("--api-version"), exec: argv.contains("-e") || argv.contains("--exec"))?
            .fail(error.message)
        return 1
    }
    if o.help {
        printOut(monitorUsage)
        return 0
    }
    if o.version {
        // podman and CRI-O parse "conmon version X.Y.Z"; we speak conmon 2.1.6's protocol.
        printOut("conmon version 2.1.6\ncommit: swiftlet-monitor \(monitorVersion)")
        return 0
    }
    let sync = SyncPipe.fromEnvironment(apiVersion: o.apiVersion, exec: o.exec)
    do { try validate(o) } catch {
        printErr("swiftlet-monitor: \(error.message)")
        sync?.fail(error.message)
        return 1
    }
    return Monitor(o, sync: sync).run()
}

/// A failure of the monitor: a bad command line, a control-API request, setting up or running the
/// container. `message` is what the caller gets (stderr, the sync pipe, the control socket).
public struct MonitorFailure: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// The container's output goes to: the log files, attach clients, control-API subscribers.
final class Monitor {
    let o: MonitorOptions
    let cid: String
    let sync: SyncPipe?
    let startPipe: Int32?
    let attachPipe: Int32?
    let loop: EventLoop
    var bundle: String?
    var logs: [K8sFileLog] = []
    var journal: JournalLog?
    var notifyRelay: NotifyRelay?
    var passthrough = false
    var attach: AttachServer?
    var control: ControlServer?
    var oom: OOMWatcher?
    var oomKilled = false

    /// Container stdio, monitor side.
    var stdinWrite: Int32 = -1
    var stdoutRead: Int32 = -1
    var stderrRead: Int32 = -1
    var ptyMaster: Int32 = -1

    var containerPid: pid_t = 0
    /// When the container was created (RFC 3339), for checkpoint archives.
    var startedAt = ""
    /// CRIU images to restore from: --restore DIR, or the checkpoint/ of an unpacked --restore ARCHIVE.tar.
    var restoreImages: String?
    var exitCode: Int32?
    var timedOut = false
    /// Children other than the container (runtime exec for probes/exec-sync, ...).
    var childHandlers: [pid_t: (Int32) -> Void] = [:]
    var cleanupPaths: [String] = []
    /// The environment every child gets (ours without the pipe variables); it does not change.
    let childEnv = Spawn.childEnvironment()

    init(_ o: MonitorOptions, sync: SyncPipe?) {
        self.o = o
        self.cid = o.cid ?? ""
        self.sync = sync
        self.startPipe = fdFromEnvironment("_OCI_STARTPIPE")
        self.attachPipe = fdFromEnvironment("_OCI_ATTACHPIPE")
        self.loop = EventLoop()
    }

    func run() -> Int32 {
        do {
            try start()
        } catch {
            printErr("swiftlet-monitor: \(error.message)")
            sync?.fail(error.message)
            removeCleanupPaths()
            return 1
        }
        // Start-up garbage (options, mountinfo, JSON) goes back to the kernel before the long wait.
        _ = sl_malloc_trim()
        loop.run()
        return finish()
    }

    // MARK: - Start-up

    private func start() throws(MonitorFailure) {
        if let s = startPipe { waitForStartByte(s) }
        bundle = o.bundle ?? (o.exec ? nil : FS.cwd())
        let pidFile = o.containerPidFile ?? FS.cwd() + "/pidfile-" + cid
        let savedStdio = try setUpLogDrivers()
        try daemonize()
        detachStdio()
        try watchSignals()
        var stdio = try makeContainerStdio(passthrough: passthrough ? savedStdio : nil)
        defer { stdio.console?.close() }

        if o.execAttach, let bundle {
            attach = try openAttachSocket(bundle)
            if let a = attachPipe { SyncPipe(fd: a, key: "data").send(0) }
            if let s = startPipe { waitForStartByte(s) }
        }
        if let restore = o.restore {
            if let st = FS.statOf(restore), st.st_mode & S_IFMT == S_IFREG, let bundle {
                restoreImages = try CheckpointArchive.unpack(restore, bundle: bundle, env: childEnv)
            } else {
                restoreImages = restore
            }
        }
        try runRuntime(pidFile: pidFile, &stdio)
        guard let text = try? FS.readString(pidFile), let pid = pid_t(trimmed(text)), pid > 1 else {
            throw MonitorFailure("read the container pid from \(pidFile): no pid written by the runtime")
        }
        containerPid = pid
        startedAt = Clock.rfc3339Nano()
        if let console = stdio.console {
            guard let master = console.receiveMaster() else { throw MonitorFailure("Runtime did not set up terminal") }
            ptyMaster = master
            console.close()
            stdio.console = nil
        }
        try serve(pid)
    }

    /// Without --sync: fork, the parent writes the conmon pid file and exits, the child goes on in a
    /// session of its own.
    private func daemonize() throws(MonitorFailure) {
        if !o.sync {
            let pid: pid_t
            do { pid = try Proc.fork() } catch { throw MonitorFailure("fork: \(error)") }
            if pid > 0 {
                if let p = o.conmonPidFile { writePidFile(p, pid) }
                _exit(0)
            }
            _ = setsid()
        } else if let p = o.conmonPidFile {
            writePidFile(p, getpid())
        }
    }

    /// The sd-notify relay, subreaper, and every signal through the event loop (signalfd).
    private func watchSignals() throws(MonitorFailure) {
        if let host = o.sdnotifySocket, let bundle {
            do { notifyRelay = try NotifyRelay(bundle: bundle, host: host, loop: loop) } catch {
                throw MonitorFailure("sd-notify socket: \(error)")
            }
        }
        do {
            try Proc.setChildSubreaper()
            try sys("sigprocmask") { sl_sigmask_block_all() }
            let sfd = try sys("signalfd") { sl_signalfd_all() }
            try loop.watch(sfd) { [unowned self] _ in self.onSignals(sfd) }
        } catch { throw MonitorFailure("\(error)") }
    }

    /// The runtime's side of the container's stdio (closed once it has started), and where its
    /// errors are read when it fails.
    struct ContainerStdio {
        var child: [Int32] = [-1, -1, -1]
        var ownsChildFds = true
        var runtimeErr: Int32 = -1
        var console: ConsoleSocket?
    }

    private func makeContainerStdio(passthrough saved: (Int32, Int32, Int32)?) throws(MonitorFailure) -> ContainerStdio
    {
        var s = ContainerStdio()
        do {
            if let saved {
                s.child = [saved.0, saved.1, saved.2]
                s.ownsChildFds = false
            } else if o.terminal {
                s.console = try ConsoleSocket.make()
                let p = try Pipe.make()
                s.runtimeErr = p.read
                s.child = [-1, p.write, p.write]
            } else {
                if o.stdin {
                    let p = try Pipe.make()
                    s.child[0] = p.read
                    stdinWrite = p.write
                }
                let out = try Pipe.make()
                let err = try Pipe.make()
                s.child[1] = out.write
                s.child[2] = err.write
                stdoutRead = out.read
                stderrRead = err.read
            }
        } catch { throw MonitorFailure("set up container stdio: \(error)") }
        return s
    }

    /// Runs `swiftlet create|exec|restore` and waits for it (the runtime returns once the container
    /// is created); its error output becomes ours when it fails.
    private func runRuntime(pidFile: String, _ stdio: inout ContainerStdio) throws(MonitorFailure) {
        let args = runtimeCommand(pidFile: pidFile, consoleSocket: stdio.console?.path)
        let runtimePid: pid_t
        do {
            var spec = SpawnSpec(
                args: args, env: childEnv, stdin: stdio.child[0], stdout: stdio.child[1],
                stderr: stdio.child[2], ownProcessGroup: o.exec)
            spec.replaceListenPid = o.replaceListenPid
            runtimePid = try Spawn.start(spec)
        } catch {
            throw MonitorFailure("start runtime \(args[0]): \(error)")
        }
        if stdio.ownsChildFds {
            for fd in Set(stdio.child) where fd >= 0 { close(fd) }
        }
        var status: Int32 = 0
        while waitpid(runtimePid, &status, 0) < 0 && errno == EINTR {}
        if Proc.exitCode(status) != 0 {
            var text = readAvailable(stdio.runtimeErr >= 0 ? stdio.runtimeErr : stderrRead)
            if text.isEmpty { text = readAvailable(stdoutRead) }
            let verb = o.exec ? "exec" : (o.restore != nil ? "restore" : "create")
            throw MonitorFailure(
                text.isEmpty ? "runtime \(verb) failed with exit status \(Proc.exitCode(status))" : text)
        }
        if stdio.runtimeErr >= 0 { close(stdio.runtimeErr) }
    }

    /// The container exists: its output, attach and control sockets, the sync report, OOM and timeout.
    private func serve(_ pid: pid_t) throws(MonitorFailure) {
        try setUpStreams()
        if let bundle, !o.exec || o.execAttach {
            if attach == nil && !passthrough { attach = try openAttachSocket(bundle) }
            try makeControlFifos(bundle)
        }
        // Reported once the attach socket exists: podman attaches, then runs `start`. The rest can
        // follow: the container does not run before `start`.
        if !o.exec, let bundle {
            do { control = try ControlServer(container: self, bundle: bundle) } catch {
                throw MonitorFailure("control socket in \(bundle): \(error)")
            }
        }
        if o.apiVersion || !o.exec { sync?.send(pid) }
        watchOOM()
        if o.timeout > 0 {
            loop.after(ms: Int64(o.timeout) * 1000) { [unowned self] in self.onTimeout() }
        }
    }

    /// The conmon pid file (-P), written as the exit files are: never through a planted symlink.
    private func writePidFile(_ path: String, _ pid: pid_t) {
        do { try FS.writeFileAtomic(path, Array(String(pid).utf8), mode: 0o644, durable: false) } catch {
            printErr("swiftlet-monitor: write pid file: \(error)")
        }
    }

    private func waitForStartByte(_ fd: Int32) {
        var b: UInt8 = 0
        while read(fd, &b, 1) < 0 && errno == EINTR {}
    }

    /// -l values: k8s-file:PATH or a bare PATH, journald[:...], passthrough, none/off/null. Returns dups
    /// of our stdio for passthrough.
    private func setUpLogDrivers() throws(MonitorFailure) -> (Int32, Int32, Int32) {
        for spec in o.logPaths {
            if spec == "none" || spec == "off" || spec == "null" { continue }
            if spec == "passthrough" {
                if o.terminal { throw MonitorFailure("passthrough log driver cannot be combined with --terminal") }
                passthrough = true
                continue
            }
            if spec == "journald" || spec.hasPrefix("journald:") {
                if journal != nil { continue }
                do {
                    journal = try JournalLog(identity: JournalIdentity(containerID: cid, name: o.name, tag: o.logTag))
                } catch {
                    throw MonitorFailure("journald log driver: \(error)")
                }
                continue
            }
            var path = spec
            if spec.hasPrefix("k8s-file:") {
                path = String(spec.dropFirst("k8s-file:".count))
            } else if let colon = spec.firstIndex(of: ":"), !spec.hasPrefix("/") {
                throw MonitorFailure("No such log driver \(spec[..<colon])")
            }
            guard !path.isEmpty else { throw MonitorFailure("log path is empty in -l \(spec)") }
            do { logs.append(try K8sFileLog(path: path, sizeMax: o.logSizeMax)) } catch {
                throw MonitorFailure("open log file: \(error)")
            }
        }
        guard passthrough else { return (-1, -1, -1) }
        return (fcntl(0, F_DUPFD_CLOEXEC, 3), fcntl(1, F_DUPFD_CLOEXEC, 3), fcntl(2, F_DUPFD_CLOEXEC, 3))
    }

    /// The daemon must not hold the caller's terminal or pipes.
    private func detachStdio() {
        let null = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { return }
        for fd: Int32 in 0...2 { _ = dup2(null, fd) }
        if null > 2 { close(null) }
    }

    private func runtimeCommand(pidFile: String, consoleSocket: String?) -> [String] {
        var a = [o.runtime ?? ""]
        if o.systemdCgroup && !o.exec { a.append("--systemd-cgroup") }
        a += o.runtimeArgs
        if o.exec {
            a += ["exec", "--pid-file", pidFile, "--process", o.execProcessSpec ?? "", "--detach"]
        } else {
            a += [o.restore != nil ? "restore" : "create", "--bundle", bundle ?? "", "--pid-file", pidFile]
            if o.noPivot { a.append("--no-pivot") }
            if o.noNewKeyring { a.append("--no-new-keyring") }
        }
        a += o.runtimeOpts
        if let restore = restoreImages { a += ["--detach", "--image-path", restore, "--work-path", bundle ?? ""] }
        if let consoleSocket { a += ["--console-socket", consoleSocket] }
        a.append(cid)
        return a
    }

    // MARK: - Streams

    private func setUpStreams() throws(MonitorFailure) {
        do {
            if ptyMaster >= 0 {
                _ = sl_set_nonblock(ptyMaster)
                let master = ptyMaster
                try loop.watch(master) { [unowned self] ev in self.onOutput(master, .stdout, ev) }
                stdinWrite = ptyMaster
            }
            for (fd, stream) in [(stdoutRead, Stream.stdout), (stderrRead, Stream.stderr)] where fd >= 0 {
                _ = sl_set_nonblock(fd)
                try loop.watch(fd) { [unowned self] ev in self.onOutput(fd, stream, ev) }
            }
        } catch { throw MonitorFailure("watch container output: \(error)") }
    }

    private var readBuffer = [UInt8](repeating: 0, count: 8192)

    /// One read of container output: to the logs, attach clients and subscribers.
    func onOutput(_ fd: Int32, _ stream: Stream, _ events: UInt32) {
        let n = readBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            deliver(readBuffer[0..<n], stream)
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            closeOutput(fd)
        }
    }

    private func deliver(_ chunk: ArraySlice<UInt8>, _ stream: Stream) {
        for log in logs {
            let dropped = log.droppedRecords
            log.write(chunk, stream: stream)
            if log.droppedRecords > dropped && dropped == 0 { reportLogError(log.path, log.lastError) }
        }
        if let journal {
            let dropped = journal.droppedRecords
            journal.write(chunk, stream: stream)
            if journal.droppedRecords > dropped && dropped == 0 { reportLogError(journal.path, journal.lastError) }
        }
        attach?.broadcast(chunk, stream: stream)
    }

    /// A log's first dropped record: one `log-error` event.
    private func reportLogError(_ path: String, _ message: String?) {
        control?.broadcast(["event": .string("log-error"), "path": .string(path), "message": .string(message ?? "")])
    }

    private func closeOutput(_ fd: Int32) {
        loop.unwatch(fd)
        if fd == ptyMaster {
            // EIO once the last slave closes: the master stays open for stdin/resize until exit.
            return
        }
        close(fd)
        if fd == stdoutRead { stdoutRead = -1 }
        if fd == stderrRead { stderrRead = -1 }
    }

    /// Reads what is left in the output fds after the container exited.
    private func drainOutput() {
        for (fd, stream) in [(ptyMaster, Stream.stdout), (stdoutRead, .stdout), (stderrRead, .stderr)] where fd >= 0 {
            while true {
                let n = readBuffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                deliver(readBuffer[0..<n], stream)
            }
        }
        // conmon flushes the journald driver's held-back pieces once the output is drained.
        journal?.flush(.stdout)
        journal?.flush(.stderr)
    }

    /// Input from an attach client.
    func writeStdin(_ bytes: ArraySlice<UInt8>) {
        guard stdinWrite >= 0 else { return }
        _ = try? FS.writeAll(fd: stdinWrite, Array(bytes))
    }

    /// An attach client went away: its stdin ends too, unless --leave-stdin-open (never for a pty).
    func attachClientClosed() {
        guard !o.leaveStdinOpen, stdinWrite >= 0, stdinWrite != ptyMaster else { return }
        close(stdinWrite)
        stdinWrite = -1
    }

    func resize(rows: UInt16, cols: UInt16) {
        guard ptyMaster >= 0 else { return }
        _ = sl_set_winsize(ptyMaster, rows, cols)
    }

    /// A log that cannot be reopened (e.g. a symlink now at its path) keeps its old file; subscribers
    /// get a log-error event.
    func reopenLogs() {
        for log in logs {
            do { try log.reopen() } catch {
                control?.broadcast([
                    "event": .string("log-error"), "path": .string(log.path), "message": .string("reopen: \(error)"),
                ])
            }
        }
    }

    // MARK: - Attach socket and control FIFOs

    private func openAttachSocket(_ bundle: String) throws(MonitorFailure) -> AttachServer {
        do {
            let server = try AttachServer(directory: bundle, monitor: self)
            if let dir = o.socketDirPath, !o.fullAttach, let uuid = o.cuuid {
                // conmon's short path: <socket dir>/<cuuid> -> bundle, for clients without /proc/self/fd.
                let link = dir + "/" + uuid
                unlink(link)
                if symlink(bundle, link) == 0 { cleanupPaths.append(link) }
            }
            return server
        } catch { throw MonitorFailure("attach socket in \(bundle): \(error)") }
    }

    private func makeControlFifos(_ bundle: String) throws(MonitorFailure) {
        for name in ["ctl", "winsz"] {
            let path = bundle + "/" + name
            unlink(path)
            guard mkfifo(path, 0o660) == 0 else { throw MonitorFailure("mkfifo \(path): \(errnoString(errno))") }
            // Read-write so the FIFO never reports EOF between writers.
            let fd = Glibc.open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw MonitorFailure("open \(path): \(errnoString(errno))") }
            var pending: [UInt8] = []
            do {
                try loop.watch(fd) { [unowned self] _ in
                    var buf = [UInt8](repeating: 0, count: 512)
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    guard n > 0 else { return }
                    pending += buf[0..<n]
                    while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: pending[0..<nl], as: UTF8.self)
                        pending.removeSubrange(0...nl)
                        self.controlLine(line)
                    }
                    if pending.count > 4096 { pending.removeAll() }
                }
            } catch { throw MonitorFailure("watch \(path): \(error)") }
        }
    }

    /// `<type> <height> <width>`: 1 = resize, 2 = reopen the log files (conmon's ctl format). The
    /// winsz FIFO also takes a bare `<height> <width>`.
    func controlLine(_ line: String) {
        let f = line.split(separator: " ").compactMap { Int($0) }
        if f.count == 2, (0...1000).contains(f[0]), (0...1000).contains(f[1]) {
            resize(rows: UInt16(f[0]), cols: UInt16(f[1]))
            return
        }
        guard f.count == 3 else { return }
        switch f[0] {
        case 1 where (0...1000).contains(f[1]) && (0...1000).contains(f[2]):
            resize(rows: UInt16(f[1]), cols: UInt16(f[2]))
        case 2:
            reopenLogs()
        default:
            break
        }
    }

    // MARK: - OOM

    private func watchOOM() {
        guard !o.exec, let text = try? FS.readString("/proc/\(containerPid)/cgroup") else { return }
        let own = CgroupManager.ownCgroups(procSelfCgroup: text)
        let layout = CgroupLayout.detect()
        var paths: [String: String] = [:]
        if let mount = layout.hierarchies["memory"], let p = own["memory"] {
            paths["memory"] = mount + p
        } else if case .v2(let mount) = layout, let p = own[""] {
            paths[""] = mount + p
        }
        guard !paths.isEmpty, let watcher = try? OOMWatcher(CgroupManager(layout: layout, paths: paths)) else { return }
        oom = watcher
        try? loop.watch(watcher.fd) { [unowned self] _ in self.checkOOM() }
    }

    private func checkOOM() {
        guard let oom, oom.wait(timeoutMs: 0) else { return }
        oomKilled = true
        // conmon writes an empty `oom` file in the persist dir and where CRI-O/podman look (the bundle).
        for dir in [o.persistDir, bundle].compactMap({ $0 }) {
            try? FS.writeFileAtomic(dir + "/oom", [], mode: 0o644, durable: false)
        }
        control?.broadcast(["event": .string("oom")])
    }

    // MARK: - Children and signals

    private func onSignals(_ sfd: Int32) {
        while true {
            let sig = sl_signalfd_read(sfd)
            if sig <= 0 { break }
            switch sig {
            case SIGCHLD:
                reap()
            case SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2:
                if containerPid > 1 && exitCode == nil { kill(containerPid, sig) }
            default:
                break
            }
        }
    }

    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            if pid == containerPid {
                exitCode = Proc.exitCode(status)
                containerExited()
            } else if let h = childHandlers.removeValue(forKey: pid) {
                h(status)
            }
        }
    }

    func spawnChild(_ spec: SpawnSpec, onExit: @escaping (Int32) -> Void) throws(SysError) -> pid_t {
        let pid = try Spawn.start(spec)
        childHandlers[pid] = onExit
        return pid
    }

    private func onTimeout() {
        guard exitCode == nil, containerPid > 1 else { return }
        timedOut = true
        let pgid = getpgid(containerPid)
        if pgid > 1 && pgid != getpgrp() { kill(-pgid, SIGKILL) } else { kill(containerPid, SIGKILL) }
    }

    private func containerExited() {
        attach?.acceptPending()
        drainOutput()
        notifyRelay?.relay()
        if oom != nil { checkOOM() }
        loop.running = false
    }

    // MARK: - Exit

    private func finish() -> Int32 {
        let code = exitCode ?? -1
        let reported: Int32 = timedOut ? -1 : code
        let text = String(reported)
        // The exit dir is what agents wait on: it comes last.
        if let dir = o.persistDir { writeExitFile(dir + "/exit", text) }
        if let dir = o.exitDir { writeExitFile(dir + "/" + cid, text) }
        if o.exec {
            if timedOut { sync?.send(-1, message: "command timed out") } else { sync?.send(code) }
        }
        control?.containerExited(timedOut: timedOut)
        control?.close()
        attach?.close()
        removeCleanupPaths()
        runExitCommand()
        return timedOut ? 255 : code
    }

    private func writeExitFile(_ path: String, _ text: String) {
        do { try FS.writeFileAtomic(path, Array(text.utf8), mode: 0o644) } catch {
            printErr("swiftlet-monitor: write exit file: \(error)")
        }
    }

    private func removeCleanupPaths() {
        for p in cleanupPaths { unlink(p) }
        cleanupPaths = []
    }

    private func runExitCommand() {
        guard let command = o.exitCommand else { return }
        let delay = o.exitDelay
        var spec = SpawnSpec(args: [command] + o.exitCommandArgs, env: childEnv)
        spec.dieWithMonitor = false
        spec.closeOtherFds = true
        if delay > 0 {
            spec.args = ["/bin/sh", "-c", "sleep \(delay); exec \"$0\" \"$@\"", command] + o.exitCommandArgs
        }
        _ = try? Spawn.start(spec)
    }
}

/// The monitor's container, as its control server and probes see it.
extension Monitor: ControlledContainer {
    var displayName: String { o.name ?? cid }
    var controlIdleTimeout: Int { o.controlIdleTimeout }
    func runtimeArgv(_ verb: [String]) -> [String] { [o.runtime ?? ""] + o.runtimeArgs + verb }
}

func fdFromEnvironment(_ name: String) -> Int32? {
    guard let v = getenv(name), let fd = Int32(String(cString: v)), fd >= 0 else { return nil }
    _ = sl_set_cloexec(fd)
    return fd
}

/// Whatever the fd holds right now (non-blocking), as text; at most 8 KiB, like conmon.
func readAvailable(_ fd: Int32) -> String {
    guard fd >= 0 else { return "" }
    _ = sl_set_nonblock(fd)
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 8192)
    while out.count < 8192 {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out.prefix(8192), as: UTF8.self)
}
