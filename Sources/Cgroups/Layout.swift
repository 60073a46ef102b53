import Glibc
import LinuxSystem

/// How the cgroup hierarchies are mounted.
///
/// v1 hierarchy keys are controller names as the kernel spells them in /proc/self/cgroup:
/// `cpu`, `cpuacct`, `memory`, ..., and `name=systemd` for named hierarchies. Co-mounted controllers
/// (`cpu,cpuacct`) get one key each, both pointing at the same mount point.
public enum CgroupLayout: Sendable, Equatable {
    case v1(hierarchies: [String: String])
    case v2(mountPoint: String)
    /// v1 controllers plus a cgroup2 tree (usually `/sys/fs/cgroup/unified`), as on this build host.
    case hybrid(hierarchies: [String: String], unified: String)

    /// The layout under `root` from /proc/self/mountinfo, or from `mountinfo` (its text, for tests).
    /// cgroup2 mounted at `root` itself is v2; v1 mounts under `root` are v1, or hybrid when a cgroup2
    /// mount under `root` exists too. Mounts outside `root` are ignored; with nothing found the
    /// result is `.v1(hierarchies: [:])`, on which `create` fails with a clear message.
    public static func detect(mountinfo: String? = nil, root: String = "/sys/fs/cgroup") -> CgroupLayout {
        let text = mountinfo ?? ((try? FS.readString("/proc/self/mountinfo")) ?? "")
        var hierarchies: [String: String] = [:]
        var unifiedAtRoot = false
        var unifiedBelow: String?
        for line in text.split(separator: "\n") {
            guard let mount = MountInfo(line) else { continue }
            let under = mount.mountPoint.hasPrefix(root + "/")
            switch mount.fsType {
            case "cgroup2":
                if mount.mountPoint == root {
                    unifiedAtRoot = true
                } else if under && unifiedBelow == nil {
                    unifiedBelow = mount.mountPoint
                }
            case "cgroup":
                guard under else { continue }
                for controller in v1Controllers(superOptions: mount.superOptions) where hierarchies[controller] == nil {
                    hierarchies[controller] = mount.mountPoint
                }
            default:
                continue
            }
        }
        if unifiedAtRoot { return .v2(mountPoint: root) }
        if hierarchies.isEmpty, let unifiedBelow { return .v2(mountPoint: unifiedBelow) }
        if let unifiedBelow { return .hybrid(hierarchies: hierarchies, unified: unifiedBelow) }
        return .v1(hierarchies: hierarchies)
    }

    /// The v1 hierarchies (empty for v2).
    public var hierarchies: [String: String] {
        switch self {
        case .v1(let h), .hybrid(let h, _): return h
        case .v2: return [:]
        }
    }

    /// The cgroup2 mount point (v2 or the hybrid unified tree).
    public var unifiedMountPoint: String? {
        switch self {
        case .v1: return nil
        case .v2(let m), .hybrid(_, let m): return m
        }
    }
}

/// Mount options of a v1 cgroup mount that are not controller names.
private let v1MountFlags: Set<String> = [
    "rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods", "none", "all",
]

/// `rw,cpu,cpuacct` -> [cpu, cpuacct]; `rw,name=systemd` -> [name=systemd].
func v1Controllers(superOptions: String) -> [String] {
    superOptions.split(separator: ",").compactMap { opt -> String? in
        let o = String(opt)
        if o.hasPrefix("name=") { return o }
        if v1MountFlags.contains(o) || o.contains("=") { return nil }
        return o
    }
}
