import CLinux
import Glibc

/// The calls a container process makes to take on its user, groups and capabilities: a seam, so
/// that their order (which the kernel makes matter) is tested without root against a recording fake
/// (Tests/RuntimeCoreTests/CredentialOrderTests.swift). `LinuxCredentials` makes the real calls.
public protocol CredentialCalls {
    /// prctl(PR_SET_KEEPCAPS): keep the permitted set across the change of uid.
    func setKeepCaps(_ on: Bool) throws(SysError)
    func setGroups(_ gids: [gid_t]) throws(SysError)
    func setResGid(_ gid: gid_t) throws(SysError)
    func setResUid(_ uid: uid_t) throws(SysError)
    /// Drops every capability not in `keep` from the bounding set (prctl(PR_CAPBSET_DROP)).
    func dropBounding(keep: [Int32]) throws(SysError)
    /// capset of effective, permitted and inheritable, then the ambient set.
    func setCapabilities(_ caps: CapabilitySets) throws(SysError)
    /// prctl(PR_SET_NO_NEW_PRIVS).
    func setNoNewPrivs() throws(SysError)
}

/// The real calls.
public struct LinuxCredentials: CredentialCalls {
    public init() {}

    public func setKeepCaps(_ on: Bool) throws(SysError) {
        try sys("prctl(PR_SET_KEEPCAPS)") { sl_prctl(SL_PR_SET_KEEPCAPS, on ? 1 : 0, 0, 0, 0) }
    }

    public func setGroups(_ gids: [gid_t]) throws(SysError) {
        try sys("setgroups") { sl_setgroups(gids.count, gids) }
    }

    public func setResGid(_ gid: gid_t) throws(SysError) {
        try sys("setresgid", "gid \(gid)") { sl_setresgid(gid, gid, gid) }
    }

    public func setResUid(_ uid: uid_t) throws(SysError) {
        try sys("setresuid", "uid \(uid)") { sl_setresuid(uid, uid, uid) }
    }

    public func dropBounding(keep: [Int32]) throws(SysError) {
        var caps = CapabilitySets()
        caps.bounding = keep
        try caps.dropBounding()
    }

    public func setCapabilities(_ caps: CapabilitySets) throws(SysError) {
        try caps.apply()
    }

    public func setNoNewPrivs() throws(SysError) {
        try sys("prctl(PR_SET_NO_NEW_PRIVS)") { sl_prctl(SL_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }
    }
}
