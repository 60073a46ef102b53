import CLinux
import Cgroups
import Checkpoint
import Glibc
import LinuxSystem
import Mounts
import OCI

/// One process of a task: the container's init (execID "") or an exec.
final class ShimProcess {
    let containerID: String
    let execID: String
    let bundle: String
    var pid: Int32 = 0
    var status = TaskStatus.created
    var exitStatus: UInt32 = 0
    var exitedAt: Timestamp?
    var exitReported = false
    let stdio: (stdin: String, stdout: String, stderr: String)
    let terminal: Bool
    var io: ProcessIO?
    var waiters: [RPCReply] = []
    /// An exec's process.json (the Any's JSON value).
    var spec: [UInt8] = []

    init(containerID: String, execID: String, bundle: String, stdio: (String, String, String), terminal: Bool) {
        self.containerID = containerID
        self.execID = execID
        self.bundle = bundle
        self.stdio = stdio
        self.terminal = terminal
    }

    var exited: Bool { exitedAt != nil }

    var state: ShimReplies.State {
        ShimReplies.State(
            id: containerID, bundle: bundle, stdin: stdio.stdin, stdout: stdio.stdout, stderr: stdio.stderr,
            execID: execID, pid: pid, status: status, terminal: terminal, exitStatus: exitStatus,
            exitedAt: exitedAt)
    }
}

final class ShimContainer {
    let id: String
    let bundle: String
    let runtime: ShimRuntime
    let initProcess: ShimProcess
    var execs: [String: ShimProcess] = [:]
    var rootfsMounted = false
    var oom: OOMWatcher?
    /// `<bundle>/monitor.sock`, the monitor's control API for this container.
    var control: ShimControl?
    /// A checkpoint (CreateTaskRequest.checkpoint) the init is restored from at Start.
    var restoreFrom = ""

    init(id: String, bundle: String, runtime: ShimRuntime, initProcess: ShimProcess) {
        self.id = id
        self.bundle = bundle
        self.runtime = runtime
        self.initProcess = initProcess
    }

    func process(_ execID: String) throws(RPCError) -> ShimProcess {
        if execID.isEmpty { return initProcess }
        guard let p = execs[execID] else {
            throw RPCError(.notFound, "process \(execID) does not exist in container \(id)")
        }
        return p
    }

    func command(_ verb: [String]) -> [String] { runtime.command(verb, bundle: bundle) }
}

/// containerd.task.v2.Task on the shim's event loop. Runtime calls run to completion (bounded);
/// exits are reaped by the shim (a subreaper) and reported in order through the publisher.
final class TaskService {
    static let serviceName = "containerd.task.v2.Task"
    let loop: EventLoop
    let publisher: EventPublisher
    let namespace: String
    var containers: [String: ShimContainer] = [:]
    /// Exits of processes not (yet) known: an exec that exited before its pid file was read.
    private var unknownExits: [(pid: Int32, status: Int32)] = []
    private var nextExecFile = 0
    /// Children of the control servers (execSync, exec probes, checkpoint archives), by pid.
    private var childHandlers: [pid_t: (Int32) -> Void] = [:]
    var onShutdown: (() -> Void)?
    let log: ShimLog

    init(loop: EventLoop, publisher: EventPublisher, namespace: String, log: ShimLog) {
        self.loop = loop
        self.publisher = publisher
        self.namespace = namespace
        self.log = log
    }

    // MARK: - Dispatch

    func handle(_ req: TTRPCRequest, _ reply: RPCReply) {
        guard req.service == Self.serviceName else {
            reply.send(.failure(RPCError(.unimplemented, "service \(req.service) is not implemented")))
            return
        }
        let p = req.payload
        if req.method == "Wait" {
            do throws(RPCError) { try wait(p, reply) } catch { reply.send(.failure(error)) }
            return
        }
        let body: ([UInt8]) throws(RPCError) -> [UInt8]
        switch req.method {
        case "Create": body = create
        case "Start": body = start
        case "State": body = state
        case "Delete": body = delete
        case "Pids": body = pids
        case "Pause": body = { (b) throws(RPCError) in try self.pause(b, resume: false) }
        case "Resume": body = { (b) throws(RPCError) in try self.pause(b, resume: true) }
        case "Checkpoint": body = checkpoint
        case "Kill": body = kill
        case "Exec": body = exec
        case "ResizePty": body = resizePty
        case "CloseIO": body = closeIO
        case "Update": body = update
        case "Stats": body = stats
        case "Connect": body = connect
        case "Shutdown": body = shutdown
        default:
            reply.send(.failure(RPCError(.unimplemented, "method \(req.method) of \(req.service) is not implemented")))
            return
        }
        do throws(RPCError) {
            reply.send(.success(try body(p)))
        } catch {
            log.write("\(req.method): \(error.message)", level: "error")
            reply.send(.failure(error))
        }
    }

    private func decode<T>(_ what: String, _ f: () throws(ProtoError) -> T) throws(RPCError) -> T {
        do { return try f() } catch { throw RPCError(.invalidArgument, "\(what): \(error)") }
    }

    private func container(_ id: String) throws(RPCError) -> ShimContainer {
        guard let c = containers[id] else { throw RPCError(.notFound, "container \(id) does not exist") }
        return c
    }

    private func ref(_ p: [UInt8], _ what: String) throws(RPCError) -> (ShimContainer, ShimProcess, ProtoFields) {
        let r = try decode(what) { () throws(ProtoError) in try ProcessRef.decode(p) }
        let c = try container(r.id)
        return (c, try c.process(r.execID), r.fields)
    }

    // MARK: - Create, Start, Exec

    private func create(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let r = try decode("CreateTaskRequest") { () throws(ProtoError) in try CreateTaskRequest.decode(p) }
        guard !r.id.isEmpty, !r.bundle.isEmpty else {
            throw RPCError(.invalidArgument, "CreateTaskRequest: id and bundle are required")
        }
        guard containers[r.id] == nil else { throw RPCError(.alreadyExists, "container \(r.id) already exists") }
        let options = try ShimOptions.decode(r.options)
        let runtime = ShimRuntime.defaults(namespace: namespace).with(options, namespace: namespace)
        _ = try runtime.resolvedBinary()
        for note in ShimOptions.ignored(options) { log.write("\(r.id): \(note)", level: "warning") }
        try? FS.mkdirAll(runtime.root, 0o711)
        runtime.save(bundle: r.bundle)
        let proc = ShimProcess(
            containerID: r.id, execID: "", bundle: r.bundle, stdio: (r.stdin, r.stdout, r.stderr), terminal: r.terminal)
        let c = ShimContainer(id: r.id, bundle: r.bundle, runtime: runtime, initProcess: proc)
        do throws(RPCError) {
            c.rootfsMounted = try mountRootfs(r.rootfs, bundle: r.bundle)
            c.control = try ShimControl(c, service: self)
            if r.checkpoint.isEmpty {
                let pidFile = r.bundle + "/init.pid"
                proc.pid = try runWithIO(
                    c, proc, ["create", "--bundle", r.bundle, "--pid-file", pidFile] + runtime.createFlags,
                    pidFile: pidFile, what: "create")
            } else {
                // As the runc shim does: the restore itself runs at Start.
                c.restoreFrom = r.checkpoint
            }
        } catch {
            proc.io?.close()
            c.control?.close()
            if c.rootfsMounted { unmountRootfs(r.bundle) }
            throw error
        }
        containers[r.id] = c
        publisher.publish(
            .create(
                id: r.id, bundle: r.bundle, io: (r.stdin, r.stdout, r.stderr, r.terminal), pid: proc.pid,
                checkpoint: r.checkpoint))
        watchOOM(c)
        claimEarlyExit(proc)
        reportExit(proc)
        return ShimReplies.pid(proc.pid)
    }

    /// Runs a runtime verb that starts a process (create, exec) with the process's stdio, then reads
    /// its pid file.
    private func runWithIO(_ c: ShimContainer, _ proc: ShimProcess, _ verb: [String], pidFile: String, what: String)
        throws(RPCError) -> Int32
    {
        let io = ProcessIO(
            loop: loop, stdin: proc.stdio.stdin, stdout: proc.stdio.stdout, stderr: proc.stdio.stderr,
            terminal: proc.terminal, id: c.id, namespace: namespace)
        proc.io = io
        do throws(SysError) { try io.prepare() } catch { throw RPCError(.internalError, "\(what): stdio: \(error)") }
        var args = verb
        if let console = io.console { args += ["--console-socket", console.path] }
        args.append(c.id)
        unlink(pidFile)
        let run = ShimCommand.run(
            c.command(args), stdin: io.childStdio.0, stdout: io.childStdio.1, stderr: io.childStdio.2,
            cwd: c.bundle)
        io.closeChildEnds()
        guard run.ok else { throw ShimRuntime.failure(run, what, bundle: c.bundle) }
        guard let text = try? FS.readString(pidFile), let pid = Int32(text.trimmingSpaces), pid > 0 else {
            throw RPCError(.internalError, "\(what): no pid in \(pidFile)")
        }
        unlink(pidFile)
        do throws(SysError) { try io.started() } catch { throw RPCError(.internalError, "\(what): terminal: \(error)") }
        return pid
    }

    private func start(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (c, proc, _) = try ref(p, "StartRequest")
        guard proc.status == .created, !proc.exited else {
            throw RPCError(.failedPrecondition, "process \(c.id)/\(proc.execID) is not in the created state")
        }
        if proc.execID.isEmpty && !c.restoreFrom.isEmpty {
            let pidFile = c.bundle + "/init.pid"
            let work = c.runtime.criuWorkPath
            proc.pid = try runWithIO(
                c, proc,
                [
                    "restore", "--detach", "--image-path", c.restoreFrom, "--bundle", c.bundle,
                    "--pid-file", pidFile,
                ] + c.runtime.createFlags + (work.isEmpty ? [] : ["--work-path", work]),
                pidFile: pidFile, what: "restore")
            c.restoreFrom = ""
            proc.status = .running
            publisher.publish(.start(id: c.id, pid: proc.pid))
            watchOOM(c)
            claimEarlyExit(proc)
            reportExit(proc)
        } else if proc.execID.isEmpty {
            let run = ShimCommand.run(c.command(["start", c.id]), cwd: c.bundle)
            guard run.ok else { throw ShimRuntime.failure(run, "start", bundle: c.bundle) }
            proc.status = proc.exited ? .stopped : .running
            publisher.publish(.start(id: c.id, pid: proc.pid))
        } else {
            nextExecFile += 1
            let specFile = c.bundle + "/.swiftlet-shim-exec-\(nextExecFile).json"
            let pidFile = c.bundle + "/.swiftlet-shim-exec-\(nextExecFile).pid"
            do throws(SysError) { try FS.writeFileAtomic(specFile, proc.spec, mode: 0o600, durable: false) } catch {
                throw RPCError(.internalError, "exec: \(error)")
            }
            defer { unlink(specFile) }
            proc.pid = try runWithIO(
                c, proc, ["exec", "--detach", "--pid-file", pidFile, "--process", specFile], pidFile: pidFile,
                what: "exec")
            proc.status = .running
            publisher.publish(.execStarted(id: c.id, execID: proc.execID, pid: proc.pid))
            // An exit reaped before the pid was known is reported after TaskExecStarted.
            claimEarlyExit(proc)
            reportExit(proc)
        }
        return ShimReplies.pid(proc.pid)
    }

    private func exec(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let r = try decode("ExecProcessRequest") { () throws(ProtoError) in try ExecProcessRequest.decode(p) }
        let c = try container(r.id)
        guard !r.execID.isEmpty else { throw RPCError(.invalidArgument, "ExecProcessRequest: exec_id is required") }
        guard c.execs[r.execID] == nil else {
            throw RPCError(.alreadyExists, "exec \(r.execID) already exists in \(c.id)")
        }
        guard !c.initProcess.exited else { throw RPCError(.failedPrecondition, "container \(c.id) is not running") }
        guard let spec = r.spec, !spec.value.isEmpty else {
            throw RPCError(.invalidArgument, "ExecProcessRequest: spec is required")
        }
        let proc = ShimProcess(
            containerID: c.id, execID: r.execID, bundle: c.bundle, stdio: (r.stdin, r.stdout, r.stderr),
            terminal: r.terminal)
        proc.spec = spec.value
        c.execs[r.execID] = proc
        publisher.publish(.execAdded(id: c.id, execID: r.execID))
        return []
    }

    // MARK: - Queries

    private func state(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (_, proc, _) = try ref(p, "StateRequest")
        return ShimReplies.state(proc.state)
    }

    private func wait(_ p: [UInt8], _ reply: RPCReply) throws(RPCError) {
        let (_, proc, _) = try ref(p, "WaitRequest")
        if proc.exited {
            reply.send(.success(ShimReplies.wait(status: proc.exitStatus, at: proc.exitedAt)))
        } else {
            proc.waiters.append(reply)
        }
    }

    private func pids(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (c, _, _) = try ref(p, "PidsRequest")
        let run = ShimCommand.run(c.command(["ps", "--format", "json", c.id]), cwd: c.bundle)
        guard run.ok else { throw ShimRuntime.failure(run, "ps", bundle: c.bundle) }
        guard case .array(let list)? = try? JSONValue.parse(run.stdout) else {
            throw RPCError(.internalError, "ps: not a JSON array: \(run.stdout)")
        }
        var out: [(pid: Int32, execID: String)] = []
        for case .number(let n) in list {
            guard let pid = Int32(n) else { continue }
            out.append((pid, c.execs.values.first { $0.pid == pid }?.execID ?? ""))
        }
        return ShimReplies.pids(out)
    }

    private func connect(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let f = try decode("ConnectRequest") { () throws(ProtoError) in try ProtoFields(p) }
        let id = try decode("ConnectRequest") { () throws(ProtoError) in try f.string(1) }
        return ShimReplies.connect(shimPid: getpid(), taskPid: containers[id]?.initProcess.pid ?? 0)
    }

    private func stats(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (c, _, _) = try ref(p, "StatsRequest")
        guard let m = cgroupManager(c.initProcess.pid) else {
            throw RPCError(.notFound, "cgroup of container \(c.id) not found")
        }
        do throws(CgroupError) {
            let s = try m.stats()
            if case .v2 = m.layout { return ShimReplies.stats(ShimMetrics.v2(s)) }
            return ShimReplies.stats(ShimMetrics.v1(s))
        } catch {
            throw RPCError(.internalError, "stats of \(c.id): \(error)")
        }
    }

    /// The cgroup of a running process, from /proc/PID/cgroup.
    private func cgroupManager(_ pid: Int32) -> CgroupManager? {
        guard pid > 0, let text = try? FS.readString("/proc/\(pid)/cgroup") else { return nil }
        let own = CgroupManager.ownCgroups(procSelfCgroup: text)
        let layout = CgroupLayout.detect()
        var paths: [String: String] = [:]
        for (controller, mount) in layout.hierarchies {
            if let rel = own[controller] { paths[controller] = mount + rel }
        }
        if let u = layout.unifiedMountPoint, let rel = own[""] { paths[""] = u + rel }
        return paths.isEmpty ? nil : CgroupManager(layout: layout, paths: paths)
    }

    // MARK: - Control

    private func kill(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (c, proc, f) = try ref(p, "KillRequest")
        let (sig, all) = try decode("KillRequest") { () throws(ProtoError) in (try f.uint(3), try f.bool(4)) }
        guard sig > 0 && sig < 65 else { throw RPCError(.invalidArgument, "KillRequest: invalid signal \(sig)") }
        if proc.execID.isEmpty {
            guard !proc.exited || all else { throw RPCError(.notFound, "process already finished") }
            let run = ShimCommand.run(
                c.command(["kill"] + (all ? ["--all"] : []) + [c.id, String(sig)]), cwd: c.bundle)
            guard run.ok else { throw ShimRuntime.failure(run, "kill", bundle: c.bundle) }
        } else {
            guard !proc.exited, proc.pid > 0 else { throw RPCError(.notFound, "process already finished") }
            guard Glibc.kill(proc.pid, Int32(sig)) == 0 else {
                throw RPCError(.unknown, "kill \(proc.pid): \(errnoString(errno))")
            }
        }
        return []
    }

    private func pause(_ p: [UInt8], resume: Bool) throws(RPCError) -> [UInt8] {
        let (c, _, _) = try ref(p, resume ? "ResumeRequest" : "PauseRequest")
        let verb = resume ? "resume" : "pause"
        let run = ShimCommand.run(c.command([verb, c.id]), cwd: c.bundle)
        guard run.ok else { throw ShimRuntime.failure(run, verb, bundle: c.bundle) }
        if !c.initProcess.exited { c.initProcess.status = resume ? .running : .paused }
        publisher.publish(resume ? .resumed(id: c.id) : .paused(id: c.id))
        return []
    }

    private func resizePty(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (_, proc, f) = try ref(p, "ResizePtyRequest")
        let (w, h) = try decode("ResizePtyRequest") { () throws(ProtoError) in (try f.uint(3), try f.uint(4)) }
        guard let io = proc.io, io.terminal else { throw RPCError(.failedPrecondition, "process has no terminal") }
        guard io.resize(width: UInt16(clamping: w), height: UInt16(clamping: h)) else {
            throw RPCError(.internalError, "resize the terminal: \(errnoString(errno))")
        }
        return []
    }

    private func closeIO(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (_, proc, f) = try ref(p, "CloseIORequest")
        if try decode("CloseIORequest", { () throws(ProtoError) in try f.bool(3) }) { proc.io?.closeStdin() }
        return []
    }

    private func update(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let f = try decode("UpdateTaskRequest") { () throws(ProtoError) in try ProtoFields(p) }
        let (id, any) = try decode("UpdateTaskRequest") { () throws(ProtoError) in
            (try f.string(1), try f.data(2).map { (d) throws(ProtoError) in try AnyMessage.decode(d) })
        }
        let c = try container(id)
        guard let resources = any?.value, !resources.isEmpty else {
            throw RPCError(.invalidArgument, "UpdateTaskRequest: resources are required")
        }
        let input = ShimCommand.memfd(resources)
        defer { if input >= 0 { close(input) } }
        let run = ShimCommand.run(c.command(["update", "--resources", "-", c.id]), stdin: input, cwd: c.bundle)
        guard run.ok else { throw ShimRuntime.failure(run, "update", bundle: c.bundle) }
        return []
    }

    /// CheckpointTaskRequest{id=1, path=2, options=3 (containerd.runc.v1.CheckpointOptions: exit=1,
    /// open_tcp=2, external_unix_sockets=3, terminal=4, file_locks=5, work_path=9)}.
    private func checkpoint(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let f = try decode("CheckpointTaskRequest") { () throws(ProtoError) in try ProtoFields(p) }
        let (id, path, opts) = try decode("CheckpointTaskRequest") { () throws(ProtoError) in
            (try f.string(1), try f.string(2), try f.data(3).map { (d) throws(ProtoError) in try AnyMessage.decode(d) })
        }
        let c = try container(id)
        guard !path.isEmpty else { throw RPCError(.invalidArgument, "CheckpointTaskRequest: path is required") }
        var args = ["checkpoint", "--image-path", path]
        var exit = false
        if let o = opts {
            let of = try decode("CheckpointOptions") { () throws(ProtoError) in try ProtoFields(o.value) }
            try decode("CheckpointOptions") { () throws(ProtoError) in
                exit = try of.bool(1)
                if try of.bool(2) { args.append("--tcp-established") }
                if try of.bool(3) { args.append("--ext-unix-sk") }
                if try of.bool(4) { args.append("--shell-job") }
                if try of.bool(5) { args.append("--file-locks") }
                let work = try of.string(9)
                if !work.isEmpty { args += ["--work-path", work] }
            }
        }
        if !exit { args.append("--leave-running") }
        let run = ShimCommand.run(c.command(args + [c.id]), cwd: c.bundle, timeoutMs: 300_000)
        guard run.ok else { throw ShimRuntime.failure(run, "checkpoint", bundle: c.bundle) }
        publisher.publish(.checkpointed(id: c.id, path: path))
        return []
    }

    // MARK: - Delete, Shutdown

    private func delete(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let (c, proc, _) = try ref(p, "DeleteRequest")
        guard proc.exited || proc.status == .created else {
            throw RPCError(.failedPrecondition, "cannot delete process \(c.id)/\(proc.execID): it is running")
        }
        if !proc.execID.isEmpty {
            proc.io?.close()
            c.execs[proc.execID] = nil
            return ShimReplies.delete(pid: proc.pid, status: proc.exitStatus, at: proc.exitedAt)
        }
        if c.restoreFrom.isEmpty {  // else the runtime never saw the container
            let run = ShimCommand.run(c.command(["delete", "--force", c.id]), cwd: c.bundle)
            guard run.ok else { throw ShimRuntime.failure(run, "delete", bundle: c.bundle) }
        }
        for e in c.execs.values { e.io?.close() }
        proc.io?.close()
        c.control?.close()
        c.control = nil
        c.oom.map { loop.unwatch($0.fd) }
        c.oom = nil
        if c.rootfsMounted { unmountRootfs(c.bundle) }
        containers[c.id] = nil
        if proc.exitedAt == nil { proc.exitedAt = Timestamp.now() }
        publisher.publish(.delete(id: c.id, pid: proc.pid, status: proc.exitStatus, at: proc.exitedAt))
        return ShimReplies.delete(pid: proc.pid, status: proc.exitStatus, at: proc.exitedAt)
    }

    private func shutdown(_ p: [UInt8]) throws(RPCError) -> [UInt8] {
        let f = try decode("ShutdownRequest") { () throws(ProtoError) in try ProtoFields(p) }
        let now = try decode("ShutdownRequest") { () throws(ProtoError) in try f.bool(2) }
        if containers.isEmpty || now {
            loop.after(ms: 0) { [weak self] in self?.onShutdown?() }
        }
        return []
    }

    // MARK: - Exits

    /// A reaped child that is no runtime call and no publisher: a task's process, or an orphan.
    func reaped(pid: Int32, status: Int32) {
        if let h = childHandlers.removeValue(forKey: pid) {
            h(status)
            return
        }
        for c in containers.values {
            for proc in [c.initProcess] + Array(c.execs.values) where proc.pid == pid && !proc.exited {
                recordExit(proc, status)
                reportExit(proc)
                return
            }
        }
        unknownExits.append((pid, status))
        if unknownExits.count > 256 { unknownExits.removeFirst(unknownExits.count - 256) }
    }

    func spawnChild(_ spec: SpawnSpec, onExit: @escaping (Int32) -> Void) throws(SysError) -> pid_t {
        let pid = try Spawn.start(spec)
        childHandlers[pid] = onExit
        return pid
    }

    /// Every control socket, when the shim goes away with containers left (Shutdown with `now`).
    func closeControlSockets() {
        for c in containers.values { c.control?.close() }
    }

    /// A process that exited before its pid was known.
    private func claimEarlyExit(_ proc: ShimProcess) {
        guard let i = unknownExits.firstIndex(where: { $0.pid == proc.pid }) else { return }
        recordExit(proc, unknownExits[i].status)
        unknownExits.remove(at: i)
    }

    private func recordExit(_ proc: ShimProcess, _ status: Int32) {
        proc.exitStatus = UInt32(bitPattern: waitStatusCode(status))
        proc.exitedAt = Timestamp.now()
    }

    /// TaskExit, then every waiter.
    private func reportExit(_ proc: ShimProcess) {
        guard let at = proc.exitedAt, !proc.exitReported else { return }
        proc.exitReported = true
        proc.status = .stopped
        // An OOM kill not yet noticed through the watcher's fd goes out before the exit it caused.
        if proc.execID.isEmpty, let c = containers[proc.containerID], let oom = c.oom {
            if oom.wait(timeoutMs: 0) { reportOOM(c) }
            loop.unwatch(oom.fd)
            c.oom = nil
        }
        publisher.publish(
            .exit(id: proc.containerID, execID: proc.execID, pid: proc.pid, status: proc.exitStatus, at: at))
        if proc.execID.isEmpty { containers[proc.containerID]?.control?.containerExited() }
        let reply = ShimReplies.wait(status: proc.exitStatus, at: at)
        for w in proc.waiters { w.send(.success(reply)) }
        proc.waiters = []
    }

    private func watchOOM(_ c: ShimContainer) {
        guard let m = cgroupManager(c.initProcess.pid), let w = try? OOMWatcher(m) else { return }
        c.oom = w
        do throws(SysError) {
            try loop.watch(w.fd) { [weak self, weak c] _ in
                guard let self, let c, let oom = c.oom, oom.wait(timeoutMs: 0) else { return }
                self.reportOOM(c)
            }
        } catch {
            c.oom = nil
        }
    }

    /// TaskOOM, and the control socket's `oom` event.
    private func reportOOM(_ c: ShimContainer) {
        publisher.publish(.oom(id: c.id))
        c.control?.noteOOM()
    }

    // MARK: - rootfs

    /// Mounts the snapshot on <bundle>/rootfs: containerd's mounts in order, each on top of the one
    /// before (as its mount.All does). When one fails, those already mounted are unmounted.
    private func mountRootfs(_ mounts: [ShimMount], bundle: String) throws(RPCError) -> Bool {
        guard !mounts.isEmpty else { return false }
        let target = bundle + "/rootfs"
        try? FS.mkdirAll(target, 0o711)
        for (i, m) in mounts.enumerated() {
            do throws(RPCError) { try mountOne(m, on: target) } catch {
                unmountRootfs(bundle, layers: i)
                throw RPCError(error.code, "rootfs mount \(i + 1) of \(mounts.count): \(error.message)")
            }
        }
        return true
    }

    private func mountOne(_ m: ShimMount, on target: String) throws(RPCError) {
        let o = MountOptions.parse(m.options)
        let flags = o.flags & ~SL_MS_RDONLY
        guard sl_mount(m.source, target, m.type, flags, o.dataString) == 0 else {
            throw RPCError(.internalError, "mount \(m.type) \(m.source) on \(target): \(errnoString(errno))")
        }
        if o.flags & SL_MS_RDONLY != 0 {
            let re = SL_MS_REMOUNT | SL_MS_RDONLY | (o.isBind ? SL_MS_BIND : 0)
            if sl_mount("", target, "", re, o.isBind ? nil : o.dataString) != 0 {
                let e = errno
                _ = sl_umount2(target, SL_MNT_DETACH)
                throw RPCError(.internalError, "remount \(target) read-only: \(errnoString(e))")
            }
        }
    }

    private func unmountRootfs(_ bundle: String, layers: Int = Int.max) {
        unmountStack(bundle + "/rootfs", layers: layers)
    }
}

/// Unmounts what is mounted on `target`, the top mount first, until nothing is (or `layers` are gone;
/// at most 64: a rootfs is a few mounts).
func unmountStack(_ target: String, layers: Int = Int.max) {
    var n = 0
    while n < min(layers, 64), sl_umount2(target, SL_MNT_DETACH) == 0 { n += 1 }
}

/// 128+signal for a killed process, as containerd reports it.
func waitStatusCode(_ status: Int32) -> Int32 {
    if sl_wifsignaled(status) != 0 { return 128 + sl_wtermsig(status) }
    return sl_wexitstatus(status)
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}
