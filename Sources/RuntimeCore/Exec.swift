import Glibc
import CLinux
import OCI
import LinuxSystem
import Seccomp

public struct ExecOptions: Sendable {
    public var root: String
    public var id: String
    public var process: OCI.Process
    public var consoleSocket: String?
    public var pidFile: String?
    public var pidfdSocket: String?
    public var detach = false
    public var preserveFds = 0
    public var ignorePaused = false
    /// exec --cgroup: controller -> sub-cgroup of the container's cgroup to run in; key "" for every
    /// controller (and the cgroup2 tree). From `parseExecCgroups`.
    public var subCgroups: [String: String] = [:]
    public init(root: String, id: String, process: OCI.Process) { self.root = root; self.id = id; self.process = process }
}

/// The container's process settings with exec's command-line overrides applied (runc semantics).
public struct ExecOverrides: Sendable {
    public var args: [String] = []
    public var env: [String] = []
    public var cwd: String?
    public var user: String?          // "uid[:gid]"
    public var additionalGids: [String] = []
    public var caps: [String] = []
    public var tty = false
    public var noNewPrivs = false
    public var appArmorProfile: String?
    public var processLabel: String?
    public init() {}

    public func apply(to base: OCI.Process) throws(RuntimeError) -> OCI.Process {
        var p = base
        p.args = args
        p.terminal = tty
        p.env = (base.env ?? []) + env
        if let cwd { p.cwd = cwd }
        if let user {
            let parts = user.split(separator: ":", omittingEmptySubsequences: false)
            guard let uid = UInt32(parts[0]), parts.count <= 2 else {
                throw RuntimeError(.invalidArgument, "invalid --user \"\(user)\": want uid[:gid]")
            }
            p.user.uid = uid
            if parts.count == 2 {
                guard let gid = UInt32(parts[1]) else { throw RuntimeError(.invalidArgument, "invalid --user \"\(user)\": want uid[:gid]") }
                p.user.gid = gid
            }
        }
        for g in additionalGids {
            guard let v = UInt32(g) else { throw RuntimeError(.invalidArgument, "invalid --additional-gids value \"\(g)\"") }
            p.user.additionalGids = (p.user.additionalGids ?? []) + [v]
        }
        if !caps.isEmpty {
            var c = p.capabilities ?? Capabilities()
            c.bounding = (c.bounding ?? []) + caps
            c.effective = (c.effective ?? []) + caps
            c.permitted = (c.permitted ?? []) + caps
            // runc 1.3: ambient too, when the config has an inheritable set (else it could not be raised).
            if c.inheritable != nil { c.ambient = (c.ambient ?? []) + caps }
            p.capabilities = c
        }
        if noNewPrivs { p.noNewPrivileges = true }
        if let a = appArmorProfile { p.apparmorProfile = a }
        if let l = processLabel { p.selinuxLabel = l }
        return p
    }
}

/// Every namespace of init that differs from ours, user namespace first, each joined through a
/// pidfd of init (setns(pidfd, type), Linux 5.8+): opened first, then checked to be the process that
/// started at the recorded time, so a recycled pid can never lend us its namespaces.
func joinPlan(_ state: StoredState) throws(RuntimeError) -> NamespacePlan {
    let pidfd = sl_pidfd_open(state.pid, 0)
    if pidfd < 0 {
        if errno == ESRCH { throw RuntimeError(.invalidState, "cannot exec in a stopped container") }
        throw RuntimeError.sys(SysError("pidfd_open", "container init pid \(state.pid)", errno: errno))
    }
    defer { close(pidfd) }
    var ns = NamespacePlan()
    for t in [NamespaceType.user, .ipc, .uts, .network, .pid, .cgroup, .time, .mount] {
        let name = t == .network ? "net" : (t == .mount ? "mnt" : t.rawValue)
        guard let theirs = Proc.namespaceInode(String(state.pid), name), theirs != Proc.namespaceInode("self", name) else { continue }
        let fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3)
        if fd < 0 { ns.closeFds(); throw RuntimeError.sys(SysError("dup pidfd", "container init pid \(state.pid)", errno: errno)) }
        ns.join.append((t, fd))
    }
    // Checked after the namespaces were read through /proc/<pid>: they were init's.
    guard Proc.isAlive(state.pid, startTime: state.pidStartTime) else {
        ns.closeFds()
        throw RuntimeError(.invalidState, "cannot exec in a stopped container")
    }
    return ns
}

/// `exec`: runs a new process in a running container's namespaces. Returns the process's exit
/// code in the foreground, 0 when detached.
public func execInContainer(_ o: ExecOptions, warn: (String) -> Void = { _ in }) throws(RuntimeError) -> Int32 {
    try closeInheritedFds(keeping: o.preserveFds)
    let store = ContainerStore(root: o.root)
    let state = try store.load(o.id)
    switch store.status(state) {
    case .stopped: throw RuntimeError(.invalidState, "cannot exec in a stopped container")
    case .creating: throw RuntimeError(.invalidState, "cannot exec in a container that is still being created")
    case .paused where !o.ignorePaused: throw RuntimeError(.invalidState, "cannot exec in a paused container")
    default: break
    }
    if (o.process.terminal ?? false) && o.consoleSocket == nil && o.detach {
        throw RuntimeError(.invalidArgument, "cannot allocate tty if swiftlet will detach without setting console socket")
    }
    var process = try ProcessPlan(o.process)
    for w in process.warnings { warn(w) }
    let linux = try state.configMember("linux", as: Linux.self)
    let personality = try persona(linux?.personality)
    if let policy = linux?.memoryPolicy { process.memoryPolicy = try MemoryPolicyPlan(policy) }
    if let profile = linux?.seccomp {
        do { process.seccomp = try SeccompFilter.build(profile) } catch { throw RuntimeError(.invalidArgument, "", cause: error) }
    }

    let ns = try joinPlan(state)
    defer { ns.closeFds() }

    let (parentSock, childSock) = try step("create sync socket") { try SeqPacket.pair() }
    defer { parentSock.close() }
    try step("exec") { try Proc.assertSingleThreaded() }
    if !o.detach {
        try step("exec") { try Proc.setChildSubreaper() }
        _ = sl_sigmask_block_all()
    }
    // Into the container's cgroup as init (Create.swift): cloned into its cgroup2 tree, the v1
    // hierarchies joined by the first child itself before it enters any namespace.
    var cgroup = state.cgroup.flatMap { $0.exists() ? $0 : nil }
    if !o.subCgroups.isEmpty {
        guard let base = cgroup else { throw RuntimeError(.invalidState, "exec --cgroup: container \(o.id) has no cgroup") }
        cgroup = try subCgroupManager(base, o.subCgroups)
    }
    let selfAttach = !(cgroup?.v1TaskFiles.isEmpty ?? true)
    // execCPUAffinity.initial: ours, so the child has it before it moves into the container's cgroup.
    if let initial = process.initialAffinity {
        do { try Child.setCPUAffinity(initial, field: "process.execCPUAffinity.initial") } catch { throw RuntimeError.sys(error) }
    }
    let spawned = try spawnChild(cgroupDir: cgroup?.cloneDir, namespaces: 0)
    let intoUnified = spawned.inCgroup2
    var middle = spawned.pid
    if middle == 0 {
        parentSock.close()
        Child.enterNamespaces(ns, cloned: false, selfAttach: selfAttach ? cgroup : nil, childSock) {
            do {
                _ = try childSock.expect(.go)   // the runtime has put us in the container's cgroup
                if process.terminal { _ = setsid(); try Child.setupTerminal(process, childSock) }
                if let p = personality { try sys("personality", String(p)) { sl_personality(p) } }
                try Child.closeExtraFds(preserveFds: o.preserveFds)
                let path = try Child.applyProcess(process, childSock)
                Child.execProcess(path, process)
            } catch {
                Child.fail(childSock, error)
            }
        }
    }
    childSock.close()

    var pid: pid_t = 0
    var pty: Int32?
    func fail(_ e: RuntimeError) -> RuntimeError {
        if pid > 0 { kill(pid, SIGKILL) }
        if middle > 0 { kill(middle, SIGKILL); _ = try? Proc.wait(middle) }
        return e
    }
    // Messages until EOF: the socket is close-on-exec, so EOF without an error means exec happened.
    while true {
        let msg: SyncMessage?
        let waitingFor = pid > 0 ? "the exec process to exec" : "the exec process to report its pid"
        do { msg = try parentSock.next(waitingFor: waitingFor) } catch {
            throw fail(RuntimeError.sys(error, "sync with exec process"))
        }
        guard let m = msg else { break }
        switch m.kind {
        case .initPid:
            pid = pid_t(m.text) ?? 0
            _ = try? Proc.wait(middle)
            middle = 0
            if let cgroup, pid > 0, let part = remainingCgroupPart(intoUnified: intoUnified, selfAttach: selfAttach) {
                do { try cgroup.add(pid: pid, to: part) } catch { throw fail(RuntimeError.cgroup(error, "join the container's cgroup")) }
            }
            do { try parentSock.send(.go) } catch { throw fail(RuntimeError.sys(error, "sync with exec process")) }
        case .pty:
            if let fd = m.fd {
                do { pty = try handOverPty(fd, name: m.text, consoleSocket: o.consoleSocket) } catch {
                    throw fail(RuntimeError.sys(error, "send pty master to console socket"))
                }
            }
            try? parentSock.send(.ack)
        case .seccompFd:
            do { try sendToSeccompListener(m.fd, seccomp: linux?.seccomp, pid: pid, state: store.ociState(state, status: .running)) } catch {
                throw fail(error)
            }
            try? parentSock.send(.ack)
        case .error:
            throw fail(m.childFailure("exec failed"))
        default:
            throw fail(RuntimeError(.internal, "sync: unexpected message \(m.kind) from exec process"))
        }
    }
    if middle > 0 { _ = try? Proc.wait(middle); middle = 0 }
    if pid <= 0 { throw fail(RuntimeError(.internal, "exec failed: process exited before reporting its pid")) }
    if let pf = o.pidFile {
        do { try FS.writeFileAtomic(FS.absolute(pf, base: FS.cwd()), Array(String(pid).utf8), mode: 0o644, durable: false) } catch {
            throw fail(RuntimeError.sys(error, "write pid file"))
        }
    }
    if let socket = o.pidfdSocket {
        do { try Proc.sendPidfd(pid, startTime: nil, to: socket) } catch { throw fail(RuntimeError.sys(error, "send pidfd to --pidfd-socket")) }
    }
    if o.detach { return 0 }
    return waitForeground(pid: pid, pty: pty)
}

/// Parses exec's --cgroup values as runc does: `<controller>[,<controller>...]:<path>` (the last
/// value for a controller wins), or one `<path>` alone for every controller.
public func parseExecCgroups(_ args: [String]) throws(RuntimeError) -> [String: String] {
    var out: [String: String] = [:]
    for arg in args {
        let parts = arg.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw RuntimeError(.invalidArgument, "invalid --cgroup argument: \(arg)") }
        if parts.count == 1 {
            guard args.count == 1 else {
                throw RuntimeError(.invalidArgument, "invalid --cgroup argument: \(arg) (missing <controller>: prefix)")
            }
            out[""] = arg
            continue
        }
        for controller in parts[0].split(separator: ",", omittingEmptySubsequences: false) {
            guard !controller.isEmpty else {
                throw RuntimeError(.invalidArgument, "invalid --cgroup argument: \(arg) (empty <controller> prefix)")
            }
            out[String(controller)] = String(parts[1])
        }
    }
    return out
}
