import CLinux
import Glibc

/// File helpers on raw descriptors. All fds are opened O_CLOEXEC.
public enum FS {
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws(SysError) -> Int32 {
        try sys("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    public static func readAll(fd: Int32, path: String = "") throws(SysError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let (chunk, n) = readChunk(fd, max: 65536)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SysError("read", path, errno: errno) }
            if n == 0 { return out }
            if out.isEmpty { out = chunk } else { out += chunk }
        }
    }

    /// One read(2) of up to `max` bytes into a new array, returning it and read's result (errno as
    /// read left it). Only the bytes read are written: a zero-filled buffer would dirty all its pages
    /// on every call (16 for a 300-byte file in 64 KiB), private memory in every monitor and shim.
    public static func readChunk(_ fd: Int32, max: Int) -> ([UInt8], Int) {
        var n = 0
        var saved: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: max) { buf, count in
            n = Glibc.read(fd, buf.baseAddress, max)
            saved = errno
            count = Swift.max(n, 0)
        }
        errno = saved
        return (bytes, n)
    }

    public static func readFile(_ path: String) throws(SysError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        return try readAll(fd: fd, path: path)
    }

    public static func readString(_ path: String) throws(SysError) -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }

    public static func writeAll(fd: Int32, _ bytes: [UInt8], path: String = "") throws(SysError) {
        var off = 0
        while off < bytes.count {
            let n = try sys("write", path) {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            }
            off += n
        }
    }

    /// Writes a file (truncating), e.g. a /proc or /sys knob.
    public static func writeFile(_ path: String, _ s: String, mode: mode_t = 0o644, create: Bool = true)
        throws(SysError)
    {
        let fd = try open(path, O_WRONLY | O_TRUNC | (create ? O_CREAT : 0), mode)
        defer { close(fd) }
        try writeAll(fd: fd, Array(s.utf8), path: path)
    }

    /// Writes a file atomically: a temp file in the same directory, then renamed over the target, so a
    /// reader sees the old or the new content, never a torn one. `durable` also fsyncs the temp file
    /// before the rename (survives a host crash); volatile runtime state (state.json, pid files) skips
    /// it, as runc and crun do: on an ext4 /run that fsync cost 0.6-3 ms per write here (Spec/performance.md).
    /// No symlink is followed at the target or the temp name (see `ReplacementFile`).
    public static func writeFileAtomic(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, durable: Bool = true)
        throws(SysError)
    {
        let file = try ReplacementFile(path, mode: mode)
        do {
            try writeAll(fd: file.fd, bytes, path: file.shownTemp)
            if durable { try sys("fsync", file.shownTemp) { fsync(file.fd) } }
        } catch {
            file.abandon()
            throw error
        }
        try file.commit()
        close(file.fd)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func lstatOf(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return lstat(path, &st) == 0 ? st : nil
    }

    public static func statOf(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return stat(path, &st) == 0 ? st : nil
    }

    public static func isDirectory(_ st: Glibc.stat) -> Bool { st.st_mode & S_IFMT == S_IFDIR }
    public static func isSymlink(_ st: Glibc.stat) -> Bool { st.st_mode & S_IFMT == S_IFLNK }

    public static func mkdir(_ path: String, _ mode: mode_t = 0o755) throws(SysError) {
        if Glibc.mkdir(path, mode) != 0 && errno != EEXIST { throw SysError("mkdir", path, errno: errno) }
    }

    /// mkdir -p.
    public static func mkdirAll(_ path: String, _ mode: mode_t = 0o755) throws(SysError) {
        if let st = statOf(path) {
            if isDirectory(st) { return }
            throw SysError("mkdir", path, errno: ENOTDIR)
        }
        let parent = dirname(path)
        if parent != path { try mkdirAll(parent, mode) }
        try mkdir(path, mode)
    }

    /// Creates an empty regular file if nothing exists at path (a bind-mount target).
    public static func touch(_ path: String, _ mode: mode_t = 0o644) throws(SysError) {
        if lstatOf(path) != nil { return }
        let fd = try open(path, O_WRONLY | O_CREAT, mode)
        close(fd)
    }

    public static func readlink(_ path: String) throws(SysError) -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = try sys("readlink", path) { Glibc.readlink(path, &buf, 4096) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func realpath(_ path: String) throws(SysError) -> String {
        guard let p = Glibc.realpath(path, nil) else { throw SysError("realpath", path, errno: errno) }
        defer { free(p) }
        return String(cString: p)
    }

    /// Closes every descriptor from `first` up, or with `cloexec` marks them close-on-exec
    /// (CVE-2024-21626 family: nothing the runtime holds or inherited may reach an exec'd program).
    /// close_range(2) first; where that fails (kernel before 5.11, a seccomp filter that denies it)
    /// one descriptor at a time from /proc/self/fd. An error only when neither works.
    public static func closeFrom(_ first: Int32, cloexec: Bool = false) throws(SysError) {
        if sl_close_range(UInt32(first), UInt32.max, cloexec ? 4 /* CLOSE_RANGE_CLOEXEC */ : 0) == 0 { return }
        let rangeErrno = errno
        guard let d = opendir("/proc/self/fd") else {
            throw SysError(
                "close_range failed (\(errnoString(rangeErrno))), then opendir", "/proc/self/fd", errno: errno)
        }
        let own = dirfd(d)
        var fds: [Int32] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if let fd = Int32(name), fd >= first, fd != own { fds.append(fd) }
        }
        closedir(d)
        for fd in fds {
            let rc = cloexec ? fcntl(fd, F_SETFD, FD_CLOEXEC) : Glibc.close(fd)
            if rc != 0 && errno != EBADF && (cloexec || errno != EINTR) {
                throw SysError(cloexec ? "fcntl(FD_CLOEXEC)" : "close", "fd \(fd)", errno: errno)
            }
        }
    }

    public static func listDirectory(_ path: String) throws(SysError) -> [String] {
        guard let d = opendir(path) else { throw SysError("opendir", path, errno: errno) }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// rm -rf that does not cross into other mounts' contents it cannot remove; errors are returned.
    /// Removes `path` and everything under it, never crossing into another mount: a mount point
    /// below `path` (a bind of a rootfs left behind by a killed restore, say) fails with EBUSY before
    /// anything of that mount is touched.
    public static func removeAll(_ path: String) throws(SysError) {
        try removeAll(path, mountID: mountID(path))
    }

    private static func removeAll(_ path: String, mountID top: UInt64?) throws(SysError) {
        guard let st = lstatOf(path) else { return }
        guard isDirectory(st) else {
            try sys("unlink", path) { unlink(path) }
            return
        }
        if let top, let id = mountID(path), id != top { throw SysError("remove (a mount point)", path, errno: EBUSY) }
        for name in try listDirectory(path) { try removeAll(path + "/" + name, mountID: top) }
        try sys("rmdir", path) { rmdir(path) }
    }

    /// The id of the mount `path` is on (statx STATX_MNT_ID, Linux 5.8), not following a last symlink.
    public static func mountID(_ path: String) -> UInt64? {
        var id: UInt64 = 0
        guard sl_statx_mnt_id(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, &id) == 0, id != 0 else { return nil }
        return id
    }

    public static func dirname(_ path: String) -> String {
        guard let i = path.lastIndex(of: "/") else { return "." }
        if i == path.startIndex { return "/" }
        return String(path[..<i])
    }

    /// Joins a base and a path, removing `.`, empty and `..` components lexically (never above "/").
    public static func cleanPath(_ path: String) -> String {
        // On bytes: splitting a String by Character ran the grapheme breaker over every path
        // (a third of a millisecond per `run`, Spec/performance.md), and paths are bytes anyway.
        let slash = UInt8(ascii: "/")
        let dot = UInt8(ascii: ".")
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count + 1)
        var starts: [Int] = []  // where each kept component begins in `out`, for ".."
        for part in path.utf8.split(separator: slash) {
            if part.count == 1 && part.first == dot { continue }
            if part.count == 2 && part.allSatisfy({ $0 == dot }) {
                if let start = starts.popLast() { out.removeSubrange(start...) }
                continue
            }
            starts.append(out.count)
            out.append(slash)
            out.append(contentsOf: part)
        }
        return out.isEmpty ? "/" : String(decoding: out, as: UTF8.self)
    }

    /// Makes `path` absolute against `base` (the bundle) unless it already is.
    public static func absolute(_ path: String, base: String) -> String {
        path.hasPrefix("/") ? path : (base.hasSuffix("/") ? base + path : base + "/" + path)
    }

    public static func cwd() -> String {
        var buf = [CChar](repeating: 0, count: 4097)
        guard getcwd(&buf, 4096) != nil else { return "/" }
        return cString(buf)
    }
}

/// A new file that replaces `path` when committed, for root writing at a path someone else may
/// control (pid files, exit files, logs, state): the parent directory is opened once, the file is
/// created there under a fresh name with O_CREAT|O_EXCL|O_NOFOLLOW (a planted symlink or file is
/// never opened), and renameat puts it in place (a symlink at `path` is replaced, not followed, as
/// runc does with its pid file).
public struct ReplacementFile {
    public let fd: Int32
    public let path: String
    let dir: Int32
    let name: String
    let temp: String
    public var shownTemp: String { FS.dirname(path) + "/" + temp }

    public init(_ path: String, mode: mode_t) throws(SysError) {
        self.path = path
        let parent = FS.dirname(path)
        name = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        guard !name.isEmpty, name != ".", name != ".." else { throw SysError("create", path, errno: EISDIR) }
        dir = try sys("open", parent) { Glibc.open(parent, SL_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        var tries = 0
        while true {
            let candidate = "." + name + "." + String(UInt32.random(in: .min ... .max), radix: 16) + ".tmp"
            let fd = Glibc.openat(dir, candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 {
                self.fd = fd
                temp = candidate
                return
            }
            let e = errno
            tries += 1
            if e != EEXIST || tries >= 16 {
                Glibc.close(dir)
                throw SysError("create", path, errno: e)
            }
        }
    }

    /// Renames the new file over `path`; `fd` stays open for the caller. On failure the temp file is
    /// removed and both fds are closed.
    public func commit() throws(SysError) {
        guard renameat(dir, temp, dir, name) == 0 else {
            let e = errno
            abandon()
            throw SysError("rename", shownTemp, errno: e)
        }
        Glibc.close(dir)
    }

    /// Removes the temp file and closes both fds.
    public func abandon() {
        unlinkat(dir, temp, 0)
        Glibc.close(fd)
        Glibc.close(dir)
    }
}

/// A NUL-terminated C buffer as a String.
public func cString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// One line to stderr (a newline added when missing); errors writing it are ignored.
public func printErr(_ s: String) {
    let line = s.hasSuffix("\n") ? s : s + "\n"
    _ = try? FS.writeAll(fd: 2, Array(line.utf8))
}

/// One line to stdout (a newline added when missing); errors writing it are ignored.
public func printOut(_ s: String) {
    let line = s.hasSuffix("\n") ? s : s + "\n"
    _ = try? FS.writeAll(fd: 1, Array(line.utf8))
}
