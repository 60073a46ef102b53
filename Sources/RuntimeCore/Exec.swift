import CLinux
import Cgroups
import Glibc
import LinuxSystem
import OCI
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
    public init(root: String, id: String, process: OCI.Process) {
        self.root = root
        self.id = id
        self.process = process
    }
}

/// The container's process settings with exec's command-line overrides applied (runc semantics).
public struct ExecOverrides: Sendable {
    public var args: [String] = []
    public var env: [String] = []
    public var cwd: String?
    public var user: String?  // "uid[:gid]"
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
                guard let gid = UInt32(parts[1]) else {
                    throw RuntimeError(.invalidArgument, "invalid --user \"\(user)\": want uid[:gid]")
                }
                p.user.gid = gid
            }
        }
        for g in additionalGids {
            guard let v = UInt32(g) else {
                throw RuntimeError(.invalidArgument, "invalid --additional-gids value \"\(g)\"")
            }
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
        guard let theirs = Proc.namespaceInode(String(state.pid), name), theirs != Proc.namespaceInode("self", name)
        else { continue }
        let fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3)
        if fd < 0 {
            ns.closeFds()
            throw RuntimeError.sys(SysError("dup pidfd", "container init pid \(state.pid)", errno: errno))
        }
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
    case .paused where !o.ignorePaused:
        throw RuntimeError(.invalidState, "cannot exec in a paused container (use --ignore-paused to override)")
    default: break
    }
    try checkConsoleSocket(
        terminal: o.process.terminal ?? false, consoleSocket: o.consoleSocket, detached: o.detach,
        checkUnused: false)
    var process = try ProcessPlan(o.process)
    try checkRootlessGroups(process.additionalGids, field: "exec --additional-gids")
    for w in process.warnings { warn(w) }
    let linux = try state.configMember("linux", as: Linux.self)
    let personality = try persona(linux?.personality)
    try process.addContainerSettings(linux, seccompCache: SeccompCache(root: o.root))

    let ns = try joinPlan(state)
    defer { ns.closeFds() }

    let (parentSock, childSock) = try step("create sync socket") { try SeqPacket.pair() }
    defer { parentSock.close() }
    try step("exec") { try Proc.assertSingleThreaded() }
    if !o.detach {
        try step("exec") { try Proc.setChildSubreaper() }
        _ = sl_sigmask_block_all()
    }
    // Into the container's cgroup as init (Spec/sync-protocol.md, cgroup placement).
    let cgroup = try execCgroup(state, o)
    let placement = CgroupPlacement.forExec(cgroup)
    // execCPUAffinity.initial: ours, so the child has it before it moves into the container's cgroup.
    if let initial = process.initialAffinity {
        do { try Child.setCPUAffinity(initial, field: "process.execCPUAffinity.initial") } catch {
            throw RuntimeError.sys(error)
        }
    }
    let (child, intoCgroup2) = try spawnChild(placement)
    if child == 0 {
        parentSock.close()
        Child.enterNamespaces(ns, placement, cgroup: cgroup, childSock) {
            execChild(process, personality: personality, preserveFds: o.preserveFds, childSock)
        }
    }
    childSock.close()

    let txn = Transaction()
    txn.middle = child
    txn.waitForPid = false
    do {
        let join = placement.parentJoin(clonedIntoCgroup2: intoCgroup2)
        let pty = try followExec(
            o, parentSock, txn, cgroup: cgroup, join: join, seccomp: linux?.seccomp,
            hookState: store.ociState(state, status: .running))
        try writePidFile(o.pidFile, pid: txn.pid)
        if let socket = o.pidfdSocket {
            try step("send pidfd to --pidfd-socket") { try Proc.sendPidfd(txn.pid, startTime: nil, to: socket) }
        }
        if o.detach { return 0 }
        return waitForeground(pid: txn.pid, pty: pty)
    } catch {
        txn.rollback()
        throw error
    }
}

extension ProcessPlan {
    /// What an exec'd process gets from the container's config: its memory policy and seccomp filter.
    mutating func addContainerSettings(_ linux: Linux?, seccompCache: SeccompCache? = nil) throws(RuntimeError) {
        if let policy = linux?.memoryPolicy { memoryPolicy = try MemoryPolicyPlan(policy) }
        if let profile = linux?.seccomp {
            do { seccomp = try SeccompFilter.build(profile, cache: seccompCache) } catch {
                throw RuntimeError(.invalidArgument, "", cause: error)
            }
        }
    }
}

/// The cgroup exec's process joins: the container's (nil when it has none left), or exec --cgroup's
/// sub-cgroups of it.
private func execCgroup(_ state: StoredState, _ o: ExecOptions) throws(RuntimeError) -> CgroupManager? {
    let cgroup = state.cgroup.flatMap { $0.exists() ? $0 : nil }
    if o.subCgroups.isEmpty { return cgroup }
    guard let base = cgroup else { throw RuntimeError(.invalidState, "exec --cgroup: container \(o.id) has no cgroup") }
    return try subCgroupManager(base, o.subCgroups)
}

/// exec's process, forked by the middle process in the container's namespaces: waits until the
/// runtime has put it in the container's cgroup (`J`), then applies the process settings and execs.
private func execChild(_ process: ProcessPlan, personality: UInt?, preserveFds: Int, _ sock: SeqPacket) -> Never {
    do {
        _ = try sock.expect(.joined)
        if process.terminal {
            _ = setsid()
            try Child.setupTerminal(process, sock)
        }
        if let p = personality { try sys("personality", String(p)) { sl_personality(p) } }
        try Child.closeExtraFds(preserveFds: preserveFds)
        let path = try Child.applyProcess(process, sock)
        Child.execProcess(path, process)
    } catch {
        Child.fail(sock, error)
    }
}

/// The parent's side of exec's sync protocol: messages until EOF (the socket is close-on-exec, so
/// EOF without an error means exec happened). Returns the pty master for the foreground copy loop.
private func followExec(
    _ o: ExecOptions, _ sock: SeqPacket, _ txn: Transaction, cgroup: CgroupManager?,
    join: CgroupPlacement.ParentJoin, seccomp: OCI.Seccomp?, hookState: State
) throws(RuntimeError) -> Int32? {
    var pty: Int32?
    while true {
        let msg: SyncMessage?
        let waitingFor = txn.pid > 0 ? "the exec process to exec" : "the exec process to report its pid"
        do { msg = try sock.next(waitingFor: waitingFor) } catch {
            throw RuntimeError.sys(error, "sync with exec process")
        }
        guard let m = msg else { break }
        switch m.kind {
        case .initPid:
            txn.pid = pid_t(m.text) ?? 0
            _ = try? Proc.wait(txn.middle)
            txn.middle = 0
            if let cgroup, txn.pid > 0, case .write(let part) = join {
                do { try cgroup.add(pid: txn.pid, to: part) } catch {
                    throw RuntimeError.cgroup(error, "join the container's cgroup")
                }
            }
            do { try sock.send(.joined) } catch { throw RuntimeError.sys(error, "sync with exec process") }
        case .pty:
            if let fd = m.fd {
                do { pty = try handOverPty(fd, name: m.text, consoleSocket: o.consoleSocket) } catch {
                    throw RuntimeError.sys(error, "send pty master to console socket")
                }
            }
            try? sock.send(.ack)
        case .seccompFd:
            try sendToSeccompListener(m.fd, seccomp: seccomp, pid: txn.pid, state: hookState)
            try? sock.send(.ack)
        case .error:
            throw m.childFailure("unable to start container process")
        default:
            throw RuntimeError(.internal, "sync: unexpected message \(m.kind) from exec process")
        }
    }
    if txn.middle > 0 {
        _ = try? Proc.wait(txn.middle)
        txn.middle = 0
    }
    if txn.pid <= 0 { throw RuntimeError(.internal, "exec failed: process exited before reporting its pid") }
    return pty
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
