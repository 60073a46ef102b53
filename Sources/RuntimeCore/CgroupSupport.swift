import Glibc
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

/// linux.resources as applied: device rules get the default devices and the config's
/// linux.devices allowed after them (so a deny-all rule still leaves a working /dev).
func effectiveResources(_ spec: Spec) -> Resources {
    var r = spec.linux?.resources ?? Resources()
    if let rules = r.devices, !rules.isEmpty {
        let configured = (spec.linux?.devices ?? []).filter { $0.type != "p" }.map {
            DeviceCgroup(allow: true, type: $0.type == "u" ? "c" : $0.type, major: $0.major, minor: $0.minor, access: "rwm")
        }
        r.devices = rules + defaultDeviceRules + configured
    }
    return r
}

extension StoredState {
    /// The container's cgroup, rebuilt from the directories recorded at create.
    var cgroup: CgroupManager? {
        cgroupPaths.map { CgroupManager(layout: CgroupLayout.detect(), paths: $0) }
    }
}

extension RuntimeError {
    static func cgroup(_ e: CgroupError, _ context: String) -> RuntimeError {
        RuntimeError(.internal, "\(context): \(e)")
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

/// Creates the container's cgroup, applies linux.resources and puts `pid` in it. On failure the
/// cgroup is removed again (the caller kills the process).
func setUpCgroup(_ manager: CgroupManager, spec: Spec, pid: pid_t) throws(RuntimeError) -> CgroupManager {
    do {
        try manager.create()
        try manager.set(effectiveResources(spec), initial: true)
        try manager.add(pid: pid)
    } catch {
        try? manager.destroy()
        throw RuntimeError(.internal, "cgroup \(manager.paths.values.sorted().first ?? ""): \(error)")
    }
    return manager
}

/// Kills what is left in the cgroup, waits for it to empty, removes it.
func tearDownCgroup(_ manager: CgroupManager) throws(RuntimeError) {
    guard manager.exists() else { return }
    if let left = try? manager.pids(), !left.isEmpty {
        try? manager.killAll(signal: SIGKILL)
        let deadline = Clock.monotonicMs() + 5000
        while Clock.monotonicMs() < deadline, let now = try? manager.pids(), !now.isEmpty { usleep(10_000) }
    }
    do { try manager.destroy() } catch { throw RuntimeError.cgroup(error, "remove cgroup") }
}
