import Glibc
import CLinux
import OCI
import Mounts
import LinuxSystem
import Cgroups

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
        return unknown.isEmpty ? nil
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
        guard let cgroup, cgroup.exists() else { throw RuntimeError(.invalidState, "container \(id) has no cgroup\(purpose)") }
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
func setUpCgroup(_ manager: CgroupManager, spec: Spec) throws(RuntimeError) -> CgroupManager {
    // runc 1.2+: never start a container in a cgroup that already holds processes (not ours: left alone).
    if manager.exists(), let pids = try? manager.pids(), !pids.isEmpty {
        throw RuntimeError(.invalidState, "container's cgroup is not empty: \(pids.count) process(es) found")
    }
    do {
        try manager.create()
        try manager.set(effectiveResources(spec), initial: true)
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

extension CgroupManager {
    /// The cgroup2 directory the first child is cloned into (clone3 CLONE_INTO_CGROUP): on pure v2
    /// no process of the container ever runs outside its cgroup. Also the unified tree of a hybrid
    /// layout, whose v1 hierarchies are then joined as on pure v1 (Create.swift).
    var cloneDir: String? {
        switch layout {
        case .v2, .hybrid: return paths[""]
        case .v1: return nil
        }
    }
}

/// What the runtime still writes a new process's pid to, when the process was cloned into the
/// cgroup2 tree (`intoUnified`) and/or moves itself into the v1 hierarchies (`selfAttach`); nil:
/// nothing (the cgroup2 tree it was not cloned into, clone3 being unavailable, takes the pid).
func remainingCgroupPart(intoUnified: Bool, selfAttach: Bool) -> CgroupManager.Part? {
    if selfAttach { return intoUnified ? nil : .unifiedOnly }
    return intoUnified ? .v1Only : .all
}

/// The runtime's first child (create, exec): cloned into `cgroupDir` (the cgroup2 tree) when there
/// is one and clone3 works here, else cloned (new namespaces) or forked. Returns like fork, and
/// whether the child already is in the cgroup2 tree.
func spawnChild(cgroupDir: String?, namespaces: Int32) throws(RuntimeError) -> (pid: pid_t, inCgroup2: Bool) {
    if let dir = cgroupDir, let pid = try step("clone3", { try forkIntoCgroup(dir, namespaces: namespaces) }) {
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
