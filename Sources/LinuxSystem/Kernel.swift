import Glibc

/// The running kernel's release, for features that depend on its version.
public enum Kernel {
    public static var release: String {
        var u = utsname()
        guard uname(&u) == 0 else { return "" }
        return withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// (major, minor) parsed from a release like "6.1.0-18-amd64"; (0, 0) if unreadable.
    public static func version(_ release: String = Kernel.release) -> (Int, Int) {
        let nums = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return nums.count == 2 ? (nums[0], nums[1]) : (0, 0)
    }

    public static func atLeast(_ major: Int, _ minor: Int, release: String = Kernel.release) -> Bool {
        let (a, b) = version(release)
        return a > major || (a == major && b >= minor)
    }

    /// tmpfs `noswap` appeared in Linux 6.4.
    public static func tmpfsNoswap(release: String = Kernel.release) -> Bool { atLeast(6, 4, release: release) }

    /// True when this process runs in a user namespace other than the initial one: its uid_map is
    /// not the whole identity map `0 0 4294967295` (as runc's userns.RunningInUserNS decides).
    public static let runningInUserNamespace: Bool = {
        guard let text = try? FS.readString("/proc/self/uid_map") else { return false }
        let lines = text.split(separator: "\n").map { $0.split(separator: " ") }
        return lines.count != 1 || lines[0] != ["0", "0", "4294967295"]
    }()

    /// `uid` as the parent user namespace sees it: mapped through `uidMap` (/proc/self/uid_map:
    /// `inside outside count` lines); `uid` itself when no line maps it (the initial namespace maps
    /// every uid to itself). Under rootless podman, root in its namespace is the user outside.
    public static func parentUid(_ uid: UInt32, uidMap: String? = try? FS.readString("/proc/self/uid_map")) -> UInt32 {
        for line in (uidMap ?? "").split(separator: "\n") {
            let f = line.split(separator: " ").compactMap { UInt64($0) }
            guard f.count == 3, UInt64(uid) >= f[0], UInt64(uid) - f[0] < f[2] else { continue }
            return UInt32(truncatingIfNeeded: f[1] + (UInt64(uid) - f[0]))
        }
        return uid
    }
}
