import CLinux
import Cgroups
import Glibc
import LinuxSystem
import OCI
import Seccomp

public struct CreateOptions: Sendable {
    public var root: String
    public var id: String
    public var bundle: String
    public var consoleSocket: String?
    public var pidFile: String?
    public var pidfdSocket: String?
    public var noPivot = false
    public var noNewKeyring = false
    public var preserveFds = 0
    /// `run` in the foreground: become subreaper and keep signals blocked for the wait loop.
    public var foreground = false
    /// `run --no-subreaper`: the foreground run does not become a subreaper (init must then be our
    /// own child: one clone, no middle process).
    public var noSubreaper = false
    /// `run`: started at once by `startCreated` over the sync socket, so no exec fifo is made.
    public var startsAtOnce = false
    /// --systemd-cgroup: the cgroup is a transient systemd unit (SystemdCgroup.swift).
    public var systemdCgroup = false
    /// --rootless (or `auto` deciding so): cgroup hierarchies this user cannot use are skipped.
    public var rootlessCgroups = false
    public init(root: String, id: String, bundle: String) {
        self.root = root
        self.id = id
        self.bundle = bundle
    }
}

/// Reads and validates `<bundle>/config.json`: the spec, and the JSON it came from (what the
/// state file keeps).
public func loadSpec(bundle: String) throws(RuntimeError) -> (spec: Spec, json: JSONValue) {
    let path = bundle + "/config.json"
    let bytes: [UInt8]
    do { bytes = try FS.readFile(path) } catch {
        if error.errno == ENOENT {
            throw RuntimeError(.invalidArgument, "JSON specification file config.json not found in \(bundle)")
        }
        throw RuntimeError.sys(error, "read config.json")
    }
    do {
        let json = try JSONValue.parse(bytes)
        let spec = try decodeJSON(Spec.self, from: json)
        try spec.validate()
        return (spec, json)
    } catch { throw RuntimeError.config(error) }
}

/// `create`: sets the container up and leaves init blocked on the exec fifo. On any failure
/// nothing is left behind: the processes are killed and the state directory removed.
public struct Created: Sendable {
    public var state: StoredState
    /// Things worth a warning in the log (e.g. seccomp syscall names this libseccomp does not know).
    public var warnings: [String] = []
    /// The pty master, for a foreground `run` with a terminal and no console socket.
    public var ptyMaster: Int32?
    /// With `startsAtOnce`: the sync socket to init, for `startCreated`.
    public var startSocket: SeqPacket?
}

public func createContainer(_ o: CreateOptions) throws(RuntimeError) -> Created {
    try ContainerStore.validate(id: o.id)
    let bundle = FS.cleanPath(FS.absolute(o.bundle, base: FS.cwd()))
    let (spec, specJSON) = try loadSpec(bundle: bundle)
    try checkRootlessConfig(spec)
    try checkConsoleSocket(
        terminal: spec.process?.terminal ?? false, consoleSocket: o.consoleSocket, detached: !o.foreground)
    let listenFds = getenv("LISTEN_FDS").flatMap { Int(String(cString: $0)) }.map { max(0, $0) } ?? 0
    try closeInheritedFds(keeping: o.preserveFds + listenFds)
    // The cgroup's directories are known now; it is made just before init (createProcesses).
    let systemd =
        o.systemdCgroup
        ? try SystemdUnit(
            cgroupsPath: spec.linux?.cgroupsPath, id: o.id, annotations: spec.annotations, userBus: o.rootlessCgroups)
        : nil
    try systemd?.checkDelegation(spec.linux?.resources, layout: hostCgroupLayout)
    var cgroupManager =
        systemd?.manager(layout: hostCgroupLayout)
        ?? CgroupManager(layout: hostCgroupLayout, cgroupsPath: spec.linux?.cgroupsPath, id: o.id)
    // Rootless, without a cgroupsPath: only the hierarchies this user may use (runc's rule).
    var cgroupSkipped = false
    if o.rootlessCgroups && systemd == nil && (spec.linux?.cgroupsPath ?? "").isEmpty {
        let usable = try rootlessCgroup(cgroupManager, spec: spec)
        cgroupSkipped = usable.paths.count < cgroupManager.paths.count
        cgroupManager = usable
    }
    // A process cloned into a frozen cgroup never runs: fail now rather than at the sync deadline.
    if cgroupManager.isFrozen() { throw RuntimeError(.invalidState, "container's cgroup unexpectedly frozen") }
    let plan = try ContainerPlan(
        spec: spec, specJSON: specJSON, id: o.id, bundle: bundle, noPivot: o.noPivot, noNewKeyring: o.noNewKeyring,
        preserveFds: o.preserveFds, listenFds: listenFds,
        cgroupBinds: cgroupBinds(o.rootlessCgroups ? rootlessCgroupView(cgroupManager) : cgroupManager),
        seccompCache: SeccompCache(root: o.root))
    defer { plan.closeFds() }
    let store = ContainerStore(root: o.root)
    // Held until create returns (or dies).
    let lock = try store.createLocked(o.id)
    defer { lock.release() }
    let txn = Transaction(store: store, id: o.id)
    txn.intelRdt = plan.intelRdt
    do {
        let c = CreateContext(
            o: o, plan: plan, store: store, manager: cgroupManager, lock: lock, systemd: systemd, txn: txn)
        let state = try createProcesses(c)
        try store.save(state)
        testStop("after-state")
        try writePidFile(o.pidFile, pid: state.pid)
        if let socket = o.pidfdSocket {
            try step("send pidfd to --pidfd-socket") {
                try Proc.sendPidfd(state.pid, startTime: state.pidStartTime, to: socket)
            }
        }
        let skipped = plan.process?.seccomp?.skippedSyscalls ?? []
        return Created(
            state: state,
            warnings: plan.warnings
                + (skipped.isEmpty
                    ? [] : ["linux.seccomp: unknown syscalls skipped: \(skipped.joined(separator: ", "))"])
                + deviceAccessWarnings(plan.spec)
                + (cgroupSkipped && !plan.namespaces.newPid ? [rootlessSharedPidWarning] : []),
            ptyMaster: txn.pty, startSocket: txn.socket)
    } catch {
        txn.rollback()
        throw error
    }
}

/// What create's steps share: the options, the plan, where the container lives, and what has been
/// made so far (`txn`).
private struct CreateContext {
    var o: CreateOptions
    var plan: ContainerPlan
    var store: ContainerStore
    var manager: CgroupManager
    var lock: ContainerStore.Lock
    var systemd: SystemdUnit?
    var txn: Transaction

    func hookState(_ state: StoredState, _ status: Status) -> String {
        encodeJSON(store.ociState(state, status: status))
    }
}

/// The exec fifo `start` opens (none for `run`), opened O_PATH for init; -1 without one.
private func makeExecFifo(_ c: CreateContext) throws(RuntimeError) -> Int32 {
    if c.o.startsAtOnce { return -1 }
    let fifo = c.store.fifoPath(c.o.id)
    // 0622 whatever the umask: init opens it for writing after switching to the container's user.
    try step("create exec fifo") {
        try sys("mkfifo", fifo) { mkfifo(fifo, 0o622) }
        try sys("chmod", fifo) { chmod(fifo, 0o622) }
    }
    return try step("open exec fifo") { try FS.open(fifo, SL_O_PATH) }
}

/// `run` in the foreground: become subreaper (init may be the middle process's child) unless
/// --no-subreaper, which needs init to be our own child; signals stay blocked for the wait loop.
private func prepareForeground(_ o: CreateOptions, _ placement: CgroupPlacement) throws(RuntimeError) {
    guard o.foreground else { return }
    if !o.noSubreaper {
        try step("run") { try Proc.setChildSubreaper() }
    } else if !placement.initByClone {
        // Init is then the middle process's child: only a subreaper can wait for it.
        throw RuntimeError(
            .invalidArgument,
            "run --no-subreaper: this container's init is not swiftlet's own child "
                + "(namespaces joined by path, time offsets, or a user namespace with cgroup v1): "
                + "run without --no-subreaper")
    }
    _ = sl_sigmask_block_all()
}

/// Makes init (Spec/sync-protocol.md, process model and cgroup placement) and follows it through
/// the sync protocol until it is ready; returns the state to save.
private func createProcesses(_ c: CreateContext) throws(RuntimeError) -> StoredState {
    let fifoFd = try makeExecFifo(c)
    defer { if fifoFd >= 0 { close(fifoFd) } }
    let (parentSock, childSock) = try step("create sync socket") { try SeqPacket.pair() }
    defer { if c.txn.socket == nil { parentSock.close() } }

    let hooks = c.plan.spec.hooks
    let hasRuntimeHooks = !(hooks?.prestart ?? []).isEmpty || !(hooks?.createRuntime ?? []).isEmpty
    try step("create") { try Proc.assertSingleThreaded() }
    let placement = CgroupPlacement.forCreate(c.manager, systemd: c.systemd != nil, namespaces: c.plan.namespaces)
    try prepareForeground(c.o, placement)
    var state = try c.txn.saveProvisionalState(c.plan, cgroupPaths: c.manager.paths, systemdUnit: c.systemd)
    testStop("before-clone")
    // The cgroup exists and is configured before init does (systemd's: once init's pid is known);
    // rootless, with every hierarchy skipped (Rootless.swift), there is none.
    if c.systemd == nil && !(c.o.rootlessCgroups && c.manager.paths.isEmpty) {
        c.txn.cgroup = try setUpCgroup(c.manager, spec: c.plan.spec, devices: !runtimeIsUnprivileged)
    }
    let (child, intoCgroup2) = try spawnChild(placement)
    if child == 0 {
        parentSock.close()
        c.lock.release()  // else init would hold the container lock until exec, and `start` would wait forever
        Child.enterNamespaces(c.plan.namespaces, placement, cgroup: c.manager, childSock) {
            Child.initProcess(c.plan, sock: childSock, fifoFd: fifoFd, hasRuntimeHooks: hasRuntimeHooks)
        }
    }
    c.txn.middle = child  // our child until it reports init's pid
    testStop("after-clone")
    childSock.close()
    return try followInit(c, parentSock, &state, join: placement.parentJoin(clonedIntoCgroup2: intoCgroup2))
}

/// The parent's side of the sync protocol with stage 1 and init, until `R`.
private func followInit(
    _ c: CreateContext, _ sock: SeqPacket, _ state: inout StoredState,
    join: CgroupPlacement.ParentJoin
) throws(RuntimeError) -> StoredState {
    let hooks = c.plan.spec.hooks
    // What the next read waits for, and how long it may take (Spec/sync-protocol.md, deadlines).
    var waitingFor = "the container's first process to report init's pid"
    var timeoutMs = syncStepTimeoutMs
    while true {
        let msg: SyncMessage?
        do { msg = try sock.next(waitingFor: waitingFor, timeoutMs: timeoutMs) } catch {
            throw RuntimeError.sys(error, "sync with container init")
        }
        guard let m = msg else {
            throw RuntimeError(.internal, "container init exited before it was ready")
        }
        switch m.kind {
        case .mapIDs:
            testStop("before-idmap")
            try step("write id mappings") { try writeIDMaps(pid: c.txn.middle, c.plan.namespaces) }
            testStop("after-idmap")
            try step("sync") { try sock.send(.ack) }
        case .initPid, .cloned:
            try initReported(c, m, &state, join: join)
            try sendGo(sock, c.hookState(state, .created))
            waitingFor = "container init to set up the container"
            timeoutMs = syncStepTimeoutMs + hookAllowanceMs(hooks?.createContainer)
        case .runHooks:
            try Hooks.run(hooks?.prestart, kind: "prestart", state: c.hookState(state, .created))
            try Hooks.run(hooks?.createRuntime, kind: "createRuntime", state: c.hookState(state, .created))
            try step("sync") { try sock.send(.ack) }
        case .pty:
            guard let fd = m.fd else { throw RuntimeError(.internal, "sync: pty message without a descriptor") }
            c.txn.pty = try step("send pty master to console socket") {
                try handOverPty(fd, name: m.text, consoleSocket: c.o.consoleSocket)
            }
            try step("sync") { try sock.send(.ack) }
        case .seccompFd:
            try sendToSeccompListener(
                m.fd, seccomp: c.plan.spec.linux?.seccomp, pid: state.pid,
                state: c.store.ociState(state, status: .creating))
            try step("sync") { try sock.send(.ack) }
        case .ready:
            testStop("before-fifo-wait")
            if c.o.startsAtOnce { c.txn.socket = sock }
            return state
        case .error:
            throw m.childFailure("unable to start container process")
        case .ack, .go, .joined, .start:
            throw RuntimeError(.internal, "sync: unexpected message \(m.kind) from container init")
        }
    }
}

/// Init's pid is known (`I`: the clone made it; `P`: the middle process forked it): recorded, put
/// into the rest of its cgroup, its resctrl group and network devices, before it runs anything of
/// the container's (it waits for `G`).
private func initReported(
    _ c: CreateContext, _ m: SyncMessage, _ state: inout StoredState,
    join: CgroupPlacement.ParentJoin
) throws(RuntimeError) {
    let initPid: pid_t
    if m.kind == .cloned {
        initPid = c.txn.middle
    } else {
        initPid = pid_t(m.text) ?? 0
        _ = try? Proc.wait(c.txn.middle)
    }
    c.txn.middle = 0
    c.txn.pid = initPid
    guard initPid > 0, let st = Proc.stat(initPid) else {
        throw RuntimeError(.internal, "container init exited before it was ready")
    }
    state.pid = initPid
    state.pidStartTime = st.startTime
    switch join {
    case .systemdUnit:
        guard let systemd = c.systemd else { break }
        var started = false
        defer { if started { c.txn.systemdUnit = systemd } }  // stopped on rollback only when we started it
        c.txn.cgroup = try startSystemdCgroup(
            systemd, manager: c.manager, pid: initPid, id: c.o.id, spec: c.plan.spec,
            started: &started)
    case .write(let part):
        do { try c.manager.add(pid: initPid, to: part) } catch { throw RuntimeError.cgroup(error, "join cgroup") }
    case .nothing:
        break
    }
    state.cgroupPaths = c.manager.paths
    testStop("after-cgroup")
    if let rdt = c.plan.intelRdt { try step("linux.intelRdt") { try rdt.apply(pid: initPid) } }
    if !c.plan.netDevices.isEmpty {
        try step("linux.netDevices") { try moveNetDevices(c.plan.netDevices, pid: initPid) }
    }
}

/// `G` to init, with the state hooks see (status "created": what crun passes and the validation
/// suite expects).
private func sendGo(_ sock: SeqPacket, _ hookState: String) throws(RuntimeError) {
    do { try sock.send(.go, hookState) } catch {
        // init may have failed building its rootfs meanwhile: its own error says more.
        if let m = try? sock.next(waitingFor: "container init's error"), m.kind == .error {
            throw m.childFailure("unable to start container process")
        }
        throw RuntimeError.sys(error, "sync")
    }
}

/// The runtime keeps nothing it inherited beyond stdio and the descriptors it passes on (LISTEN_FDS,
/// --preserve-fds): they are closed before any child exists, so neither init (also while `created`),
/// nor the container's process, nor a hook can reach them (CVE-2024-21626 family).
func closeInheritedFds(keeping preserved: Int) throws(RuntimeError) {
    try step("close inherited file descriptors") { try FS.closeFrom(Int32(3 + preserved)) }
}

/// A pty master from a child: sent to --console-socket (and closed here), or returned for the
/// foreground copy loop when there is no console socket.
/// The relayed copy gets ONLCR cleared, as runc does, so the output is the process's bytes
/// ("\n", not "\r\n").
func handOverPty(_ fd: Int32, name: String, consoleSocket: String?) throws(SysError) -> Int32? {
    guard let path = consoleSocket else {
        var t = termios()
        try sys("tcgetattr", name) { tcgetattr(fd, &t) }
        t.c_oflag &= ~tcflag_t(ONLCR)
        try sys("tcsetattr", name) { tcsetattr(fd, TCSANOW, &t) }
        return fd
    }
    defer { close(fd) }
    try sendFdToUnixSocket(path: path, fd: fd, name: name)
    return nil
}

/// What the seccomp listener receives with the notify fd (runc's ContainerProcessState).
struct ContainerProcessState: Encodable {
    var ociVersion: String
    var fds: [String]
    var pid: Int32
    var metadata: String
    var state: State
}

/// Sends a seccomp notify fd and the process state to linux.seccomp.listenerPath.
func sendToSeccompListener(_ fd: Int32?, seccomp: OCI.Seccomp?, pid: pid_t, state: State) throws(RuntimeError) {
    guard let fd else { throw RuntimeError(.internal, "sync: seccomp message without a descriptor") }
    defer { close(fd) }
    guard let path = seccomp?.listenerPath, !path.isEmpty else {
        throw RuntimeError(
            .invalidArgument, "config.json: linux.seccomp.listenerPath: required when an action is SCMP_ACT_NOTIFY")
    }
    let message = ContainerProcessState(
        ociVersion: ociRuntimeSpecVersion, fds: ["seccompFd"], pid: pid,
        metadata: seccomp?.listenerMetadata ?? "", state: state)
    do { try sendFdToUnixSocket(path: path, fd: fd, name: encodeJSON(message)) } catch {
        throw RuntimeError.sys(error, "send seccomp notify fd to linux.seccomp.listenerPath")
    }
}

/// Writes uid_map and gid_map for a child that unshared a user namespace.
/// Unprivileged, gid_map can only be written once setgroups is denied (rootless, as runc).
func writeIDMaps(pid: pid_t, _ ns: NamespacePlan) throws(SysError) {
    do throws(SysError) {
        if !ns.uidMap.isEmpty { try Procfs.write("\(pid)/uid_map", ns.uidMap) }
        if geteuid() != 0 && !ns.gidMap.isEmpty { try Procfs.write("\(pid)/setgroups", "deny") }
        if !ns.gidMap.isEmpty { try Procfs.write("\(pid)/gid_map", ns.gidMap) }
    } catch  where error.errno == EPERM && geteuid() != 0 {
        throw SysError(
            error.op,
            (error.path ?? "") + " (unprivileged, only one's own uid and gid can be mapped: "
                + "swiftlet does not use newuidmap/newgidmap)", errno: EPERM)
    }
}

/// The caller's user name from /etc/passwd (no NSS: the binary is static), else the uid.
func ownerName() -> String {
    let uid = getuid()
    return PasswdEntry.lookup(uid: uid)?.name ?? String(uid)
}

/// Test hook (Spec/reliability.md): with SWIFTLET_TEST_STOP_AT=<stage> in its environment, `create`
/// stops itself (SIGSTOP) when it reaches that stage, so a fault test can SIGKILL it at a known point.
/// Stages in order: before-clone, after-clone, before-idmap, after-idmap (user namespace only),
/// after-cgroup, before-fifo-wait (init is set up and blocks on the exec fifo), after-state;
/// `restore`: restore-criu-root (the rootfs is bind-mounted for criu, which has not started).
/// The variable is read once, on the first stage reached; without it this costs one getenv.
private let testStopStage: String? = getenv("SWIFTLET_TEST_STOP_AT").map { String(cString: $0) }

func testStop(_ stage: String) {
    if testStopStage == stage { raise(SIGSTOP) }
}
