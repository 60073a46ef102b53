import CLinux
import Cgroups
import Glibc
import LinuxSystem
import OCI

/// `start`: lets init exec the user process by reading the exec fifo, then runs poststart hooks.
/// A failing poststart hook fails `start` and kills the container, as runc does (Spec/cli.md).
public func startContainer(root: String, id: String) throws(RuntimeError) {
    let store = ContainerStore(root: root)
    let (lock, state) = try store.lockAndLoad(id)
    defer { lock.release() }
    switch store.status(state) {
    case .created: break
    case .stopped: throw RuntimeError(.invalidState, "cannot start a container that has stopped")
    case .creating:
        throw RuntimeError(
            .invalidState, "container \(id) is still being created (or its create was killed: delete --force it)")
    case .paused: throw RuntimeError(.invalidState, "cannot start a container in the paused state")
    default: throw RuntimeError(.invalidState, "cannot start an already running container")
    }
    guard case .object(let config) = state.config, (config["process"] ?? .null) != .null else {
        throw RuntimeError(.invalidState, "cannot start a container without a process (config.json has no \"process\")")
    }
    let fifo = store.fifoPath(id)
    let fd = try step("open exec fifo") { try FS.open(fifo, O_RDONLY | O_NONBLOCK) }
    defer { close(fd) }
    // The fifo's name goes at once (init writes through its own descriptor): from here on the
    // container is no longer `created`, also if this command dies before init has gone. Removing it
    // only after init's byte left a window in which a killed start made a running container look
    // `created`, and the next start waited forever for a byte that never comes.
    unlink(fifo)
    // init's blocking open(O_WRONLY) returns now; wait for its byte, watching that it stays alive.
    var byte: UInt8 = 0
    var deadline = Clock.monotonicMs() + Int64(syncStepTimeoutMs)
    while true {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, 100)
        let n = read(fd, &byte, 1)
        if n == 1 {
            testStop("start-after-go")
            break
        }
        if !Proc.isAlive(state.pid, startTime: state.pidStartTime) {
            throw RuntimeError(.invalidState, "cannot start a container that has stopped")
        }
        if Clock.monotonicMs() > deadline { throw startTimeout("container init to take the start", id) }
    }
    // Poststart hooks run after the user process was executed: init's write end is close-on-exec,
    // so EOF on the fifo means execve happened (or init died, which the hooks then see as stopped).
    // startContainer hooks run in between.
    deadline = Clock.monotonicMs() + Int64(syncStepTimeoutMs + hookAllowanceMs(try? state.hooks()?.startContainer))
    while true {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, 100)
        if read(fd, &byte, 1) == 0 || !Proc.isAlive(state.pid, startTime: state.pidStartTime) { break }
        if Clock.monotonicMs() > deadline { throw startTimeout("container init to exec the process", id) }
    }
    try runPoststart(state, ociState: encodeJSON(store.ociState(state, status: .running)))
}

/// start's waits are bounded like the sync steps' (a frozen or stuck init must not hang `start`).
private func startTimeout(_ what: String, _ id: String) -> RuntimeError {
    RuntimeError(.internal, "start \(id): timed out waiting for \(what) (\(syncStepTimeoutMs / 1000) s)")
}

/// `run`'s start (create with `startsAtOnce`): tells init, waiting on the sync socket, to exec; waits
/// until it has (EOF: the socket is close-on-exec) and runs the poststart hooks. Without the exec fifo
/// and without loading the state again, unlike `start`.
public func startCreated(_ created: Created, root: String) throws(RuntimeError) {
    guard let sock = created.startSocket else { return try startContainer(root: root, id: created.state.id) }
    defer { sock.close() }
    try step("start container init") { try sock.send(.start) }
    let msg: SyncMessage?
    do {
        let hooks = try? created.state.hooks()
        msg = try sock.next(
            waitingFor: "container init to exec the process",
            timeoutMs: syncStepTimeoutMs + hookAllowanceMs(hooks?.startContainer))
    } catch { throw RuntimeError.sys(error, "wait for container init to start") }
    if let m = msg {
        if m.kind == .error { throw m.childFailure("unable to start container process") }
        throw RuntimeError(.internal, "sync: unexpected message \(m.kind) from container init")
    }
    try runPoststart(
        created.state, ociState: encodeJSON(ContainerStore(root: root).ociState(created.state, status: .running)))
}

/// Poststart hooks, in order; the first failure kills the container's processes (it is then
/// `stopped`; `run` deletes it) and is the command's error. runc 1.1 and 1.3 fail this way; the
/// runtime-spec asks for a warning (Spec/cli.md, deliberate differences).
private func runPoststart(_ state: StoredState, ociState: String) throws(RuntimeError) {
    do {
        try Hooks.run(try state.hooks()?.poststart, kind: "poststart", state: ociState)
    } catch {
        for pid in containerPids(state) { _ = kill(pid, SIGKILL) }
        _ = Proc.waitExit(state.pid, startTime: state.pidStartTime, timeoutMs: 10_000)
        throw error
    }
}

/// Runs one kind of the container's hooks after the fact (the container started or is gone), so
/// failures, an unreadable hooks section included, are warnings.
private func runStoredHooks(
    _ state: StoredState, _ kind: String, _ pick: KeyPath<OCI.Hooks, [Hook]?>,
    ociState: String
) -> [String] {
    let hooks: OCI.Hooks?
    do { hooks = try state.hooks() } catch { return ["\(kind) hooks not run: \(error)"] }
    return Hooks.runWarning(hooks?[keyPath: pick], kind: kind, state: ociState)
}

/// `state`: the OCI state of one container.
public func containerState(root: String, id: String) throws(RuntimeError) -> State {
    let store = ContainerStore(root: root)
    let s = try store.load(id)
    return store.ociState(s, status: store.status(s))
}

/// `list`: every container's state.
public func listContainers(root: String) -> [State] {
    let store = ContainerStore(root: root)
    return store.ids().compactMap { id in
        guard let s = try? store.load(id) else { return nil }
        return store.ociState(s, status: store.status(s))
    }
}

/// `kill`: sends a signal to init, or with `all` to every process of the container. Signal 0
/// probes that init exists. As runc: `all` signals whatever is left in the cgroup also once init
/// has exited (nothing left: success), and SIGKILL to a container without a PID namespace of its own
/// kills every process of its cgroup (runc 1.2+; Spec/cli.md), as none dies with init.
public func killContainer(root: String, id: String, signal: String, all: Bool) throws(RuntimeError) {
    guard let sig = Signals.parse(signal) ?? (Int32(signal) == 0 ? 0 : nil) else {
        throw RuntimeError(.invalidArgument, "unknown signal \"\(signal)\"")
    }
    let store = ContainerStore(root: root)
    let state = try store.load(id)
    let status = store.status(state)
    if status == .creating { throw RuntimeError(.invalidState, "container \(id) is still being created") }
    if all || (sig == SIGKILL && !state.ownPidNamespace) {
        if let cgroup = state.cgroup, cgroup.exists() {
            do { try cgroup.killAll(signal: sig) } catch { throw RuntimeError.cgroup(error, "kill --all") }
            return
        }
        if status != .stopped {
            for pid in containerPids(state) { _ = kill(pid, sig) }
            return
        }
        if all { return }
    }
    if status == .stopped { throw RuntimeError(.invalidState, "container not running") }
    // Init may die between the status check and the signal (a concurrent delete): not running then.
    do { try Proc.signal(state.pid, startTime: state.pidStartTime, sig) } catch {
        if error.errno == ESRCH { throw RuntimeError(.invalidState, "container not running") }
        throw RuntimeError.sys(error, "kill container init")
    }
    // A SIGKILL does nothing to a process in a frozen v1 cgroup until it is thawed: as runc, a
    // paused container is thawed after one, so that it dies (kill --all thaws in `killAll`).
    if sig == SIGKILL, status == .paused, let cgroup = state.cgroup {
        do { try cgroup.thaw() } catch { throw RuntimeError.cgroup(error, "thaw after SIGKILL") }
    }
}

/// Processes of the container: its cgroup's, else the members of init's PID namespace when it has
/// its own, else init alone.
func containerPids(_ s: StoredState) -> [pid_t] {
    if let cgroup = s.cgroup, cgroup.exists(), let pids = try? cgroup.pids() { return pids }
    guard s.ownPidNamespace, Proc.isAlive(s.pid, startTime: s.pidStartTime),
        let ns = Proc.namespaceInode(String(s.pid), "pid")
    else { return Proc.isAlive(s.pid) ? [s.pid] : [] }
    let names = (try? FS.listDirectory("/proc")) ?? []
    return names.compactMap { pid_t($0) }.filter { Proc.namespaceInode(String($0), "pid") == ns }
}

/// `delete`: removes a stopped (or created) container; `force` kills a running one first.
/// Returns warnings from poststop hooks, which never keep the container around (runtime.md).
@discardableResult
public func deleteContainer(root: String, id: String, force: Bool) throws(RuntimeError) -> [String] {
    let store = ContainerStore(root: root)
    try ContainerStore.validate(id: id)
    // Lock first, then read the state: concurrent deletes take turns, and the later ones find the
    // container gone. --force never fails on absence.
    let lock: ContainerStore.Lock
    do { lock = try store.lock(id) } catch {
        if error.kind == .notFound && force { return [] }
        throw error
    }
    defer { lock.release() }
    let state: StoredState
    do { state = try store.load(id) } catch {
        // A directory without state: a create killed before its first state write (a running
        // create holds the lock from just after mkdir).
        if error.kind == .notFound {
            try? store.remove(id)
            if force { return [] }
        }
        throw error
    }
    let status = store.status(state)
    if status == .running || status == .paused || status == .creating {
        guard force else {
            throw RuntimeError(.invalidState, "cannot delete container \(id) that is not stopped: \(status.rawValue)")
        }
    }
    if status != .stopped && status != .creating {
        if status == .paused { try? state.cgroup?.thaw() }
        for pid in containerPids(state) { _ = kill(pid, SIGKILL) }
        // Init itself too, whatever the cgroup listing gave (through a pidfd: never a recycled pid).
        try? Proc.signal(state.pid, startTime: state.pidStartTime, SIGKILL)
        // Bounded, but generously: with ten creates migrating into cgroups beside two busy loops, a
        // SIGKILLed init took more than 10 s to exit here (ConcurrencyTests).
        if !Proc.waitExit(state.pid, startTime: state.pidStartTime, timeoutMs: 30_000) {
            throw RuntimeError(.internal, "container init (pid \(state.pid)) did not exit after SIGKILL")
        }
    }
    testStop("delete-after-kill")
    if let cgroup = state.cgroup { try tearDownCgroup(cgroup) }
    if let error = state.unit?.stop() { throw error }
    IntelRdtPlan.stored(state)?.remove()
    testStop("delete-before-remove")
    try store.remove(id)
    let ociState = encodeJSON(store.ociState(state, status: .stopped))
    return runStoredHooks(state, "poststop", \.poststop, ociState: ociState)
}

/// Foreground wait (run/exec): forwards signals to `pid`, reaps children (we are their
/// subreaper) and returns the exit code of `pid`. With a pty master, copies our stdin to it and
/// its output to our stdout (stdin in raw mode when it is a terminal). Signals must be blocked.
public func waitForeground(pid: pid_t, pty: Int32? = nil) -> Int32 {
    let sfd = sl_signalfd_all()
    defer { if sfd >= 0 { close(sfd) } }
    var saved = termios()
    let raw = pty != nil && isatty(0) != 0 && sl_tty_raw(0, &saved) == 0
    defer { if raw { _ = sl_tty_restore(0, &saved) } }
    if let pty { copyWindowSize(to: pty) }
    var stdinOpen = pty != nil
    var buf = [UInt8](repeating: 0, count: 16384)
    func drain(_ from: Int32, to: Int32) -> Bool {
        let n = read(from, &buf, buf.count)
        if n <= 0 { return false }
        _ = try? FS.writeAll(fd: to, Array(buf[0..<n]))
        return true
    }
    while true {
        var fds = [
            pollfd(fd: sfd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: pty ?? -1, events: Int16(POLLIN), revents: 0),
            pollfd(fd: stdinOpen ? 0 : -1, events: Int16(POLLIN), revents: 0),
        ]
        if poll(&fds, 3, sfd >= 0 ? -1 : 100) < 0 && errno != EINTR { return 255 }
        if let pty, fds[1].revents != 0 { _ = drain(pty, to: 1) }
        if let pty, fds[2].revents != 0, !drain(0, to: pty) { stdinOpen = false }
        while true {
            let sig = sl_signalfd_read(sfd)
            if sig <= 0 { break }
            if sig == SIGCHLD {
                while true {
                    var st: Int32 = 0
                    let r = waitpid(-1, &st, WNOHANG)
                    if r <= 0 { break }
                    if r == pid {
                        if let pty {
                            _ = fcntl(pty, F_SETFL, O_NONBLOCK)
                            while drain(pty, to: 1) {}
                        }
                        return Proc.exitCode(st)
                    }
                }
            } else if sig == SIGWINCH, let pty {
                copyWindowSize(to: pty)
            } else {
                _ = kill(pid, Int32(sig))
            }
        }
    }
}

func copyWindowSize(to pty: Int32) {
    var rows: UInt16 = 0
    var cols: UInt16 = 0
    if sl_get_winsize(0, &rows, &cols) == 0 { _ = sl_set_winsize(pty, rows, cols) }
}

/// The process of the config.json a container was created with (exec starts from it). Only that
/// part is decoded: exec probes run this once a second per container.
public func containerProcess(root: String, id: String) throws(RuntimeError) -> OCI.Process? {
    try ContainerStore(root: root).load(id).configMember("process", as: OCI.Process.self)
}

/// `pause` / `resume`: freeze or thaw every process of the container (v1 freezer, v2 cgroup.freeze).
public func pauseContainer(root: String, id: String, pause: Bool) throws(RuntimeError) {
    let store = ContainerStore(root: root)
    let (lock, state) = try store.lockAndLoad(id)
    defer { lock.release() }
    let status = store.status(state)
    let cgroup = try state.liveCgroup(purpose: " to freeze")
    if pause {
        guard status == .running || status == .created else {
            throw RuntimeError(.invalidState, "container not running")
        }
        do { try cgroup.freeze() } catch { throw RuntimeError.cgroup(error, "pause") }
    } else {
        guard status == .paused else { throw RuntimeError(.invalidState, "container not paused") }
        do { try cgroup.thaw() } catch { throw RuntimeError.cgroup(error, "resume") }
    }
}

/// `ps`: the container's processes (from its cgroup).
public func containerProcesses(root: String, id: String) throws(RuntimeError) -> [pid_t] {
    let store = ContainerStore(root: root)
    let state = try store.load(id)
    if store.status(state) == .stopped { return [] }
    return containerPids(state)
}

/// `update`: applies new resources to a running container's cgroup and records them. `change`
/// gets the current resources and returns the new ones (the CLI merges flags or a resources file).
/// A failed update leaves the previous limits in force (the cgroup layer rolls back).
public func updateContainer(
    root: String, id: String,
    change: (Resources) throws(RuntimeError) -> Resources
) throws(RuntimeError) {
    let store = ContainerStore(root: root)
    let (lock, loaded) = try store.lockAndLoad(id)
    defer { lock.release() }
    var state = loaded
    if store.status(state) == .stopped { throw RuntimeError(.invalidState, "container not running") }
    let cgroup = try state.liveCgroup()
    var spec = try state.spec()
    let updated = try change(spec.linux?.resources ?? Resources())
    var linux = spec.linux ?? Linux()
    linux.resources = updated
    spec.linux = linux
    state.config = encodeJSONValue(spec)
    // The limits in force stay the recorded ones: if the state cannot be saved (disk full), the
    // cgroup gets its previous values back.
    var saveError: RuntimeError?
    var resources = effectiveResources(spec)
    if state.systemdUserBus == true { resources.devices = nil }  // rootless: as create (SystemdCgroup.swift)
    try state.unit?.update(resources, layout: cgroup.layout)
    do throws(CgroupError) {
        try cgroup.update(resources) {
            do throws(RuntimeError) { try store.save(state) } catch {
                saveError = error
                return false
            }
            return true
        }
    } catch { throw RuntimeError.cgroup(error, "update") }
    if let saveError { throw saveError }
}

/// `events --stats`: one stats sample of the container's cgroup.
public func containerStats(root: String, id: String) throws(RuntimeError) -> CgroupStats {
    let store = ContainerStore(root: root)
    let state = try store.load(id)
    if store.status(state) == .stopped { throw RuntimeError(.invalidState, "container not running") }
    let cgroup = try state.liveCgroup()
    do { return try cgroup.stats() } catch { throw RuntimeError.cgroup(error, "stats") }
}

/// An OOM watcher on the container's cgroup, for the `events` stream.
public func containerOOMWatcher(root: String, id: String) throws(RuntimeError) -> OOMWatcher {
    let state = try ContainerStore(root: root).load(id)
    let cgroup = try state.liveCgroup()
    do { return try OOMWatcher(cgroup) } catch { throw RuntimeError.cgroup(error, "events") }
}
