import CLinux
import Glibc

/// Writes to procfs (sysctls, oom_score_adj, LSM attributes, id maps, time offsets) through
/// descriptors that are checked to be procfs, never by plain path (CVE-2025-52881 class): a mount
/// or symlink over a /proc file must not redirect a root write to another file.
public enum Procfs {
    public static let superMagic = 0x9fa0  // PROC_SUPER_MAGIC

    /// Returns `fd` when it is on procfs; otherwise closes it and throws.
    static func verified(_ fd: Int32, _ path: String) throws(SysError) -> Int32 {
        let type = sl_fstatfs_type(fd)
        if type == superMagic { return fd }
        let e = errno
        close(fd)
        if type < 0 { throw SysError("fstatfs", path, errno: e) }
        throw SysError("\(path) is not on procfs; refusing to use it", errno: EXDEV)
    }

    /// Opens `relative` below the procfs at /proc. Every component is resolved beneath /proc without
    /// following symlinks or crossing a mount (openat2 RESOLVE_BENEATH|NO_XDEV|NO_SYMLINKS; where the
    /// kernel lacks openat2, O_NOFOLLOW and a same-device check), and the result must be procfs.
    /// A leading "self/" is resolved through that procfs's own "self" link (the pid it knows us by).
    public static func open(_ relative: String, _ flags: Int32) throws(SysError) -> Int32 {
        let path = "/proc/" + relative
        let root = try verified(try FS.open("/proc", SL_O_PATH | O_DIRECTORY), "/proc")
        defer { close(root) }
        var rel = relative
        if rel.hasPrefix("self/") {
            var buf = [CChar](repeating: 0, count: 64)
            let n = try sys("readlinkat", "/proc/self") { readlinkat(root, "self", &buf, 63) }
            rel = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) + rel.dropFirst(4)
        }
        let resolve = SL_RESOLVE_BENEATH | SL_RESOLVE_NO_XDEV | SL_RESOLVE_NO_SYMLINKS | SL_RESOLVE_NO_MAGICLINKS
        var fd = sl_openat2(root, rel, UInt64(flags | O_CLOEXEC), 0, resolve)
        // ENOSYS: a kernel before 5.6. EPERM: a seccomp profile that does not list openat2 (loaded
        // before the process's last procfs writes when noNewPrivileges is false; the fifo reopen
        // follows it), whose default action answers for every syscall it does not name.
        if fd < 0 && (errno == ENOSYS || errno == EPERM) { fd = try openWithoutOpenat2(root, rel, flags, path) }
        if fd < 0 { throw SysError("open", path, errno: errno) }
        return try verified(fd, path)
    }

    /// Without openat2 (kernels before 5.6, seccomp profiles without it): the last component not
    /// followed, and the file on the same procfs as /proc.
    static func openWithoutOpenat2(_ root: Int32, _ rel: String, _ flags: Int32, _ path: String) throws(SysError)
        -> Int32
    {
        let fd = try sys("open", path) { openat(root, rel, flags | O_CLOEXEC | O_NOFOLLOW) }
        var a = stat()
        var b = stat()
        if fstat(root, &a) != 0 || fstat(fd, &b) != 0 || a.st_dev != b.st_dev {
            close(fd)
            throw SysError("\(path) is not on the procfs mounted at /proc; refusing to use it", errno: EXDEV)
        }
        return fd
    }

    /// Writes `value` to the procfs file `relative` (e.g. "sys/kernel/shm_rmid_forced").
    public static func write(_ relative: String, _ value: String) throws(SysError) {
        let fd = try open(relative, O_WRONLY)
        defer { close(fd) }
        try FS.writeAll(fd: fd, Array(value.utf8), path: "/proc/" + relative)
    }

    /// Reopens our own descriptor `fd` through /proc/self/fd with `flags` (the fd directory is
    /// resolved as in `open`; only the final magic link is followed).
    public static func reopen(_ fd: Int32, _ flags: Int32) throws(SysError) -> Int32 {
        let dir = try open("self/fd", SL_O_PATH | O_DIRECTORY)
        defer { close(dir) }
        return try sys("open", "/proc/self/fd/\(fd)") { openat(dir, String(fd), flags | O_CLOEXEC) }
    }
}
