import CSeccomp
import Glibc
import LinuxSystem
import OCI

/// Compiled seccomp programs kept between runs in `<state root>/:seccomp` (no container id can be
/// named so: ids have no colon). libseccomp's rule building and BPF generation cost 3-13 ms per
/// container for a 300-syscall allow-list on 3 architectures, and nearly every container of a node
/// uses one of a few profiles; crun keeps such a cache too.
///
/// An entry is found by a hash of its key and used only when the whole key stored in it is equal
/// byte for byte, so a hash collision is a miss, never a wrong program. The key is everything the
/// program depends on: the profile as JSON, libseccomp's version and API level, the kernel release
/// and this executable's build id. Entries are files of the runtime's own user, mode 0600, in a 0700
/// directory under the state root, written atomically; anything else found there is ignored. The
/// cache is best effort: when it cannot be read or written the filter is compiled as without it.
public struct SeccompCache: Sendable {
    public let dir: String
    /// Past this many entries (old builds' and profiles'), the directory is emptied before a store.
    static let maxEntries = 64
    static let maxFileSize = 1 << 20
    static let magic = Array("swiftlet-seccomp-cache 1\n".utf8)

    public init(root: String) { dir = root + "/:seccomp" }

    /// What a cached program was stored with.
    struct Entry: Equatable {
        var program: [UInt8]
        var skippedSyscalls: [String]
    }

    /// The key for `profile`: nil when this executable has no build id (then nothing is cached).
    static func key(_ profile: OCI.Seccomp) -> [UInt8]? {
        guard let build = Executable.buildID else { return nil }
        var library = "unknown"
        if let v = seccomp_version() { library = "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.micro)" }
        let head = "build=\(build) libseccomp=\(library) api=\(seccomp_api_get()) kernel=\(Kernel.release)\n"
        return Array(head.utf8) + Array(encodeJSON(profile).utf8)
    }

    /// FNV-1a (64 bits) of the key, in hex: only to find the file.
    static func fileName(_ key: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The file: magic, the key's length and the key, the skipped syscall names as a JSON array on
    /// one line, then the program.
    static func encode(_ key: [UInt8], _ entry: Entry) -> [UInt8] {
        magic + Array("\(key.count)\n".utf8) + key + Array((encodeJSON(entry.skippedSyscalls) + "\n").utf8)
            + entry.program
    }

    static func decode(_ bytes: [UInt8], key: [UInt8]) -> Entry? {
        guard bytes.starts(with: magic) else { return nil }
        var at = magic.count
        guard let end = bytes[at...].firstIndex(of: UInt8(ascii: "\n")),
            let length = Int(String(decoding: bytes[at..<end], as: UTF8.self)), length == key.count,
            bytes.count >= end + 1 + length, bytes[(end + 1)..<(end + 1 + length)].elementsEqual(key)
        else { return nil }
        at = end + 1 + length
        guard let lineEnd = bytes[at...].firstIndex(of: UInt8(ascii: "\n")),
            let skipped = try? decodeJSON([String].self, from: Array(bytes[at..<lineEnd]))
        else { return nil }
        let program = Array(bytes[(lineEnd + 1)...])
        // A classic BPF program: whole 8-byte instructions, at most BPF_MAXINSNS of them.
        guard !program.isEmpty, program.count % 8 == 0, program.count / 8 <= 4096 else { return nil }
        return Entry(program: program, skippedSyscalls: skipped)
    }

    /// The entry stored for `key`, if a valid one is there.
    func lookup(_ key: [UInt8]) -> Entry? {
        let path = dir + "/" + Self.fileName(key)
        let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid(), st.st_mode & 0o077 == 0,
            st.st_size <= Self.maxFileSize, let bytes = try? FS.readAll(fd: fd, path: path)
        else { return nil }
        return Self.decode(bytes, key: key)
    }

    /// Stores an entry; failures are ignored (the next run compiles again).
    func store(_ key: [UInt8], _ entry: Entry) {
        let bytes = Self.encode(key, entry)
        guard bytes.count <= Self.maxFileSize else { return }
        guard (try? FS.mkdirAll(dir, 0o700)) != nil, let st = FS.lstatOf(dir), FS.isDirectory(st),
            st.st_uid == geteuid(), st.st_mode & 0o077 == 0
        else { return }
        if let names = try? FS.listDirectory(dir), names.count >= Self.maxEntries {
            for name in names { unlink(dir + "/" + name) }
        }
        try? FS.writeFileAtomic(dir + "/" + Self.fileName(key), bytes, mode: 0o600, durable: false)
    }
}
