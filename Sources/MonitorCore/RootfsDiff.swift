import CLinux
import Glibc
import LinuxSystem
import OCI

/// One member of a tar archive as its headers describe it.
struct TarMember: Equatable {
    var name: String
    var type: UInt8
    var link: String
}

/// Applying a checkpoint archive's rootfs changes (rootfs-diff.tar, deleted.files) without leaving
/// the rootfs. Host tar resolves names against the host: before it runs, every member is checked
/// (relative, no `..`, no path through a symlink of the rootfs or of the archive), and deletions
/// resolve their directory inside the rootfs (openat2 RESOLVE_IN_ROOT). The rootfs must not change
/// under a restore (no running process shares it).
enum RootfsDiff {
    /// The members of the tar at `path`: ustar, GNU long names (L/K) and pax path/linkpath.
    static func members(_ path: String) throws(MonitorFailure) -> [TarMember] {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MonitorFailure("open \(path): \(errnoString(errno))") }
        defer { close(fd) }
        var out: [TarMember] = []
        var offset: off_t = 0
        var longName: String?
        var longLink: String?
        var header = [UInt8](repeating: 0, count: 512)
        while true {
            guard readFully(fd, &header, at: offset) else {
                throw MonitorFailure("\(path): truncated tar header at offset \(offset)")
            }
            if header.allSatisfy({ $0 == 0 }) { return out }
            guard let size = tarSize(header[124..<136]) else {
                throw MonitorFailure("\(path): bad size in the tar header at offset \(offset)")
            }
            let type = header[156]
            let dataOffset = offset + 512
            offset = dataOffset + off_t((size + 511) / 512 * 512)
            if type == UInt8(ascii: "L") || type == UInt8(ascii: "K") || type == UInt8(ascii: "x") {
                guard size <= 1 << 20 else { throw MonitorFailure("\(path): tar extension header of \(size) bytes") }
                var data = [UInt8](repeating: 0, count: size)
                guard readFully(fd, &data, at: dataOffset) else {
                    throw MonitorFailure("\(path): truncated tar extension header")
                }
                if type == UInt8(ascii: "L") {
                    longName = cField(data[...])
                } else if type == UInt8(ascii: "K") {
                    longLink = cField(data[...])
                } else {
                    let pax = paxRecords(data)
                    if let p = pax["path"] { longName = p }
                    if let l = pax["linkpath"] { longLink = l }
                }
                continue
            }
            if type == UInt8(ascii: "g") { continue }
            var name = cField(header[0..<100])
            let magic = Array(header[257..<263])
            if magic == Array("ustar\0".utf8), header[345] != 0 { name = cField(header[345..<500]) + "/" + name }
            out.append(TarMember(name: longName ?? name, type: type, link: longLink ?? cField(header[157..<257])))
            longName = nil
            longLink = nil
        }
    }

    /// Refuses members that would leave the rootfs or write through a symlink: absolute names,
    /// `..`, a directory component that is a symlink in the rootfs or a symlink member, a
    /// directory member where a symlink is, and hard links to such paths.
    static func check(_ members: [TarMember], rootfs: String) throws(MonitorFailure) {
        let symlinks = Set(members.filter { $0.type == UInt8(ascii: "2") }.compactMap { try? relative($0.name) })
        var checked: Set<String> = []
        func checkPath(_ raw: String, isDirectory: Bool, what: String) throws(MonitorFailure) {
            let rel: String
            do { rel = try relative(raw) } catch {
                throw MonitorFailure("rootfs-diff.tar: \(what) \"\(raw)\": \(error.message)")
            }
            let parts = rel.split(separator: "/").map(String.init)
            for i in parts.indices {
                let prefix = parts[0...i].joined(separator: "/")
                let isLeaf = i == parts.count - 1
                if isLeaf && !isDirectory { break }
                if checked.contains(prefix) { continue }
                if symlinks.contains(prefix) {
                    throw MonitorFailure(
                        "rootfs-diff.tar: \(what) \"\(raw)\" goes through the symlink member \"\(prefix)\"")
                }
                if let st = FS.lstatOf(rootfs + "/" + prefix), FS.isSymlink(st) {
                    throw MonitorFailure(
                        "rootfs-diff.tar: \(what) \"\(raw)\" goes through the symlink /\(prefix) of the rootfs")
                }
                if !isLeaf { checked.insert(prefix) }
            }
        }
        for m in members {
            if (try? relative(m.name))?.isEmpty == true { continue }  // "./": the rootfs itself
            try checkPath(m.name, isDirectory: m.type == UInt8(ascii: "5"), what: "member")
            if m.type == UInt8(ascii: "1") {
                try checkPath(m.link, isDirectory: false, what: "hard link target of \"\(m.name)\"")
            }
        }
    }

    /// A member name without leading "./" and trailing "/"; absolute names and `..` are refused.
    static func relative(_ name: String) throws(MonitorFailure) -> String {
        guard !name.hasPrefix("/") else { throw MonitorFailure("an absolute path is not allowed") }
        let parts = name.split(separator: "/").filter { $0 != "." }
        guard !parts.contains("..") else { throw MonitorFailure("\"..\" is not allowed") }
        return parts.joined(separator: "/")
    }

    /// deleted.files: a JSON array of relative paths; each is checked before anything is changed.
    static func deletedFiles(_ path: String) throws(MonitorFailure) -> [String] {
        guard FS.lstatOf(path) != nil else { return [] }
        guard let text = try? FS.readFile(path), case .array(let items)? = try? JSONValue.parse(text) else {
            throw MonitorFailure("deleted.files: not a JSON array of paths")
        }
        var out: [String] = []
        for item in items {
            guard case .string(let raw) = item else { throw MonitorFailure("deleted.files: not a JSON array of paths") }
            let rel: String
            do { rel = try relative(raw) } catch {
                throw MonitorFailure("deleted.files: entry \"\(raw)\": \(error.message)")
            }
            guard !rel.isEmpty else { throw MonitorFailure("deleted.files: entry \"\(raw)\" names the rootfs itself") }
            out.append(rel)
        }
        return out
    }

    /// Removes `rel` (checked by `deletedFiles`) with its directory resolved inside the rootfs: a
    /// symlink on the way cannot lead out. A path that does not exist there is skipped.
    static func remove(_ rel: String, rootfs: String) {
        let root = Glibc.open(rootfs, SL_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return }
        defer { close(root) }
        let parent = FS.dirname(rel)
        let leaf = String(rel.split(separator: "/").last ?? "")
        let dir = sl_openat2(
            root, parent, UInt64(SL_O_PATH | O_DIRECTORY | O_CLOEXEC), 0, SL_RESOLVE_IN_ROOT | SL_RESOLVE_NO_MAGICLINKS)
        guard dir >= 0 else { return }
        defer { close(dir) }
        try? FS.removeAll("/proc/self/fd/\(dir)/\(leaf)")
    }

    private static func readFully(_ fd: Int32, _ buf: inout [UInt8], at offset: off_t) -> Bool {
        var done = 0
        while done < buf.count {
            let n = buf.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + done, $0.count - done, offset + off_t(done))
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    /// Octal, or GNU base-256 (high bit of the first byte set).
    private static func tarSize(_ field: ArraySlice<UInt8>) -> Int? {
        if let first = field.first, first & 0x80 != 0 {
            var v = 0
            for (i, b) in field.enumerated() {
                let byte = i == 0 ? Int(b & 0x7f) : Int(b)
                guard v < 1 << 52 else { return nil }
                v = v << 8 | byte
            }
            return v
        }
        let digits = field.prefix { $0 != 0 && $0 != UInt8(ascii: " ") }.drop { $0 == UInt8(ascii: " ") }
        if digits.isEmpty { return 0 }
        return Int(String(decoding: digits, as: UTF8.self), radix: 8)
    }

    private static func cField(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// pax extended header records: "<length> <key>=<value>\n".
    private static func paxRecords(_ data: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < data.count {
            guard let space = data[i...].firstIndex(of: UInt8(ascii: " ")),
                let len = Int(String(decoding: data[i..<space], as: UTF8.self)), len > 0, i + len <= data.count
            else { break }
            let record = data[(space + 1)..<(i + len - 1)]
            if let eq = record.firstIndex(of: UInt8(ascii: "=")) {
                out[String(decoding: record[record.startIndex..<eq], as: UTF8.self)] = String(
                    decoding: record[(eq + 1)...], as: UTF8.self)
            }
            i += len
        }
        return out
    }
}
