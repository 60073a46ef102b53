import Glibc
import CLinux
import OCI
import LinuxSystem
import Cgroups

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
    public init(root: String, id: String, bundle: String) { self.root = root; self.id = id; self.bundle = bundle }
}

/// Reads and validates `<bundle>/config.json`: the spec, and the JSON it came from (what the
/// state file keeps).
public func loadSpec(bundle: String) throws(RuntimeError) -> (spec: Spec, json: JSONValue) {
    let path = bundle + "/config.json"
    let bytes: [UInt8]
    do { bytes = try FS.readFile(path) } catch {
        if error.errno == ENOENT { throw RuntimeError(.invalidArgument, "JSON specification file config.json not found in \(bundle)") }
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
    if (spec.process?.terminal ?? false) && o.consoleSocket == nil && !o.foreground {
        throw RuntimeError(.invalidArgument, "cannot allocate tty if swiftlet will detach without setting console socket")
    }
    if !(spec.process?.terminal ?? false) && o.consoleSocket != nil {
        throw RuntimeError(.invalidArgument, "cannot use console socket if swiftlet will not detach or allocate tty")
    }
    let listenFds = getenv("LISTEN_FDS").flatMap { Int(String(cString: $0)) }.map { max(0, $0) } ?? 0
    try closeInheritedFds(keeping: o.preserveFds + listenFds)
    // The cgroup's directories are known now; it is made just before init (createProcesses).
    let systemd = o.systemdCgroup ? try SystemdUnit(cgroupsPath: spec.linux?.cgroupsPath, id: o.id) : nil
    let cgroupManager = systemd?.manager(layout: hostCgroupLayout)
        ?? CgroupManager(layout: hostCgroupLayout, cgroupsPath: spec.linux?.cgroupsPath, id: o.id)
    // A process cloned into a frozen cgroup never runs: fail now rather than at the sync deadline.
    if cgroupManager.isFrozen() { throw RuntimeError(.invalidState, "container's cgroup unexpectedly frozen") }
    let plan = try ContainerPlan(spec: spec, specJSON: specJSON, id: o.id, bundle: bundle, noPivot: o.noPivot, noNewKeyring: o.noNewKeyring,
                                 preserveFds: o.preserveFds, listenFds: listenFds, cgroupBinds: cgroupBinds(cgroupManager))
    defer { plan.closeFds() }
    let store = ContainerStore(root: o.root)
    // Held until create returns (or dies).
    let lock = try store.createLocked(o.id)
    defer { lock.release() }

    var initPid: pid_t = 0
    var middle: pid_t = 0
    var cgroup: CgroupManager?
    var startSocket: SeqPacket?
    var unitStarted = false
    func cleanup() {
        startSocket?.close()
        if initPid > 0 {
            kill(initPid, SIGKILL)
            _ = Proc.waitExit(initPid, startTime: nil, timeoutMs: 5000)
        }
        if middle > 0 { kill(middle, SIGKILL); _ = try? Proc.wait(middle) }
        if let cgroup { _ = try? tearDownCgroup(cgroup) }
        if unitStarted { systemd?.stop() }
        plan.intelRdt?.remove()
        try? store.remove(o.id)
    }
    do {
        var pty: Int32?
        let state = try createProcesses(o, plan: plan, store: store, manager: cgroupManager, lock: lock, initPid: &initPid,
                                        middle: &middle, pty: &pty, cgroup: &cgroup, startSocket: &startSocket,
                                        systemd: systemd, unitStarted: &unitStarted)
        try store.save(state)
        testStop("after-state")
        if let pf = o.pidFile {
            try step("write pid file") { try FS.writeFileAtomic(FS.absolute(pf, base: FS.cwd()), Array(String(state.pid).utf8), mode: 0o644, durable: false) }
        }
        if let socket = o.pidfdSocket {
            try step("send pidfd to --pidfd-socket") { try Proc.sendPidfd(state.pid, startTime: state.pidStartTime, to: socket) }
        }
        let skipped = plan.process?.seccomp?.skippedSyscalls ?? []
        return Created(state: state,
                       warnings: plan.warnings + (skipped.isEmpty ? [] : ["linux.seccomp: unknown syscalls skipped: \(skipped.joined(separator: ", "))"])
                           + deviceAccessWarnings(plan.spec),
                       ptyMaster: pty, startSocket: startSocket)
    } catch {
        cleanup()
        throw error
    }
}

private func createProcesses(_ o: CreateOptions, plan: ContainerPlan, store: ContainerStore, manager: CgroupManager,
                             lock: ContainerStore.Lock,
                             initPid: inout pid_t, middle: inout pid_t, pty: inout Int32?,
                             cgroup: inout CgroupManager?, startSocket: inout SeqPacket?,
                             systemd: SystemdUnit?, unitStarted: inout Bool) throws(RuntimeError) -> StoredState {
    var fifoFd: Int32 = -1
    if !o.startsAtOnce {
        let fifo = store.fifoPath(o.id)
        // 0622 whatever the umask: init opens it for writing after switching to the container's user.
        try step("create exec fifo") {
            try sys("mkfifo", fifo) { mkfifo(fifo, 0o622) }
            try sys("chmod", fifo) { chmod(fifo, 0o622) }
        }
        fifoFd = try step("open exec fifo") { try FS.open(fifo, SL_O_PATH) }
    }
    defer { if fifoFd >= 0 { close(fifoFd) } }
    let (parentSock, childSock) = try step("create sync socket") { try SeqPacket.pair() }
    var keepSocket = false
    defer { if !keepSocket { parentSock.close() } }

    let hooks = plan.spec.hooks
    let hasRuntimeHooks = !(hooks?.prestart ?? []).isEmpty || !(hooks?.createRuntime ?? []).isEmpty
    try step("create") { try Proc.assertSingleThreaded() }
    // systemd's unit (and so the cgroup) is made once init's pid is known, in `initPid` below.
    let selfAttach = systemd == nil && !manager.v1TaskFiles.isEmpty
    let cloneFlags = plan.namespaces.newUser && selfAttach ? nil : plan.namespaces.cloneFlags
    if o.foreground {
        if !o.noSubreaper {
            try step("run") { try Proc.setChildSubreaper() }
        } else if cloneFlags == nil {
            // Init is then the middle process's child: only a subreaper can wait for it.
            throw RuntimeError(.invalidArgument, "run --no-subreaper: this container's init is not swiftlet's own child "
                               + "(namespaces joined by path, time offsets, or a user namespace with cgroup v1): "
                               + "run without --no-subreaper")
        }
        _ = sl_sigmask_block_all()
    }
    // A provisional state (pid 0: "creating") with the cgroup's paths, so that `delete --force` can
    // clean up after a create that was killed half-way.
    var state = StoredState(id: o.id, pid: 0, pidStartTime: 0, bundle: plan.bundle, rootfs: plan.rootfs.rootfs,
                            created: Clock.rfc3339Nano(), owner: ownerName(), ownPidNamespace: plan.namespaces.newPid,
                            cgroupPaths: manager.paths, systemdUnit: systemd?.name, config: plan.specJSON)
    try store.save(state)
    testStop("before-clone")
    // Usually one clone makes init with its new namespaces; otherwise (Plan.swift, cloneFlags) a
    // middle process sets them up and forks init. Either way `middle` is our child until init reports.
    // The cgroup exists and is configured before init does; a cgroup2 tree (pure v2, or hybrid's
    // unified one) gets init by clone3 (Spec/cgroups.md).
    // v1 hierarchies: the first child moves itself in before it enters any namespace (writing 0 to
    // `tasks` skips the kernel's threadgroup lock and its RCU grace period, 7-20 ms per create
    // here). A new user namespace is then unshared after that, by a middle process.
    if systemd == nil { cgroup = try setUpCgroup(manager, spec: plan.spec) }
    let intoUnified: Bool
    (middle, intoUnified) = try spawnChild(cgroupDir: systemd == nil ? manager.cloneDir : nil, namespaces: cloneFlags ?? 0)
    if middle > 0 { testStop("after-clone") }
    if middle == 0 {
        parentSock.close()
        lock.release()   // else init would hold the container lock until exec, and `start` would wait forever
        Child.enterNamespaces(plan.namespaces, cloned: cloneFlags != nil, selfAttach: selfAttach ? manager : nil, childSock) {
            Child.initProcess(plan, sock: childSock, fifoFd: fifoFd, hasRuntimeHooks: hasRuntimeHooks)
        }
    }
    childSock.close()

    func hookState(_ status: Status) -> String { encodeJSON(store.ociState(state, status: status)) }

    // What the next read waits for, and how long it may take (Spec/sync-protocol.md, deadlines).
    var waitingFor = "the container's first process to report init's pid"
    var timeoutMs = syncStepTimeoutMs
    while true {
        let msg: SyncMessage?
        do { msg = try parentSock.next(waitingFor: waitingFor, timeoutMs: timeoutMs) } catch {
            throw RuntimeError.sys(error, "sync with container init")
        }
        guard let m = msg else {
            throw RuntimeError(.internal, "container init exited before it was ready")
        }
        switch m.kind {
        case .mapIDs:
            testStop("before-idmap")
            try step("write id mappings") { try writeIDMaps(pid: middle, plan.namespaces) }
            testStop("after-idmap")
            try step("sync") { try parentSock.send(.ack) }
        case .initPid:
            if m.text.isEmpty {
                initPid = middle   // made by the clone itself
            } else {
                initPid = pid_t(m.text) ?? 0
                _ = try? Proc.wait(middle)
            }
            middle = 0
            guard initPid > 0, let st = Proc.stat(initPid) else {
                throw RuntimeError(.internal, "container init exited before it was ready")
            }
            state.pid = initPid
            state.pidStartTime = st.startTime
            // Into its cgroup before it runs anything of the container's (it waits for `go`).
            if let systemd {
                cgroup = try startSystemdCgroup(systemd, manager: manager, pid: initPid, id: o.id, spec: plan.spec, started: &unitStarted)
            } else if let part = remainingCgroupPart(intoUnified: intoUnified, selfAttach: selfAttach) {
                do { try manager.add(pid: initPid, to: part) } catch { throw RuntimeError.cgroup(error, "join cgroup") }
            }
            state.cgroupPaths = manager.paths
            testStop("after-cgroup")
            if let rdt = plan.intelRdt { try step("linux.intelRdt") { try rdt.apply(pid: initPid) } }
            if !plan.netDevices.isEmpty { try step("linux.netDevices") { try moveNetDevices(plan.netDevices, pid: initPid) } }
            // Hooks see status "created" (what crun passes and the validation suite expects).
            do { try parentSock.send(.go, hookState(.created)) } catch {
                // init may have failed building its rootfs meanwhile: its own error says more.
                if let m = try? parentSock.next(waitingFor: "container init's error"), m.kind == .error {
                    throw m.childFailure("unable to start container process")
                }
                throw RuntimeError.sys(error, "sync")
            }
            waitingFor = "container init to set up the container"
            timeoutMs = syncStepTimeoutMs + hookAllowanceMs(hooks?.createContainer)
        case .runHooks:
            try Hooks.run(hooks?.prestart, kind: "prestart", state: hookState(.created))
            try Hooks.run(hooks?.createRuntime, kind: "createRuntime", state: hookState(.created))
            try step("sync") { try parentSock.send(.ack) }
        case .pty:
            guard let fd = m.fd else { throw RuntimeError(.internal, "sync: pty message without a descriptor") }
            pty = try step("send pty master to console socket") { try handOverPty(fd, name: m.text, consoleSocket: o.consoleSocket) }
            try step("sync") { try parentSock.send(.ack) }
        case .seccompFd:
            try sendToSeccompListener(m.fd, seccomp: plan.spec.linux?.seccomp, pid: initPid, state: store.ociState(state, status: .creating))
            try step("sync") { try parentSock.send(.ack) }
        case .ready:
            testStop("before-fifo-wait")
            if o.startsAtOnce { keepSocket = true; startSocket = parentSock }
            return state
        case .error:
            throw m.childFailure("unable to start container process")
        case .ack, .go, .start:
            throw RuntimeError(.internal, "sync: unexpected message \(m.kind) from container init")
        }
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
        throw RuntimeError(.invalidArgument, "config.json: linux.seccomp.listenerPath: required when an action is SCMP_ACT_NOTIFY")
    }
    let message = ContainerProcessState(ociVersion: ociRuntimeSpecVersion, fds: ["seccompFd"], pid: pid,
                                        metadata: seccomp?.listenerMetadata ?? "", state: state)
    do { try sendFdToUnixSocket(path: path, fd: fd, name: encodeJSON(message)) } catch {
        throw RuntimeError.sys(error, "send seccomp notify fd to linux.seccomp.listenerPath")
    }
}

/// Writes uid_map and gid_map for a child that unshared a user namespace.
func writeIDMaps(pid: pid_t, _ ns: NamespacePlan) throws(SysError) {
    if !ns.uidMap.isEmpty { try Procfs.write("\(pid)/uid_map", ns.uidMap) }
    if !ns.gidMap.isEmpty { try Procfs.write("\(pid)/gid_map", ns.gidMap) }
}

/// The caller's user name from /etc/passwd (no NSS: the binary is static), else the uid.
func ownerName() -> String {
    let uid = getuid()
    return PasswdEntry.lookup(uid: uid)?.name ?? String(uid)
}

/// Test hook (Spec/reliability.md): with SWIFTLET_TEST_STOP_AT=<stage> in its environment, `create`
/// stops itself (SIGSTOP) when it reaches that stage, so a fault test can SIGKILL it at a known point.
/// Stages in order: before-clone, after-clone, before-idmap, after-idmap (user namespace only),
/// after-cgroup, before-fifo-wait (init is set up and blocks on the exec fifo), after-state.
/// The variable is read once, on the first stage reached; without it this costs one getenv.
private let testStopStage: String? = getenv("SWIFTLET_TEST_STOP_AT").map { String(cString: $0) }

func testStop(_ stage: String) {
    if testStopStage == stage { raise(SIGSTOP) }
}
