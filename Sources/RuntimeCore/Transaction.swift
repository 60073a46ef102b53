import CLinux
import Cgroups
import Glibc
import LinuxSystem

/// What a create, exec or restore has made so far, recorded as it is made, and undone by one
/// `rollback()` (in the reverse order) when the command fails: nothing is left behind (processes,
/// pty, cgroup, systemd unit, resctrl group, temporary mounts, state directory).
final class Transaction {
    private let store: ContainerStore?
    private let id: String
    /// The state directory is ours (made by `createLocked`): removed on rollback.
    private var ownsStateDir: Bool
    /// The first child while it is a middle process (killed and reaped), and the container's process
    /// (init, exec's process, the restored init).
    var middle: pid_t = 0
    var pid: pid_t = 0
    /// Wait (bounded) for `pid` to be gone after the SIGKILL (create, restore; exec does not wait).
    var waitForPid = true
    var pty: Int32?
    /// `run`: the sync socket kept to start init with.
    var socket: SeqPacket?
    var cgroup: CgroupManager?
    var systemdUnit: SystemdUnit?
    var intelRdt: IntelRdtPlan?
    /// Mounts made for the command itself (restore's criu root): detached and their directory removed.
    var mounts: [String] = []

    /// A transaction that owns container `id`'s new state directory in `store` (create, restore).
    init(store: ContainerStore, id: String) {
        self.store = store
        self.id = id
        ownsStateDir = true
    }

    /// A transaction over processes only (exec).
    init() {
        store = nil
        id = ""
        ownsStateDir = false
    }

    /// Writes the provisional state (pid 0: "creating") with the cgroup's paths, so that `delete
    /// --force` can clean up after a create or restore killed half-way.
    func saveProvisionalState(
        _ plan: ContainerPlan, cgroupPaths: [String: String],
        systemdUnit: SystemdUnit? = nil
    ) throws(RuntimeError) -> StoredState {
        var state = StoredState(
            id: id, pid: 0, pidStartTime: 0, bundle: plan.bundle, rootfs: plan.rootfs.rootfs,
            created: Clock.rfc3339Nano(), owner: ownerName(), ownPidNamespace: plan.namespaces.newPid,
            cgroupPaths: cgroupPaths, systemdUnit: systemdUnit?.name, config: plan.specJSON)
        if systemdUnit?.userBus == true { state.systemdUserBus = true }
        try store?.save(state)
        return state
    }

    /// Unmounts and removes a mount of `mounts` now (restore, once criu is done with it).
    func unmount(_ path: String) {
        _ = sl_umount2(path, SL_MNT_DETACH)
        rmdir(path)
        mounts.removeAll { $0 == path }
    }

    func rollback() {
        socket?.close()
        if let pty { close(pty) }
        if pid > 0 {
            kill(pid, SIGKILL)
            if waitForPid { _ = Proc.waitExit(pid, startTime: nil, timeoutMs: 5000) }
        }
        if middle > 0 {
            kill(middle, SIGKILL)
            _ = try? Proc.wait(middle)
        }
        for path in mounts.reversed() { unmount(path) }
        if let cgroup { _ = try? tearDownCgroup(cgroup) }
        systemdUnit?.stop()
        intelRdt?.remove()
        if ownsStateDir, let store { try? store.remove(id) }
    }
}

/// Refuses a terminal that nothing would receive, and a --console-socket that nothing would be
/// sent to (runc's checks and wording). `detached`: the command returns before the process ends
/// (create, run -d, exec -d, restore -d). exec does not check an unused socket (`checkUnused`).
func checkConsoleSocket(
    terminal: Bool, consoleSocket: String?, detached: Bool,
    checkUnused: Bool = true
) throws(RuntimeError) {
    if terminal && consoleSocket == nil && detached {
        throw RuntimeError(
            .invalidArgument, "cannot allocate tty if swiftlet will detach without setting console socket")
    }
    if checkUnused && !terminal && consoleSocket != nil {
        throw RuntimeError(.invalidArgument, "cannot use console socket if swiftlet will not detach or allocate tty")
    }
}

/// Writes --pid-file (relative to the current directory), when given.
func writePidFile(_ path: String?, pid: pid_t) throws(RuntimeError) {
    guard let path, !path.isEmpty else { return }
    try step("write pid file") {
        try FS.writeFileAtomic(FS.absolute(path, base: FS.cwd()), Array(String(pid).utf8), mode: 0o644, durable: false)
    }
}
