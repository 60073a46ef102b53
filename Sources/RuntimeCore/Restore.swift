import CLinux
import Cgroups
import Checkpoint
import Glibc
import LinuxSystem
import Mounts
import OCI

/// What `restore` was asked to do (runc's flags; see Spec/checkpoint.md).
public struct RestoreOptions: Sendable {
    public var root: String
    public var id: String
    public var criu: String
    public var bundle: String
    public var imagePath: String
    public var workPath: String?
    public var consoleSocket: String?
    public var pidFile: String?
    public var detach = false
    public var noSubreaper = false
    public var flags = CriuFlags()
    public var lsmProfile: String?
    public var lsmMountContext: String?
    /// --systemd-cgroup: the cgroup is a transient systemd unit, started with criu's pid in it.
    public var systemdCgroup = false
    public init(root: String, id: String, criu: String, bundle: String, imagePath: String) {
        self.root = root
        self.id = id
        self.criu = criu
        self.bundle = bundle
        self.imagePath = imagePath
    }
}

/// A restored container: its state, and the pty master when it has a terminal and no
/// --console-socket took it (for the foreground copy loop).
public struct Restored: Sendable {
    public var state: StoredState
    public var ptyMaster: Int32?
}

/// `restore`: creates container `id` from the bundle's config.json with its processes taken from
/// CRIU images. The container ends up as `run -d` leaves one: state written, cgroup set up, status
/// running. On failure nothing is left behind.
public func restoreContainer(_ o: RestoreOptions) throws(RuntimeError) -> Restored {
    try ContainerStore.validate(id: o.id)
    let checks = try CriuCommonChecks(o.flags)
    if let p = o.lsmProfile, !p.isEmpty {
        throw RuntimeError(.unsupported, "--lsm-profile: not supported by swiftlet (no AppArmor/SELinux on this host)")
    }
    if let p = o.lsmMountContext, !p.isEmpty {
        throw RuntimeError(.unsupported, "--lsm-mount-context: not supported by swiftlet (no SELinux on this host)")
    }
    let bundle = FS.cleanPath(FS.absolute(o.bundle, base: FS.cwd()))
    let (spec, specJSON) = try loadSpec(bundle: bundle)
    // A terminal comes back as a new pty pair (CRIU's orphan-pts-master notification): its master
    // goes to --console-socket, or to the foreground copy loop; the same rules as create.
    try checkConsoleSocket(
        terminal: spec.process?.terminal ?? false, consoleSocket: o.consoleSocket, detached: o.detach)
    let imagesAbs = try checkImageDir(o.imagePath, spec)
    let systemd =
        o.systemdCgroup
        ? try SystemdUnit(cgroupsPath: spec.linux?.cgroupsPath, id: o.id, annotations: spec.annotations) : nil
    let manager =
        systemd?.manager(layout: hostCgroupLayout)
        ?? CgroupManager(layout: hostCgroupLayout, cgroupsPath: spec.linux?.cgroupsPath, id: o.id)
    let plan = try ContainerPlan(
        spec: spec, specJSON: specJSON, id: o.id, bundle: bundle, noPivot: false, noNewKeyring: false,
        preserveFds: 0, listenFds: 0, cgroupBinds: cgroupBinds(manager))
    defer { plan.closeFds() }
    let store = ContainerStore(root: o.root)
    let lock = try store.createLocked(o.id)
    defer { lock.release() }
    let txn = Transaction(store: store, id: o.id)
    do throws(RuntimeError) {
        var state = try txn.saveProvisionalState(plan, cgroupPaths: manager.paths, systemdUnit: systemd)
        if systemd == nil { txn.cgroup = try setUpCgroup(manager, spec: spec) }
        let r = RestoreRun(
            o: o, plan: plan, store: store, manager: manager, systemd: systemd, txn: txn, checks: checks,
            images: imagesAbs)
        let restoredPid = try r.run(state)
        guard let pst = Proc.stat(restoredPid) else {
            throw criuFailure("restore", "criu reported no restored process", logPath: r.logPath)
        }
        state.pid = restoredPid
        state.pidStartTime = pst.startTime
        try store.save(state)
        try writePidFile(o.pidFile, pid: restoredPid)
        if (spec.process?.terminal ?? false) && !r.gotPty {
            throw RuntimeError(
                .internal, "restore: criu restored a terminal container without handing over its pty master")
        }
        return Restored(state: state, ptyMaster: txn.pty)
    } catch {
        txn.rollback()
        throw error
    }
}

/// --image-path: a directory with a checkpoint in it that criu can read (it reads the images of a
/// user-namespaced container as the container's root). Returns its absolute path.
private func checkImageDir(_ path: String, _ spec: Spec) throws(RuntimeError) -> String {
    let imagesAbs = FS.cleanPath(FS.absolute(path, base: FS.cwd()))
    guard let st = FS.statOf(imagesAbs), FS.isDirectory(st) else {
        throw RuntimeError(.invalidArgument, "--image-path: \(imagesAbs): not a directory or does not exist")
    }
    guard FS.exists(imagesAbs + "/inventory.img") else {
        throw RuntimeError(.invalidArgument, "--image-path: \(imagesAbs): no checkpoint there (inventory.img missing)")
    }
    if (spec.linux?.namespaces ?? []).contains(where: { $0.type == .user }) {
        let rootUid = hostID(of: 0, in: spec.linux?.uidMappings)
        if st.st_uid != rootUid && st.st_mode & 0o001 == 0 {
            throw RuntimeError(
                .invalidArgument,
                "--image-path: \(imagesAbs): the container's root (host uid \(rootUid)) cannot reach the images "
                    + "(mode \(String(st.st_mode & 0o777, radix: 8))); criu restores a user-namespaced container as "
                    + "that user: allow it, e.g. chmod o+x"
            )
        }
    }
    return imagesAbs
}

/// One criu restore run: its root (a bind of the rootfs), its options, the service, its callbacks.
private final class RestoreRun {
    let o: RestoreOptions
    let plan: ContainerPlan
    let store: ContainerStore
    let manager: CgroupManager
    let systemd: SystemdUnit?
    let txn: Transaction
    let checks: CriuCommonChecks
    let images: String
    /// criu handed over the restored terminal's pty master (sent on to --console-socket, or in `txn.pty`).
    var gotPty = false

    init(
        o: RestoreOptions, plan: ContainerPlan, store: ContainerStore, manager: CgroupManager, systemd: SystemdUnit?,
        txn: Transaction,
        checks: CriuCommonChecks, images: String
    ) {
        self.o = o
        self.plan = plan
        self.store = store
        self.manager = manager
        self.systemd = systemd
        self.txn = txn
        self.checks = checks
        self.images = images
    }

    var criuRoot: String { store.criuRootPath(o.id) }
    var logPath: String {
        (o.workPath.flatMap { $0.isEmpty ? nil : FS.cleanPath(FS.absolute($0, base: FS.cwd())) } ?? images)
            + "/restore.log"
    }

    /// Runs criu; returns the restored init's pid (checked to be > 0). The criu root is unmounted.
    func run(_ state: StoredState) throws(RuntimeError) -> pid_t {
        // CRIU's root must be a mount point whose parent is not over-mounted: a bind of the rootfs.
        let root = criuRoot
        try step("prepare criu root") {
            try FS.mkdir(root, 0o755)
            txn.mounts.append(root)  // rmdir'd on rollback even when the mount fails
            try sys("mount rootfs to", root) { sl_mount(plan.rootfs.rootfs, root, nil, SL_MS_BIND | SL_MS_REC, nil) }
        }
        try createRestoreMountpoints(plan.spec, bundle: plan.bundle, root: root)
        testStop("restore-criu-root")
        let imagesDir = try openCriuDir(images, what: "--image-path")
        defer { close(imagesDir.fd) }
        var work: (path: String, fd: Int32)?
        if let w = o.workPath, !w.isEmpty { work = try openCriuDir(w, what: "--work-path") }
        defer { if let work { close(work.fd) } }
        let (options, extraFds) = try criuOptions(imagesFd: imagesDir.fd, workFd: work?.fd)
        if !o.detach {
            if !o.noSubreaper { try step("restore") { try Proc.setChildSubreaper() } }
            _ = sl_sigmask_block_all()
        }
        var opts = options
        let service = try criu { () throws(CriuError) in try CriuService.start(binary: o.criu, extraFds: extraFds) }
        // CRIU restores the processes into the cgroup it runs in: put it in the container's, and
        // tell it where that is (cg_root per controller, from /proc/PID/cgroup).
        do throws(RuntimeError) {
            try joinCgroup(criu: service.pid)
            opts.cgroupRoots = try cgroupRoots(of: service.pid)
        } catch {
            _ = kill(service.pid, SIGKILL)
            service.finish()
            throw error
        }
        let pid = try call(service, opts, state)
        txn.unmount(root)
        return pid
    }

    /// Puts criu in the container's cgroup; with the systemd driver, starts the unit with criu in it.
    private func joinCgroup(criu pid: pid_t) throws(RuntimeError) {
        guard let systemd else {
            do { try manager.add(pid: pid) } catch {
                throw RuntimeError.cgroup(error, "restore: put criu in the container's cgroup")
            }
            return
        }
        var started = false
        defer { if started { txn.systemdUnit = systemd } }  // stopped on rollback only when we started it
        txn.cgroup = try startSystemdCgroup(
            systemd, manager: manager, pid: pid, id: o.id, spec: plan.spec, started: &started)
    }

    /// CRIU's restore options, and the descriptors it inherits (namespaces joined by path).
    func criuOptions(imagesFd: Int32, workFd: Int32?) throws(RuntimeError) -> (CriuOptions, [Int32]) {
        let spec = plan.spec
        var opts = CriuOptions()
        opts.imagesDirFd = imagesFd
        opts.workDirFd = workFd
        opts.logFile = "restore.log"
        opts.evasiveDevices = true
        opts.restoreSibling = true
        opts.root = criuRoot
        checks.apply(to: &opts)
        opts.configFile = criuConfigFile(spec)
        opts.externalMounts = externalMounts(spec: spec, bundle: plan.bundle, cgroupPaths: manager.paths)
            .map { ($0.destination, $0.source) }
        // Namespaces joined by path: net/pid were external at dump and are handed over as fds
        // (criu's fds 4, 5, ...); the others are joined by CRIU itself.
        var extraFds: [Int32] = []
        for j in plan.namespaces.join {
            if let key = externalNamespaceKey(j.type) {
                opts.inheritFds.append((key, Int32(4 + extraFds.count)))
                extraFds.append(j.fd)
            }
        }
        for (i, n) in (spec.linux?.namespaces ?? []).enumerated() {
            guard let path = n.path, !path.isEmpty, externalNamespaceKey(n.type) == nil else { continue }
            guard let name = criuNamespaceName(n.type) else {
                throw RuntimeError(
                    .unsupported,
                    "config.json: linux.namespaces[\(i)]: restore cannot join a \(n.type.rawValue) namespace by path")
            }
            opts.joinNamespaces.append((name, path))
        }
        // Pipes among init's stdio at dump time are replaced by ours (what runc does).
        for (i, name) in readDescriptors(images).enumerated() where name.hasPrefix("pipe:") {
            opts.inheritFds.append((name, Int32(i)))
        }
        return (opts, extraFds)
    }

    /// The RESTORE request, with criu's notifications answered; returns the restored init's pid.
    func call(_ service: CriuService, _ opts: CriuOptions, _ state: StoredState) throws(RuntimeError) -> pid_t {
        let resp: CriuResponse
        do throws(CriuError) {
            resp = try service.call(CriuRequest(type: .restore, options: opts)) { (script, pid, fd) throws(CriuError) in
                try notified(script, pid: pid, fd: fd, state)
            }
        } catch {
            service.finish()
            throw criuFailure("restore", "\(error)", logPath: logPath)
        }
        let status = service.finish()
        if let pid = resp.restoredPid, pid > 0 { txn.pid = pid }
        guard resp.success else { throw criuFailure("restore", resp, logPath: logPath) }
        if status != 0 { throw criuFailure("restore", "criu exited with status \(status)", logPath: logPath) }
        guard txn.pid > 0 else { throw criuFailure("restore", "criu reported no restored process", logPath: logPath) }
        return txn.pid
    }

    /// One criu notification: the pty master, the namespaces made (hooks), the restored pid.
    func notified(_ script: String, pid: pid_t, fd: Int32?, _ state: StoredState) throws(CriuError) {
        if script == "orphan-pts-master", let fd {
            do { txn.pty = try handOverPty(fd, name: "orphan-pts-master", consoleSocket: o.consoleSocket) } catch {
                throw CriuError("restore: send the pty master to --console-socket", cause: error)
            }
            gotPty = true
            return
        }
        if let fd { close(fd) }
        switch script {
        case "setup-namespaces":
            // The restored init exists in its namespaces: prestart/createRuntime hooks, as runc.
            var s = state
            s.pid = pid
            let ociState = encodeJSON(store.ociState(s, status: .created))
            let hooks = plan.spec.hooks
            do {
                try Hooks.run(hooks?.prestart, kind: "prestart", state: ociState)
                try Hooks.run(hooks?.createRuntime, kind: "createRuntime", state: ociState)
            } catch { throw CriuError("", cause: error) }
        case "post-restore":
            txn.pid = pid
        default:
            break
        }
    }
}

/// CRIU's names for namespaces it can join (join_ns).
func criuNamespaceName(_ t: NamespaceType) -> String? {
    switch t {
    case .ipc: "ipc"
    case .uts: "uts"
    case .user: "user"
    case .time: "time"
    default: nil
    }
}

/// The stdio names checkpoint recorded (descriptors.json); empty when absent or unreadable.
func readDescriptors(_ imageDir: String) -> [String] {
    guard let bytes = try? FS.readFile(imageDir + "/descriptors.json"),
        let names = try? decodeJSON([String].self, from: bytes)
    else { return [] }
    return names
}

/// cg_root entries from /proc/PID/cgroup ("ID:CONTROLLERS:PATH"): one per v1 hierarchy (the
/// first controller names it), and the cgroup2 line without a controller.
func cgroupRoots(of pid: pid_t) throws(RuntimeError) -> [(controller: String?, path: String)] {
    let text = try step("read /proc/\(pid)/cgroup") { try FS.readString("/proc/\(pid)/cgroup") }
    return ProcCgroup.parse(text).map { ($0.controllers.first, $0.path) }
}

/// Mount points CRIU needs in the rootfs before it restores the mounts: for every mount not on
/// a tmpfs of the container (CRIU restores tmpfs contents itself), the destination directory, or
/// an empty file for a bind of a file (what create makes too). Bind mounts are mounted for the
/// time of this walk (as runc does), so that mount points of later mounts nested in them are made
/// in their sources, where criu will look for them; they are unmounted again before criu runs.
func createRestoreMountpoints(_ spec: Spec, bundle: String, root: String) throws(RuntimeError) {
    let tmpfs = (spec.mounts ?? []).filter { $0.type == "tmpfs" }.map { FS.cleanPath($0.destination) }
    var temporary: [String] = []
    defer { for t in temporary.reversed() { _ = sl_umount2(t, SL_MNT_DETACH) } }
    for (i, m) in (spec.mounts ?? []).enumerated() where m.type != "cgroup" {
        let dest = FS.cleanPath(m.destination)
        if tmpfs.contains(where: { dest.hasPrefix($0 + "/") }) { continue }
        let target: String
        do { target = try secureJoin(root: root, dest) } catch {
            throw RuntimeError(.invalidArgument, "config.json: mounts[\(i)].destination", cause: error)
        }
        let isBind = m.type == "bind" || MountOptions.parse(m.options ?? []).isBind
        let source = FS.absolute(m.source ?? "", base: bundle)
        let sourceIsFile = isBind && FS.statOf(source).map { !FS.isDirectory($0) } == true
        do {
            if FS.lstatOf(target) == nil {
                if sourceIsFile {
                    try FS.mkdirAll(FS.dirname(target))
                    try FS.touch(target)
                } else {
                    try FS.mkdirAll(target)
                }
            }
            if isBind {
                try sys("mount \(source) (for mount points below it) to", target) {
                    sl_mount(source, target, nil, SL_MS_BIND | SL_MS_REC, nil)
                }
                temporary.append(target)
            }
        } catch {
            throw RuntimeError(.internal, "restore: create mount point for mounts[\(i)] (\(dest))", cause: error)
        }
    }
}
