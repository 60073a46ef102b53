import CLinux
import Glibc
import LinuxSystem

/// `tmpcopyup` (runc/crun extension): a tmpfs mounted over a directory starts with a copy of what
/// the directory held. The copy reads the directory through an fd opened before the mount, so it
/// sees the shadowed contents, and writes into the new mount; names are resolved relative to those
/// fds without following symlinks, so nothing in the image can redirect it.
enum CopyUp {
    /// Copies the entries of directory `src` into directory `dst` (files, directories, symlinks,
    /// device nodes and fifos, with their modes and owners). `name` is for error messages.
    static func copyContents(from src: Int32, to dst: Int32, name: String) throws(SysError) {
        for entry in try FS.listDirectory("/proc/self/fd/\(src)") {
            let path = name + "/" + entry
            var st = stat()
            try sys("tmpcopyup: lstat", path) { fstatat(src, entry, &st, AT_SYMLINK_NOFOLLOW) }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                try sys("tmpcopyup: mkdir", path) { mkdirat(dst, entry, 0o700) }
                let from = try sys("tmpcopyup: open", path) {
                    openat(src, entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                defer { close(from) }
                let to = try sys("tmpcopyup: open copy of", path) {
                    openat(dst, entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                defer { close(to) }
                try copyContents(from: from, to: to, name: path)
            case S_IFREG:
                try copyFile(entry, from: src, to: dst, path: path)
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = try sys("tmpcopyup: readlink", path) { readlinkat(src, entry, &buf, Int(PATH_MAX)) }
                buf[n] = 0
                try sys("tmpcopyup: symlink", path) { symlinkat(buf, dst, entry) }
            default:
                try sys("tmpcopyup: mknod", path) { mknodat(dst, entry, st.st_mode, st.st_rdev) }
            }
            try sys("tmpcopyup: chown", path) { fchownat(dst, entry, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) }
            // After chown, which clears set-id bits; symlinks have no mode of their own.
            if st.st_mode & S_IFMT != S_IFLNK {
                try sys("tmpcopyup: chmod", path) { fchmodat(dst, entry, st.st_mode & 0o7777, 0) }
            }
        }
    }

    static func copyFile(_ entry: String, from src: Int32, to dst: Int32, path: String) throws(SysError) {
        let input = try sys("tmpcopyup: open", path) { openat(src, entry, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        defer { close(input) }
        let output = try sys("tmpcopyup: create", path) {
            openat(dst, entry, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        defer { close(output) }
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try sys("tmpcopyup: read", path) { read(input, &buf, buf.count) }
            if n == 0 { return }
            try FS.writeAll(fd: output, Array(buf[0..<n]), path: path)
        }
    }
}
