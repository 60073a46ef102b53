import CLinux
import Glibc
import LinuxSystem

/// Creating things inside the rootfs through directory descriptors instead of host paths (issue 13
/// item 9): a process that shares the rootfs directory cannot swap a component for a symlink between
/// our check and our use, because every step is taken relative to the directory already opened, and
/// no symlink is followed on the way.
enum InRoot {
    /// The path of `hostPath` (a path `secureJoin` returned) relative to `rootfs`, "" for the root.
    static func relative(_ hostPath: String, rootfs: String) -> String {
        String(FS.cleanPath(String(hostPath.dropFirst(rootfs.count))).dropFirst())
    }

    /// Opens the directory `rel` below `rootfs` as an O_PATH fd, creating missing components with
    /// mkdirat in the directory opened before. Components are never symlinks: secureJoin resolved
    /// them already, so one appearing now is a race and fails (ELOOP).
    static func directory(_ rootfs: String, _ rel: String, create: Bool = true) throws(SysError) -> Int32 {
        var fd = try FS.open(rootfs, SL_O_PATH | O_DIRECTORY)
        var walked = ""
        for part in rel.split(separator: "/") {
            let name = String(part)
            walked += "/" + name
            var next = openDirectory(fd, name)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, name, 0o755) != 0 && errno != EEXIST {
                    let e = errno
                    close(fd)
                    throw SysError("mkdir", rootfs + walked, errno: e)
                }
                next = openDirectory(fd, name)
            }
            let e = errno
            close(fd)
            if next < 0 { throw SysError("open directory in rootfs", rootfs + walked, errno: e) }
            fd = next
        }
        return fd
    }

    /// One component, no symlink followed (O_NOFOLLOW|O_DIRECTORY where openat2 is missing).
    static func openDirectory(_ dir: Int32, _ name: String) -> Int32 {
        let flags = SL_O_PATH | O_DIRECTORY | O_CLOEXEC
        let fd = sl_openat2(dir, name, UInt64(flags), 0, SL_RESOLVE_BENEATH | SL_RESOLVE_NO_SYMLINKS)
        return fd < 0 && errno == ENOSYS ? openat(dir, name, flags | O_NOFOLLOW) : fd
    }

    /// The parent directory of `hostPath` (created as needed) and the last component's name.
    static func parent(_ hostPath: String, rootfs: String) throws(SysError) -> (fd: Int32, name: String) {
        let rel = relative(hostPath, rootfs: rootfs)
        guard let slash = rel.lastIndex(of: "/") else { return (try directory(rootfs, ""), rel) }
        return (try directory(rootfs, String(rel[..<slash])), String(rel[rel.index(after: slash)...]))
    }

    /// mkdir -p of a mount point inside the rootfs.
    static func mkdirAll(_ hostPath: String, rootfs: String) throws(SysError) {
        close(try directory(rootfs, relative(hostPath, rootfs: rootfs)))
    }

    /// Creates an empty file at `hostPath` unless something exists there (a bind-mount target).
    static func touch(_ hostPath: String, rootfs: String, mode: mode_t = 0o644) throws(SysError) {
        let (dir, name) = try parent(hostPath, rootfs: rootfs)
        defer { close(dir) }
        let fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        if fd < 0 && errno != EEXIST { throw SysError("create", hostPath, errno: errno) }
        if fd >= 0 { close(fd) }
    }

    /// Makes the device node `name` in `dir` (replacing what is there), then sets its mode and owner
    /// on that very inode (an O_PATH fd of it, never the path again).
    static func mknod(_ dir: Int32, _ name: String, _ d: DeviceNode, kind: mode_t) throws(SysError) {
        let mode = mode_t(d.fileMode & 0o7777)
        if unlinkat(dir, name, 0) != 0 && errno != ENOENT { throw SysError("unlink", d.path, errno: errno) }
        try sys("mknod", d.path) { mknodat(dir, name, kind | mode, sl_makedev(UInt32(d.major), UInt32(d.minor))) }
        let node = try sys("open", d.path) { openat(dir, name, SL_O_PATH | O_NOFOLLOW | O_CLOEXEC) }
        defer { close(node) }
        var st = stat()
        guard fstat(node, &st) == 0, st.st_mode & S_IFMT == kind else {
            throw SysError("device node \(d.path) was replaced while it was created", errno: EPERM)
        }
        // chmod has no O_PATH form before fchmodat2 (Linux 6.6): go through the fd's magic link.
        try sys("chmod", d.path) { chmod("/proc/self/fd/\(node)", mode) }
        try sys("chown", d.path) { fchownat(node, "", d.uid, d.gid, Int32(SL_AT_EMPTY_PATH)) }
    }
}
