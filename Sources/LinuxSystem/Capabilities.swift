import CCap
import CLinux
import Glibc

/// Capability sets resolved to numbers (in the parent), applied with libcap (in the child).
public struct CapabilitySets: Sendable, Equatable {
    public var bounding: [Int32] = []
    public var effective: [Int32] = []
    public var inheritable: [Int32] = []
    public var permitted: [Int32] = []
    public var ambient: [Int32] = []
    public init() {}

    /// Resolves a capability name such as "CAP_SYS_ADMIN"; nil if libcap does not know it.
    public static func value(of name: String) -> Int32? {
        var v: cap_value_t = 0
        return cap_from_name(name.lowercased(), &v) == 0 ? Int32(v) : nil
    }

    public static func lastCap() -> Int32 {
        (try? FS.readString("/proc/sys/kernel/cap_last_cap")).flatMap { Int32($0.filter { !$0.isWhitespace }) } ?? 40
    }

    /// Drops every capability not in `bounding` from the bounding set. Needs CAP_SETPCAP; call before setuid.
    public func dropBounding() throws(SysError) {
        let keep = Set(bounding)
        for c in 0...CapabilitySets.lastCap() where !keep.contains(c) {
            try sys("prctl(PR_CAPBSET_DROP)", "cap \(c)") { sl_prctl(SL_PR_CAPBSET_DROP, UInt(c), 0, 0, 0) }
        }
    }

    /// Sets effective, permitted and inheritable, then the ambient set.
    public func apply() throws(SysError) {
        guard let caps = cap_init() else { throw SysError("cap_init", errno: errno) }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        func set(_ list: [Int32], _ flag: cap_flag_t) throws(SysError) {
            if list.isEmpty { return }
            var values = list.map { cap_value_t($0) }
            try sys("cap_set_flag") { cap_set_flag(caps, flag, Int32(values.count), &values, CAP_SET) }
        }
        try set(effective, CAP_EFFECTIVE)
        try set(permitted, CAP_PERMITTED)
        try set(inheritable, CAP_INHERITABLE)
        try sys("capset") { cap_set_proc(caps) }
        try sys("cap_reset_ambient") { cap_reset_ambient() }
        // The kernel raises an ambient cap only if it is permitted and inheritable; like runc, a cap
        // that cannot be raised (EPERM) is left out rather than failing the container.
        for c in ambient where cap_set_ambient(cap_value_t(c), CAP_SET) != 0 && errno != EPERM {
            throw SysError("prctl(PR_CAP_AMBIENT_RAISE)", "cap \(c)", errno: errno)
        }
    }
}
