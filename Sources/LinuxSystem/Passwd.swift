/// The one /etc/passwd reader (no NSS: the binaries are static): the entry of a uid, in the file at
/// `path` (the runtime's /etc/passwd, or the container's after pivot_root).
public struct PasswdEntry: Sendable, Equatable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var home: String

    public init(name: String, uid: UInt32, gid: UInt32, home: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
    }

    /// The first entry for `uid`, nil when the file is unreadable or has none.
    public static func lookup(uid: UInt32, path: String = "/etc/passwd") -> PasswdEntry? {
        guard let text = try? FS.readString(path) else { return nil }
        return parse(text).first { $0.uid == uid }
    }

    /// `name:password:uid:gid:gecos:home:shell` lines; malformed lines are skipped.
    public static func parse(_ text: String) -> [PasswdEntry] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count >= 6, let uid = UInt32(f[2]), let gid = UInt32(f[3]) else { return nil }
            return PasswdEntry(name: String(f[0]), uid: uid, gid: gid, home: String(f[5]))
        }
    }
}
