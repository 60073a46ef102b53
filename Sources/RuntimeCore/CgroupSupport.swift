import CLinux
import Cgroups
import Glibc
import LinuxSystem
import Mounts
import OCI

/// Devices every container may use whatever its rules say (runc's defaults): null, zero, full,
/// tty, urandom, random, /dev/pts/*, /dev/ptmx. Appended after the config's own rules.
let defaultDeviceRules: [DeviceCgroup] = [
    DeviceCgroup(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 1, minor: 5, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 1, minor: 7, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 5, minor: 0, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 1, minor: 9, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 1, minor: 8, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 136, minor: nil, access: "rwm"),
    DeviceCgroup(allow: true, type: "c", major: 5, minor: 2, access: "rwm"),
]

/// linux.resources as applied, device rules as runc builds them: the config's rules (deny-all when
/// there are none) with the default devices allowed after them, so a deny-all rule still leaves a
/// working /dev. linux.resources.devices is authoritative: a linux.devices entry only gets `m`, so
/// init can create its node (the rules apply before init runs, where runc sets them after), never
/// read or write access (issue 13: that overrode an explicit deny). Access letters other than r, w
/// and m are ignored (runc ignores them too); a rule left with none of r, w, m is dropped.
func effectiveResources(_ spec: Spec) -> Resources {
    var r = spec.linux?.resources ?? Resources()
    let rules = (r.devices ?? []).compactMap { rule -> DeviceCgroup? in
        guard let access = rule.access, !access.isEmpty else { return rule }
        var kept = rule
        kept.access = access.filter { "rwm".contains($0) }
        return kept.access?.isEmpty == true ? nil : kept
    }
    let nodes = (spec.linux?.devices ?? []).filter { $0.type != "p" }.map {
        DeviceCgroup(allow: true, type: $0.type == "u" ? "c" : $0.type, major: $0.major, minor: $0.minor, access: "m")
    }
    r.devices = (rules.isEmpty ? [DeviceCgroup(allow: false, access: "rwm")] : rules) + defaultDeviceRules + nodes
    return r
}

/// One warning per device rule whose access has letters other than r, w, m (ignored).
func deviceAccessWarnings(_ spec: Spec) -> [String] {
    (spec.linux?.resources?.devices ?? []).enumerated().compactMap { i, rule in
        let unknown = (rule.access ?? "").filter { !"rwm".contains($0) }
        return unknown.isEmpty
            ? nil
            : "linux.resources.devices[\(i)].access: ignoring unknown access \"\(unknown)\" (only r, w, m are known)"
    }
}

/// This host's cgroup layout, read from /proc/self/mountinfo once per command (lazily: not every
/// command needs it, and `list` would otherwise parse mountinfo once per container).
let hostCgroupLayout = CgroupLayout.detect()

extension StoredState {
    /// The container's cgroup, rebuilt from the directories recorded at create.
    var cgroup: CgroupManager? {
        cgroupPaths.map { CgroupManager(layout: hostCgroupLayout, paths: $0) }
    }

    /// The container's cgroup for verbs that need one (pause, update, stats, events).
    func liveCgroup(purpose: String = "") throws(RuntimeError) -> CgroupManager {
        guard let cgroup, cgroup.exists() else {
            throw RuntimeError(.invalidState, "container \(id) has no cgroup\(purpose)")
        }
        return cgroup
    }
}

extension RuntimeError {
    static func cgroup(_ e: CgroupError, _ context: String) -> RuntimeError {
        RuntimeError(.internal, context, cause: e)
    }
}

/// What a `cgroup` mount in the container shows: each hierarchy's directory of the container
/// (one sub-directory per v1 mount, named like the host's; on pure v2 the tree itself).
func cgroupBinds(_ manager: CgroupManager) -> [CgroupBind] {
    var seen = Set<String>()
    var binds: [CgroupBind] = []
    for (controller, mountPoint) in manager.layout.hierarchies.sorted(by: { $0.key < $1.key }) {
        let name = String(mountPoint.split(separator: "/").last ?? "")
        guard let path = manager.paths[controller], seen.insert(name).inserted else { continue }
        binds.append(CgroupBind(name: name, hostPath: path))
    }
    if let unified = manager.layout.unifiedMountPoint, let path = manager.paths[""] {
        let pureV2 = manager.layout.hierarchies.isEmpty
        binds.append(CgroupBind(name: pureV2 ? "" : String(unified.split(separator: "/").last ?? ""), hostPath: path))
    }
    return binds
}

/// Creates the container's cgroup and applies linux.resources, before any process is in it (see
/// `spawnChild`). On failure the cgroup is removed again.
func setUpCgroup(_ manager: CgroupManager, spec: Spec, devices: Bool = true) throws(RuntimeError) -> CgroupManager {
    // runc 1.2+: never start a container in a cgroup that already holds processes (not ours: left alone).
    if manager.exists(), let pids = try? manager.pids(), !pids.isEmpty {
        throw RuntimeError(.invalidState, "container's cgroup is not empty: \(pids.count) process(es) found")
    }
    do {
        try manager.create()
        var resources = effectiveResources(spec)
        if !devices { resources.devices = nil }  // rootless: device rules need privileges (Rootless.swift)
        try manager.set(resources, initial: true)
    } catch {
        try? manager.destroy()
        throw RuntimeError(.internal, "cgroup \(manager.paths.values.sorted().first ?? "")", cause: error)
    }
    return manager
}

/// Kills what is left in the cgroup, waits for it to empty, removes it from every hierarchy (also
/// when the primary directory is missing: a create killed while making the cgroup leaves only some).
func tearDownCgroup(_ manager: CgroupManager) throws(RuntimeError) {
    if manager.exists(), let left = try? manager.pids(), !left.isEmpty {
        try? manager.killAll(signal: SIGKILL)
        let deadline = Clock.monotonicMs() + 5000
        while Clock.monotonicMs() < deadline, let now = try? manager.pids(), !now.isEmpty { usleep(10_000) }
    }
    do { try manager.destroy() } catch { throw RuntimeError.cgroup(error, "remove cgroup") }
}

/// How a new process of the container (create's init, exec's process)
/// gets into the container's cgroup and its namespaces, decided once, before the first clone, from
/// the cgroup layout, the user namespace, the namespaces' clone flags and the driver. The cases are
/// the table in Spec/sync-protocol.md ("Cgroup placement"); `CgroupPlacementTests` covers each.
struct CgroupPlacement: Equatable, Sendable {
    /// How init (or exec's process) comes to be.
    enum Spawn: Equatable, Sendable {
        /// One clone makes it with these new namespaces: the first child is init.
        case initByClone(namespaces: Int32)
        /// The first child is a middle process: it enters and makes the namespaces, forks the process
        /// and reports its pid (`P`).
        case middleProcess(MiddleReason)
    }

    enum MiddleReason: Equatable, Sendable {
        /// A user or PID namespace joined by path, or time offsets (`NamespacePlan.cloneFlags` is nil).
        case namespaceOrder
        /// A new user namespace where the first child must first join v1 hierarchies as host root.
        case userNamespaceAfterV1Join
        /// exec: the process joins init's namespaces, and a joined PID namespace applies to children.
        case exec
    }

    /// What the parent does with the new process's pid once it knows it (`P`, or the clone's pid).
    enum ParentJoin: Equatable, Sendable {
        case nothing
        /// Writes the pid to cgroup.procs of these hierarchies.
        case write(CgroupManager.Part)
        /// Starts the systemd unit with the pid in it, then writes every hierarchy (startSystemdCgroup).
        case systemdUnit
    }

    var spawn: Spawn
    /// The cgroup2 directory the first child is cloned into (clone3 CLONE_INTO_CGROUP): pure v2 or
    /// the unified tree of a hybrid layout. nil: a plain clone.
    var cloneInto: String?
    /// The first child writes 0 to each v1 hierarchy's `tasks` before it enters any namespace (in a
    /// user namespace the host's cgroup files cannot be written); init inherits them.
    var selfJoinV1: Bool
    /// The cgroup has v1 hierarchies (v1, hybrid) and a cgroup2 directory (hybrid, v2); neither: the
    /// process joins no cgroup (exec into a container whose cgroup is gone).
    var hasV1: Bool
    var hasCgroup2: Bool
    /// The systemd driver: the unit is made once the pid is known (startSystemdCgroup).
    var systemd: Bool

    var initByClone: Bool { if case .initByClone = spawn { return true } else { return false } }
    /// The namespaces the first clone makes (0: none, the middle process makes them).
    var cloneNamespaces: Int32 { if case .initByClone(let flags) = spawn { return flags } else { return 0 } }

    /// The decision for `create` (and `run`). `cgroup2Dir`: the container's cgroup2 directory, nil
    /// on pure v1; `hasV1`: the cgroup has v1 hierarchies (v1 or hybrid); `namespaceCloneFlags`:
    /// `NamespacePlan.cloneFlags`; `newUserNamespace`: a user namespace is made.
    static func forCreate(
        cgroup2Dir: String?, hasV1: Bool, systemd: Bool, newUserNamespace: Bool,
        namespaceCloneFlags: Int32?
    ) -> CgroupPlacement {
        let selfJoin = !systemd && hasV1
        let spawn: Spawn
        if let flags = namespaceCloneFlags {
            spawn =
                newUserNamespace && selfJoin
                ? .middleProcess(.userNamespaceAfterV1Join) : .initByClone(namespaces: flags)
        } else {
            spawn = .middleProcess(.namespaceOrder)
        }
        // systemd's unit (and so the cgroup) is made once init's pid is known.
        return CgroupPlacement(
            spawn: spawn, cloneInto: systemd ? nil : cgroup2Dir, selfJoinV1: selfJoin,
            hasV1: hasV1, hasCgroup2: cgroup2Dir != nil, systemd: systemd)
    }

    /// The decision for `exec`, always a middle process; `cgroup2Dir`, `hasV1` are those of the
    /// container's cgroup or exec --cgroup's sub-cgroups (nil, false: no cgroup).
    static func forExec(cgroup2Dir: String?, hasV1: Bool) -> CgroupPlacement {
        CgroupPlacement(
            spawn: .middleProcess(.exec), cloneInto: cgroup2Dir, selfJoinV1: hasV1,
            hasV1: hasV1, hasCgroup2: cgroup2Dir != nil, systemd: false)
    }

    static func forCreate(_ manager: CgroupManager, systemd: Bool, namespaces ns: NamespacePlan) -> CgroupPlacement {
        forCreate(
            cgroup2Dir: manager.cgroup2Dir, hasV1: !manager.v1TaskFiles.isEmpty, systemd: systemd,
            newUserNamespace: ns.newUser, namespaceCloneFlags: ns.cloneFlags)
    }

    static func forExec(_ manager: CgroupManager?) -> CgroupPlacement {
        forExec(cgroup2Dir: manager?.cgroup2Dir, hasV1: !(manager?.v1TaskFiles.isEmpty ?? true))
    }

    /// What the parent still writes once the pid is known; `clonedIntoCgroup2`: the clone3 into
    /// `cloneInto` worked (a kernel without clone3 falls back to a plain clone, see `spawnChild`).
    func parentJoin(clonedIntoCgroup2: Bool) -> ParentJoin {
        if systemd { return .systemdUnit }
        let v1 = hasV1 && !selfJoinV1
        let unified = hasCgroup2 && !clonedIntoCgroup2
        switch (v1, unified) {
        case (true, true): return .write(.all)
        case (true, false): return .write(.v1Only)
        case (false, true): return .write(.unifiedOnly)
        case (false, false): return .nothing
        }
    }
}

extension CgroupManager {
    /// The cgroup's directory in the cgroup2 tree (pure v2, or the unified tree of a hybrid layout).
    var cgroup2Dir: String? {
        switch layout {
        case .v2, .hybrid: return paths[""]
        case .v1: return nil
        }
    }
}

/// The runtime's first child (create, exec), made as `placement` says: cloned into its cgroup2
/// directory when there is one and clone3 works here, else cloned (new namespaces) or forked.
/// Returns like fork, and whether the child already is in the cgroup2 tree.
func spawnChild(_ placement: CgroupPlacement) throws(RuntimeError) -> (pid: pid_t, inCgroup2: Bool) {
    let namespaces = placement.cloneNamespaces
    if let dir = placement.cloneInto, let pid = try step("clone3", { try forkIntoCgroup(dir, namespaces: namespaces) })
    {
        return (pid, true)
    }
    let pid = try step("fork") {
        if namespaces != 0 { return try Proc.clone(namespaces: namespaces) }
        return try Proc.fork()
    }
    return (pid, false)
}

/// clone3(CLONE_INTO_CGROUP) into `cgroupDir`; nil when clone3 cannot be used here (kernel without
/// it), so the caller forks and writes cgroup.procs instead.
private func forkIntoCgroup(_ cgroupDir: String, namespaces: Int32) throws(SysError) -> pid_t? {
    let dir = Glibc.open(cgroupDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard dir >= 0 else { throw SysError("open", cgroupDir, errno: errno) }
    defer { close(dir) }
    let pid = sl_clone3(SL_CLONE_INTO_CGROUP | UInt64(UInt32(bitPattern: namespaces)), dir)
    if pid < 0 {
        if errno == ENOSYS || errno == E2BIG { return nil }
        throw SysError("clone3(CLONE_INTO_CGROUP)", cgroupDir, errno: errno)
    }
    return pid
}

/// The container's cgroup with exec --cgroup's sub-cgroups in place of its directories. Each must
/// exist below the container's own (no `..` above it); controllers mounted together share one.
func subCgroupManager(_ base: CgroupManager, _ subs: [String: String]) throws(RuntimeError) -> CgroupManager {
    let mounts = base.layout.hierarchies
    for controller in subs.keys where !controller.isEmpty && base.paths[controller] == nil {
        throw RuntimeError(.invalidArgument, "exec --cgroup: unknown controller \"\(controller)\"")
    }
    var paths = base.paths
    for (key, dir) in base.paths {
        let sharing = mounts.filter { mounts[key] != nil && $0.value == mounts[key] }.keys.sorted()
        guard let sub = subs[""] ?? subs[key] ?? sharing.lazy.compactMap({ subs[$0] }).first else { continue }
        var depth = 0
        for part in sub.split(separator: "/") where part != "." {
            depth += part == ".." ? -1 : 1
            if depth < 0 { throw RuntimeError(.invalidArgument, "exec --cgroup: \(sub) is not a sub cgroup path") }
        }
        let target = FS.cleanPath(dir + "/" + sub)
        guard let st = FS.statOf(target), FS.isDirectory(st) else {
            throw RuntimeError(.invalidArgument, "exec --cgroup: sub-cgroup \(target) does not exist")
        }
        paths[key] = target
    }
    return CgroupManager(layout: base.layout, paths: paths)
}
