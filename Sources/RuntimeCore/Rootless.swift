import Cgroups
import Glibc
import LinuxSystem
import OCI

// Rootless containers (Spec/cli.md, "Rootless"): swiftlet run by an unprivileged user, or by root
// inside a user namespace (rootless podman). The rules follow runc's: `--rootless auto` means
// rootless cgroups when the effective uid is not 0 or the runtime runs in a user namespace; the
// state root defaults to $XDG_RUNTIME_DIR/swiftlet; a cgroup hierarchy this user cannot create the
// container's cgroup in is skipped, unless the config asks for a limit that needs it.

/// `--rootless auto`: whether cgroup permission problems are to be expected (runc's rule); with
/// --systemd-cgroup, rootless means systemd's user instance on the user's bus (SystemdCgroup.swift).
/// Root in a user namespace with --systemd-cgroup is rootless unless PID 1 (systemd) is root of
/// this namespace, i.e. a systemd of its own (runc asks the user bus for its owner instead).
/// Rootless podman's namespace maps only the user and its subordinate ids: PID 1 is not root there.
public func rootlessAuto(systemdCgroup: Bool) -> Bool {
    if geteuid() != 0 { return true }
    guard Kernel.runningInUserNamespace else { return false }
    guard systemdCgroup else { return true }
    return FS.statOf("/proc/1").map { $0.st_uid != 0 } ?? true
}

/// The default state root when `--root` is not given: `$XDG_RUNTIME_DIR/swiftlet` for an
/// unprivileged user, or for root in a user namespace whose $USER is not "root" (runc's rule, with
/// our directory name); nil: the usual /run/swiftlet.
public func rootlessStateRoot() -> String? {
    guard let xdg = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !xdg.isEmpty else { return nil }
    if geteuid() != 0 { return xdg + "/swiftlet" }
    guard Kernel.runningInUserNamespace else { return nil }
    let user = getenv("USER").map { String(cString: $0) }
    return user == "root" ? nil : xdg + "/swiftlet"
}

/// Makes the $XDG_RUNTIME_DIR state root: 0700 with the sticky bit, so the session's clean-up of
/// XDG_RUNTIME_DIR leaves it alone (as runc does for its own).
public func prepareXDGStateRoot(_ root: String) throws(RuntimeError) {
    do throws(SysError) {
        try FS.mkdirAll(root, 0o700)
        try sys("chmod", root) { chmod(root, 0o1700) }
    } catch {
        throw RuntimeError(
            .invalidArgument, "the state root in $XDG_RUNTIME_DIR must be writable by the user", cause: error)
    }
}

/// What an unprivileged user (effective uid not 0) can run: a new user namespace (or one joined by
/// path) with mappings, mount uid=/gid= options that are mapped, no additional groups (setgroups is
/// denied in its user namespace). Nothing to check for root.
func checkRootlessConfig(_ spec: Spec) throws(RuntimeError) {
    guard geteuid() != 0 else { return }
    let linux = spec.linux ?? Linux()
    guard let userns = (linux.namespaces ?? []).first(where: { $0.type == .user }) else {
        throw RuntimeError(
            .invalidArgument, "config.json: linux.namespaces: rootless container requires user namespaces")
    }
    if (userns.path ?? "").isEmpty {
        if (linux.uidMappings ?? []).isEmpty {
            throw RuntimeError(
                .invalidArgument, "config.json: linux.uidMappings: rootless containers require at least one UID mapping"
            )
        }
        if (linux.gidMappings ?? []).isEmpty {
            throw RuntimeError(
                .invalidArgument, "config.json: linux.gidMappings: rootless containers require at least one GID mapping"
            )
        }
        for (i, m) in (spec.mounts ?? []).enumerated() {
            for option in m.options ?? [] {
                let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, kv[0] == "uid" || kv[0] == "gid", let id = UInt32(kv[1]) else { continue }
                let maps = (kv[0] == "uid" ? linux.uidMappings : linux.gidMappings) ?? []
                if !maps.contains(where: { id >= $0.containerID && id - $0.containerID < $0.size }) {
                    throw RuntimeError(
                        .invalidArgument,
                        "config.json: mounts[\(i)].options: cannot specify \(option) mount option for rootless "
                            + "container: \(kv[0]) \(id) is not mapped"
                    )
                }
            }
        }
    }
    try checkRootlessGroups(spec.process?.user.additionalGids ?? [], field: "process.user.additionalGids")
}

/// runc's rule: an unprivileged user cannot give the container's process additional groups.
func checkRootlessGroups(_ gids: [UInt32], field: String) throws(RuntimeError) {
    if geteuid() != 0 && !gids.isEmpty {
        throw RuntimeError(.invalidArgument, "\(field): cannot set any additional groups in a rootless container")
    }
}

/// The container's cgroup for a rootless runtime: the hierarchies whose cgroup directory this user
/// can create (or finds made and writable for it, e.g. delegated) are kept, the others left out. A
/// limit in linux.resources that needs a hierarchy left out is an error naming it (runc's
/// wording); device rules are not applied (runc ignores the devices controller when rootless).
func rootlessCgroup(_ manager: CgroupManager, spec: Spec) throws(RuntimeError) -> CgroupManager {
    let usable = manager.paths.filter { canCreateCgroup($0.value) }
    let v2: Bool = if case .v2 = manager.layout { true } else { false }
    for need in cgroupControllersNeeded(spec.linux?.resources, v2: v2) where usable[need.controller] == nil {
        throw RuntimeError(
            .invalidArgument,
            "config.json: linux.resources.\(need.field): cannot set \(need.limit) limit: "
                + "container could not join or create cgroup (rootless: no permission to create "
                + "\(manager.paths[need.controller] ?? "it"))"
        )
    }
    return CgroupManager(layout: manager.layout, paths: usable)
}

/// Warned (not refused, as runc 1.2+) when a rootless container gets no cgroup (a hierarchy skipped)
/// and shares the runtime's PID namespace: nothing can then find and kill all its processes.
let rootlessSharedPidWarning =
    "rootless container with no cgroup and no private pid namespace: its processes cannot all be "
    + "found and killed (give it a pid namespace, or a delegated cgroup)"

/// Whether this user may make (or use) the cgroup directory `dir`: it exists and its cgroup.procs
/// is writable, or the deepest existing parent is a directory it may create entries in.
func canCreateCgroup(_ dir: String) -> Bool {
    if let st = FS.statOf(dir), FS.isDirectory(st) { return access(dir + "/cgroup.procs", W_OK) == 0 }
    var parent = FS.dirname(dir)
    while FS.statOf(parent) == nil && parent != "/" { parent = FS.dirname(parent) }
    return access(parent, W_OK | X_OK) == 0
}

/// The limits linux.resources sets: the field, the limit's name (its v1 controller's, as runc names
/// it; "io" for blockIO on v2) and the hierarchy it needs (that v1 controller; "" for the cgroup2
/// tree). Zero and empty values set nothing.
func cgroupControllersNeeded(_ r: Resources?, v2: Bool) -> [(field: String, limit: String, controller: String)] {
    guard let r else { return [] }
    var out: [(String, String, String)] = []
    func need(_ field: String, _ controller: String, _ isSet: Bool) {
        if isSet { out.append((field, v2 && controller == "blkio" ? "io" : controller, v2 ? "" : controller)) }
    }
    func nz<T: BinaryInteger>(_ v: T?) -> Bool { (v ?? 0) != 0 }
    if let m = r.memory {
        need(
            "memory", "memory",
            nz(m.limit) || nz(m.reservation) || nz(m.swap) || nz(m.kernel) || nz(m.kernelTCP)
                || m.swappiness != nil || m.disableOOMKiller == true)
    }
    if let c = r.cpu {
        need(
            "cpu", "cpu",
            nz(c.shares) || nz(c.quota) || nz(c.burst) || nz(c.period) || nz(c.realtimeRuntime)
                || nz(c.realtimePeriod) || c.idle != nil)
        need("cpu.cpus", "cpuset", !(c.cpus ?? "").isEmpty || !(c.mems ?? "").isEmpty)
    }
    need("pids", "pids", r.pids?.limit != nil)
    if let b = r.blockIO {
        need(
            "blockIO", "blkio",
            nz(b.weight) || nz(b.leafWeight) || !(b.weightDevice ?? []).isEmpty
                || !(b.throttleReadBpsDevice ?? []).isEmpty || !(b.throttleWriteBpsDevice ?? []).isEmpty
                || !(b.throttleReadIOPSDevice ?? []).isEmpty || !(b.throttleWriteIOPSDevice ?? []).isEmpty)
    }
    need("hugepageLimits", "hugetlb", !(r.hugepageLimits ?? []).isEmpty)
    need("network.classID", "net_cls", r.network?.classID != nil)
    need("network.priorities", "net_prio", !(r.network?.priorities ?? []).isEmpty)
    need("rdma", "rdma", !(r.rdma ?? [:]).isEmpty)
    if !(r.unified ?? [:]).isEmpty { out.append(("unified", "unified", "")) }
    return out
}

/// The cgroup v2 controllers linux.resources' limits need: the field, the limit's name (as in
/// `cgroupControllersNeeded`) and the controller; a `unified` key needs the controller its name
/// starts with (`memory.high`: memory; `cgroup.*` files need none).
func cgroupV2ControllersNeeded(_ r: Resources?) -> [(field: String, limit: String, controller: String)] {
    var out: [(String, String, String)] = []
    for need in cgroupControllersNeeded(r, v2: true) where need.limit != "unified" {
        out.append((need.field, need.limit, need.limit))
    }
    for key in (r?.unified ?? [:]).keys.sorted() {
        let controller = String(key.prefix { $0 != "." })
        if controller != "cgroup" { out.append(("unified", key, controller)) }
    }
    return out
}

/// The runtime has no privileges over the host's cgroups and devices: an unprivileged user, or
/// root in a user namespace.
var runtimeIsUnprivileged: Bool { geteuid() != 0 || Kernel.runningInUserNamespace }

/// What a rootless container's `cgroup` mount shows: its own cgroup where it has one, else (v1) the
/// runtime's own cgroup in that hierarchy, the one the container's processes stay in (as runc). A
/// cgroup2 tree it has no cgroup in shows nothing (an empty read-only tmpfs).
func rootlessCgroupView(_ m: CgroupManager) -> CgroupManager {
    let own = CgroupManager.ownCgroups(procSelfCgroup: (try? FS.readString("/proc/self/cgroup")) ?? "")
    var paths = m.paths
    for (controller, mountPoint) in m.layout.hierarchies where paths[controller] == nil {
        guard let path = own[controller] else { continue }
        paths[controller] = FS.cleanPath(mountPoint + "/" + path)
    }
    return CgroupManager(layout: m.layout, paths: paths)
}
