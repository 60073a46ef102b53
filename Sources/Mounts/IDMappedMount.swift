import CLinux
import Glibc
import LinuxSystem

/// Id-mapped mounts (KEP-127): the runtime, privileged in the initial user namespace, clones the
/// source tree of a bind (open_tree) or creates the filesystem (HostFilesystem), attaches a user
/// namespace holding the mount's mappings (mount_setattr MOUNT_ATTR_IDMAP), and hands the detached tree to init, which
/// attaches it with
/// move_mount. A mapping "containerID hostID size" makes on-disk id `containerID + n` appear as
/// host id `hostID + n`, i.e. as `containerID + n` inside a container with the same mapping.
public enum IDMappedMount {
    /// A user namespace with the given uid_map/gid_map text, as an fd (close-on-exec).
    /// A short-lived child unshares it; we write its maps, open /proc/<child>/ns/user, let it exit.
    public static func userNamespace(uidMap: String, gidMap: String) throws(SysError) -> Int32 {
        var ready: [Int32] = [-1, -1]
        var release: [Int32] = [-1, -1]
        try sys("pipe") { sl_pipe2(&ready, O_CLOEXEC) }
        try sys("pipe") { sl_pipe2(&release, O_CLOEXEC) }
        defer { for fd in ready + release where fd >= 0 { close(fd) } }
        let pid = try Proc.fork()
        if pid == 0 {
            close(release[1])
            close(ready[0])
            var byte: UInt8 = sl_unshare(SL_CLONE_NEWUSER) == 0 ? 1 : 0
            _ = write(ready[1], &byte, 1)
            _ = read(release[0], &byte, 1)  // returns at EOF, when the runtime closes its end
            _exit(0)
        }
        defer {
            close(release[1])
            release[1] = -1
            _ = try? Proc.wait(pid)
        }
        close(ready[1])
        ready[1] = -1
        close(release[0])
        release[0] = -1
        var ok: UInt8 = 0
        guard read(ready[0], &ok, 1) == 1, ok == 1 else {
            throw SysError("unshare", "user namespace for id-mapped mount", errno: EPERM)
        }
        try Procfs.write("\(pid)/uid_map", uidMap)
        try Procfs.write("\(pid)/gid_map", gidMap)
        return try FS.open("/proc/\(pid)/ns/user", O_RDONLY)
    }

    /// A detached clone of `source` (`recursive`: with its submounts, for `rbind`), id-mapped with
    /// `usernsFd` when given: the top mount only, or every mount with `recursiveMap` (`ridmap`), as
    /// runc 1.3 does. Without a user namespace fd it is a plain clone of a source only the host reaches.
    public static func clone(source: String, recursive: Bool, usernsFd: Int32? = nil, recursiveMap: Bool = false)
        throws(SysError) -> Int32
    {
        let tree = try sys("open_tree", source) {
            sl_open_tree(
                AT_FDCWD, source, SL_OPEN_TREE_CLONE | SL_OPEN_TREE_CLOEXEC | (recursive ? SL_AT_RECURSIVE : 0))
        }
        guard let usernsFd else { return tree }
        do { try map(tree, usernsFd: usernsFd, recursive: recursiveMap, name: source) } catch {
            close(tree)
            throw error
        }
        return tree
    }

    /// Id-maps the detached mount `tree` (a clone, or a new filesystem from HostFilesystem) with the
    /// mappings of the user namespace `usernsFd`: every mount of the tree with `recursive` (`ridmap`).
    public static func map(_ tree: Int32, usernsFd: Int32, recursive: Bool, name: String) throws(SysError) {
        let flags = SL_AT_EMPTY_PATH | (recursive ? SL_AT_RECURSIVE : 0)
        if sl_mount_setattr(tree, "", flags, SL_MOUNT_ATTR_IDMAP, 0, 0, UInt64(usernsFd)) != 0 {
            let e = errno
            let hint = e == EINVAL ? " (this filesystem or kernel does not support id-mapped mounts)" : ""
            throw SysError("mount_setattr(MOUNT_ATTR_IDMAP) \(name)\(hint)", errno: e)
        }
    }

    /// A new filesystem of a non-bind mount (`m.type`, its options), created by the runtime and
    /// id-mapped with `usernsFd`. A read-only tmpfs stays writable until Rootfs.remountReadonlyTmpfs.
    public static func newFilesystem(_ m: PlannedMount, usernsFd: Int32) throws(SysError) -> Int32 {
        let flags = m.type == "tmpfs" ? m.options.flags & ~SL_MS_RDONLY : m.options.flags
        let tree = try HostFilesystem.create(type: m.type, source: m.source, data: m.options.data, flags: flags)
        do { try map(tree, usernsFd: usernsFd, recursive: false, name: "\(m.type) for \(m.destination)") } catch {
            close(tree)
            throw error
        }
        return tree
    }

    /// Attaches a detached tree on the directory `target` refers to (an fd opened inside the rootfs).
    static func attach(_ tree: Int32, to target: Int32, name: String) throws(SysError) {
        try sys("move_mount (detached tree) to", name) {
            sl_move_mount(tree, "", target, "", SL_MOVE_MOUNT_F_EMPTY_PATH | SL_MOVE_MOUNT_T_EMPTY_PATH)
        }
    }
}
