/// One line of /proc/PID/mountinfo (proc(5)):
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
/// The one parser of the code base; paths come back with mountinfo's octal escapes (`\040`) undone.
public struct MountInfo: Sendable, Equatable {
    public var root: String
    public var mountPoint: String
    public var mountOptions: String
    public var fsType: String
    public var source: String
    public var superOptions: String

    public init?(_ line: Substring) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 4 else { return nil }
        root = MountInfo.unescape(fields[3])
        mountPoint = MountInfo.unescape(fields[4])
        mountOptions = String(fields[5])
        fsType = String(fields[dash + 1])
        source = MountInfo.unescape(fields[dash + 2])
        superOptions = String(fields[dash + 3])
    }

    /// Every mount of `text` (a mountinfo file's contents).
    public static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { MountInfo($0) }
    }

    /// The mounts of process `pid` ("self" by default); empty when the file cannot be read.
    public static func read(pid: String = "self") -> [MountInfo] {
        parse((try? FS.readString("/proc/\(pid)/mountinfo")) ?? "")
    }

    /// mountinfo escapes space, tab, newline and backslash as `\040` etc.
    public static func unescape(_ s: Substring) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count {
                let digits = b[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    out.append(UInt8(truncatingIfNeeded: digits.reduce(0) { $0 * 8 + Int($1 - UInt8(ascii: "0")) }))
                    i += 4
                    continue
                }
            }
            out.append(b[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One line of /proc/PID/cgroup (cgroups(7)): `ID:CONTROLLERS:PATH`, e.g. `4:cpu,cpuacct:/a` for a v1
/// hierarchy or `0::/a` for cgroup2 (no controllers). The one parser of that file.
public struct ProcCgroup: Sendable, Equatable {
    public var hierarchyID: String
    /// Empty for the cgroup2 line; `name=systemd` style names are kept as they are.
    public var controllers: [String]
    public var path: String

    public init(hierarchyID: String, controllers: [String], path: String) {
        self.hierarchyID = hierarchyID
        self.controllers = controllers
        self.path = path
    }

    public static func parse(_ text: String) -> [ProcCgroup] {
        text.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { return nil }
            return ProcCgroup(
                hierarchyID: String(f[0]), controllers: f[1].split(separator: ",").map(String.init),
                path: String(f[2]))
        }
    }
}
