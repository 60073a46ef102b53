import CLinux
import Glibc
import LinuxSystem

/// A filesystem created by the runtime in the initial user namespace (fsopen/fsconfig/fsmount) and
/// attached by init with move_mount. The kernel refuses some tmpfs options, such as `noswap`, from a
/// non-initial user namespace, and only a mount made here can be id-mapped (IDMappedMount.map)
/// before the container gets it; created here they work for user-namespaced containers too.
public enum HostFilesystem {
    /// Filesystems whose instance belongs to the namespaces of whoever mounts it: made by the runtime
    /// they would show the host's processes, network or IPC, so they are never created here.
    public static let namespaceBound: Set<String> = ["proc", "sysfs", "mqueue", "cgroup", "cgroup2", "devpts"]

    /// `data`: the fs options ("size=1m", "mode=1777", "noswap"; `key=value` or a bare flag),
    /// `flags`: MS_* flags, turned into mount attributes. `uid`/`gid`: owner of the root directory
    /// unless the options set them (nil: the filesystem's default). `source`: the `source`
    /// parameter (a device, or a name shown in mountinfo).
    public static func create(
        type: String, source: String? = nil, data: [String], flags: UInt,
        uid: UInt32? = nil, gid: UInt32? = nil
    ) throws(SysError) -> Int32 {
        let fs = try sys("fsopen", type) { sl_fsopen(type, SL_FSOPEN_CLOEXEC) }
        defer { close(fs) }
        var options = data
        if let uid, !options.contains(where: { $0.hasPrefix("uid=") }) { options.append("uid=\(uid)") }
        if let gid, !options.contains(where: { $0.hasPrefix("gid=") }) { options.append("gid=\(gid)") }
        if let source, !source.isEmpty {
            try sys("fsconfig \(type) source", source) { sl_fsconfig(fs, SL_FSCONFIG_SET_STRING, "source", source, 0) }
        }
        for opt in options {
            let kv = opt.split(separator: "=", maxSplits: 1).map(String.init)
            let rc =
                kv.count == 2
                ? sl_fsconfig(fs, SL_FSCONFIG_SET_STRING, kv[0], kv[1], 0)
                : sl_fsconfig(fs, SL_FSCONFIG_SET_FLAG, opt, nil, 0)
            if rc != 0 { throw SysError("fsconfig \(type) option", opt, errno: errno) }
        }
        try sys("fsconfig(FSCONFIG_CMD_CREATE)", type) { sl_fsconfig(fs, SL_FSCONFIG_CMD_CREATE, nil, nil, 0) }
        var attrs: UInt64 = 0
        let table: [(UInt, UInt64)] = [
            (SL_MS_RDONLY, SL_MOUNT_ATTR_RDONLY), (SL_MS_NOSUID, SL_MOUNT_ATTR_NOSUID),
            (SL_MS_NODEV, SL_MOUNT_ATTR_NODEV), (SL_MS_NOEXEC, SL_MOUNT_ATTR_NOEXEC),
            (SL_MS_NOATIME, SL_MOUNT_ATTR_NOATIME), (SL_MS_STRICTATIME, SL_MOUNT_ATTR_STRICTATIME),
            (SL_MS_NODIRATIME, SL_MOUNT_ATTR_NODIRATIME),
        ]
        for (flag, attr) in table where flags & flag != 0 { attrs |= attr }
        return try sys("fsmount", type) { sl_fsmount(fs, SL_FSMOUNT_CLOEXEC, UInt32(attrs)) }
    }
}
