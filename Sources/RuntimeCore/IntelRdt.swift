import Glibc
import LinuxSystem
import OCI

/// Whether a resctrl filesystem is mounted (what `features` reports as intelRdt.enabled).
public func resctrlMounted() -> Bool { IntelRdtPlan.hostMountPoint() != nil }

/// linux.intelRdt (runtime-spec 1.3, config-linux.md "IntelRdt"): the container's class of service
/// (CLOS) and monitoring group in a mounted resctrl filesystem. `root` is the resctrl mount point
/// (a temp dir in the unit tests). Nothing here runs unless the config has `intelRdt`.
struct IntelRdtPlan: Sendable, Equatable {
    var root: String
    var id: String
    var closID: String?
    /// Lines for the `schemata` file: l3CacheSchema, memBwSchema, then `schemata`, in that order.
    var schemata: [String]
    var monitoring: Bool

    /// The CLOS directory: `closID` (`/` is the root, the default CLOS), else the container id.
    var closDir: String { closID == "/" ? root : root + "/" + (closID ?? id) }
    var monDir: String { closDir + "/mon_groups/" + id }

    /// Validates the fields; nil when the config has no intelRdt. `resctrlRoot`: the mount point
    /// found in mountinfo, nil when resctrl is not mounted (then an intelRdt config is an error).
    static func plan(_ rdt: IntelRdt?, id: String, resctrlRoot: String?) throws(RuntimeError) -> IntelRdtPlan? {
        guard let rdt else { return nil }
        guard let root = resctrlRoot else {
            throw RuntimeError(
                .unsupported, "config.json: linux.intelRdt: no resctrl filesystem is mounted on this host")
        }
        if rdt.enableCMT != nil || rdt.enableMBM != nil {
            throw RuntimeError(
                .invalidArgument,
                "config.json: linux.intelRdt: enableCMT and enableMBM were replaced by enableMonitoring in "
                    + "runtime-spec 1.3"
            )
        }
        if let c = rdt.closID, c != "/" && (c.isEmpty || c.contains("/") || c == "." || c == ".." || c.contains("\n")) {
            throw RuntimeError(.invalidArgument, "config.json: linux.intelRdt.closID: \"\(c)\" is not a directory name")
        }
        var lines: [String] = []
        if let l3 = rdt.l3CacheSchema {
            guard !l3.contains("\n") else {
                throw RuntimeError(
                    .invalidArgument, "config.json: linux.intelRdt.l3CacheSchema: must not contain newlines")
            }
            lines.append(l3)
        }
        if let mb = rdt.memBwSchema {
            guard mb.hasPrefix("MB:"), !mb.contains("\n") else {
                throw RuntimeError(
                    .invalidArgument,
                    "config.json: linux.intelRdt.memBwSchema: must start with \"MB:\" and have no newlines")
            }
            lines.append(mb)
        }
        for (i, s) in (rdt.schemata ?? []).enumerated() {
            guard !s.contains("\n") else {
                throw RuntimeError(
                    .invalidArgument, "config.json: linux.intelRdt.schemata[\(i)]: must not contain newlines")
            }
            lines.append(s)
        }
        return IntelRdtPlan(
            root: root, id: id, closID: rdt.closID, schemata: lines, monitoring: rdt.enableMonitoring ?? false)
    }

    static func hostMountPoint() -> String? { MountInfo.read().first { $0.fsType == "resctrl" }?.mountPoint }

    /// The plan of a stored container (for delete); nil without intelRdt or resctrl.
    static func stored(_ state: StoredState) -> IntelRdtPlan? {
        guard let rdt = (try? state.configMember("linux", as: Linux.self))??.intelRdt else { return nil }
        return try? plan(rdt, id: state.id, resctrlRoot: hostMountPoint())
    }

    /// Puts `pid` in the CLOS (made, or checked against the wanted schemata, as the spec says) and,
    /// with monitoring, in a MON group of its own.
    func apply(pid: pid_t) throws(SysError) {
        let exists = FS.statOf(closDir).map(FS.isDirectory) ?? false
        if closID == nil || (!exists && !schemata.isEmpty) {
            if !exists { try sys("mkdir", closDir) { mkdir(closDir, 0o755) } }
        } else if !exists {
            throw SysError("linux.intelRdt.closID: \(closDir) does not exist", errno: ENOENT)
        }
        if !schemata.isEmpty {
            if closID != nil && exists {
                let current = (try? FS.readString(closDir + "/schemata")) ?? ""
                for line in schemata where !IntelRdtPlan.schemataContain(current, line) {
                    throw SysError("linux.intelRdt: \(closDir)/schemata does not match \"\(line)\"", errno: EEXIST)
                }
            } else {
                try FS.writeFile(closDir + "/schemata", schemata.joined(separator: "\n") + "\n", create: true)
            }
        }
        var tasks = closDir + "/tasks"
        if monitoring {
            try sys("mkdir", monDir) { mkdir(monDir, 0o755) }
            tasks = monDir + "/tasks"
        }
        try FS.writeFile(tasks, String(pid), create: true)
    }

    /// At delete: the MON group, and the CLOS directory when the runtime made it (no closID).
    func remove() {
        if monitoring { _ = rmdir(monDir) }
        if closID == nil { _ = rmdir(closDir) }
    }

    /// Whether each `resource:id=value;...` part of `line` stands in `schemata` (the kernel lists every
    /// resource on one line, e.g. `L3:0=7ff;1=7ff`; the config may name a subset of its ids).
    static func schemataContain(_ schemata: String, _ line: String) -> Bool {
        let parts = line.split(separator: ":", maxSplits: 1)
        guard parts.count == 2 else { return false }
        let resource = trimmed(parts[0])
        guard
            let current = schemata.split(separator: "\n").first(where: {
                $0.split(separator: ":", maxSplits: 1).first.map(trimmed) == resource
            })
        else { return false }
        let have = Set(
            current.split(separator: ":", maxSplits: 1).last?.split(separator: ";").map { trimmed($0).lowercased() }
                ?? [])
        return parts[1].split(separator: ";").allSatisfy { have.contains(trimmed($0).lowercased()) }
    }
}
