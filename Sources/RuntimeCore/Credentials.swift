import Glibc
import LinuxSystem
import Seccomp

/// The order in which a container process (init or exec) gives up the runtime's identity, over the
/// `CredentialCalls` seam. The kernel decides the order:
/// - the bounding set is dropped while we still have CAP_SETPCAP (before setresuid);
/// - without no_new_privs, loading a seccomp filter needs CAP_SYS_ADMIN: before setresuid;
/// - setgroups needs CAP_SETGID: before setresgid, and both before setresuid gives CAP_SETGID up;
/// - keepcaps keeps the permitted set across setresuid, then the sets are set (capset, ambient);
/// - no_new_privs and the filter it allows come last (`restrict`), after the LSM label and the
///   PATH lookup, so the profile restricts the user process and not our set-up.
enum CredentialSwitch {
    typealias LoadSeccomp = (SeccompFilter) throws(SysError) -> Void

    /// Everything up to and including the capability sets.
    static func become(_ p: ProcessPlan, _ calls: some CredentialCalls, loadSeccomp: LoadSeccomp) throws(SysError) {
        if let caps = p.caps { try calls.dropBounding(keep: caps.bounding) }
        if let filter = p.seccomp, !p.noNewPrivileges { try loadSeccomp(filter) }
        try calls.setKeepCaps(true)
        if !p.additionalGids.isEmpty || p.uid == 0 {
            // setgroups(2) is refused in a user namespace with setgroups "deny"; tolerate only then
            // (only when there are no groups to set: dropping the inherited ones is then impossible).
            let gids = p.additionalGids.map { gid_t($0) }
            do { try calls.setGroups(gids) } catch let e where e.errno == EPERM && gids.isEmpty {}
        }
        try calls.setResGid(p.gid)
        try calls.setResUid(p.uid)
        try calls.setKeepCaps(false)
        if let caps = p.caps { try calls.setCapabilities(caps) }
    }

    /// no_new_privs, then the seccomp filter it lets an unprivileged process load: the last steps
    /// before exec.
    static func restrict(_ p: ProcessPlan, _ calls: some CredentialCalls, loadSeccomp: LoadSeccomp) throws(SysError) {
        guard p.noNewPrivileges else { return }
        try calls.setNoNewPrivs()
        if let filter = p.seccomp { try loadSeccomp(filter) }
    }
}
