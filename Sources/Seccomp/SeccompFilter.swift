import CLinux
import CSeccomp
import Glibc
import LinuxSystem
import OCI

/// An OCI seccomp profile compiled with libseccomp. Built in the runtime before fork (so every
/// name, action and operator error names its config field), loaded in the child last-but-one.
/// With a `SeccompCache`, a profile compiled before is not compiled again.
public final class SeccompFilter: @unchecked Sendable {
    // Used only single-threaded: built in the parent, loaded in a forked child. Nil when the
    // program came from the cache.
    let ctx: scmp_filter_ctx?

    /// True when some rule (or the default) uses SCMP_ACT_NOTIFY: after loading, the notify fd goes
    /// to the profile's listener.
    public private(set) var notifies = false
    /// Syscall names this libseccomp does not know; skipped (runc does the same) and reported as warnings.
    public private(set) var skippedSyscalls: [String] = []
    /// seccomp(2) flags from linux.seccomp.flags, passed when loading (libseccomp 2.5 cannot set
    /// WAIT_KILLABLE_RECV; the others are also set on the context, which validates them).
    var loadFlags: UInt32 = 0
    var notifyFdFromLoad: Int32 = -1
    /// The BPF program, when generated ahead of `load` (`precompile`).
    var program: [UInt8]?
    /// Prepended to libseccomp's program: syscalls newer than the profile get ENOSYS (EnosysStub).
    var enosysStub: [UInt8] = []

    init(ctx: scmp_filter_ctx) { self.ctx = ctx }

    /// A filter whose program the cache had: what `build` would have found is derived from the profile.
    init(cached entry: SeccompCache.Entry, profile: OCI.Seccomp) {
        ctx = nil
        program = entry.program
        skippedSyscalls = entry.skippedSyscalls
        notifies = Self.usesNotify(profile)
        loadFlags = Self.flagBits(profile.flags ?? [])
    }

    deinit { if let ctx { seccomp_release(ctx) } }

    /// A profile libseccomp cannot take: the field and what is wrong; the errno when libseccomp gave one.
    public struct BuildError: ChainedError, Sendable {
        public var description: String
        public var errno: Int32? = nil
        public var ownErrno: Int32? { errno }
    }

    static let operators: [String: scmp_compare] = [
        "SCMP_CMP_NE": SCMP_CMP_NE, "SCMP_CMP_LT": SCMP_CMP_LT, "SCMP_CMP_LE": SCMP_CMP_LE,
        "SCMP_CMP_EQ": SCMP_CMP_EQ, "SCMP_CMP_GE": SCMP_CMP_GE, "SCMP_CMP_GT": SCMP_CMP_GT,
        "SCMP_CMP_MASKED_EQ": SCMP_CMP_MASKED_EQ,
    ]

    public static let actionNames = [
        "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
    ]
    public static var operatorNames: [String] { operators.keys.sorted() }
    /// linux.seccomp.flags: each name, the libseccomp attribute that validates it (none for
    /// WAIT_KILLABLE_RECV, which libseccomp 2.5 cannot set) and its seccomp(2) flag bit.
    static let flags: [(name: String, attribute: scmp_filter_attr?, bit: UInt32)] = [
        ("SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC, 1 << 0),
        ("SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG, 1 << 1),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB, 1 << 2),
        ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", nil, 1 << 5),
    ]
    public static let flagNames = flags.map(\.name)
    public static let unsupportedFlagNames: [String] = []

    /// What `features` reports: actions, operators, the architectures this libseccomp knows, flags.
    public static func features() -> Features.Seccomp {
        let candidates = [
            "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
            "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
        ]
        let archs = candidates.filter { (try? arch($0, field: "")) != nil }
        return Features.Seccomp(
            enabled: true, actions: actionNames, operators: operatorNames, archs: archs,
            knownFlags: flagNames + unsupportedFlagNames, supportedFlags: flagNames.filter(kernelTakes))
    }

    /// seccomp(2) flag bits (linux/seccomp.h); WAIT_KILLABLE_RECV only with NEW_LISTENER (8).
    static let flagBits: [String: UInt32] = [
        "SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32 | 8,
    ]

    /// Whether this kernel takes a filter flag: with no program seccomp(2) fails with EFAULT once
    /// the flags passed its checks, with EINVAL when it does not know them (libseccomp probes so too).
    static func kernelTakes(_ name: String) -> Bool {
        guard let bits = flagBits[name] else { return false }
        return sl_seccomp_probe_flags(bits) < 0 && errno == EFAULT
    }

    /// libseccomp's action value for an OCI action name; errnoRet defaults to EPERM as in runc.
    static func action(_ name: String, errnoRet: UInt32?, field: String) throws(BuildError) -> UInt32 {
        switch name {
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return SCMP_ACT_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS": return SCMP_ACT_KILL_PROCESS
        case "SCMP_ACT_TRAP": return SCMP_ACT_TRAP
        case "SCMP_ACT_ERRNO": return 0x0005_0000 | ((errnoRet ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_TRACE": return 0x7ff0_0000 | ((errnoRet ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_ALLOW": return SCMP_ACT_ALLOW
        case "SCMP_ACT_LOG": return SCMP_ACT_LOG
        case "SCMP_ACT_NOTIFY": return SCMP_ACT_NOTIFY
        default:
            throw BuildError(description: "\(field): unknown seccomp action \"\(name)\"")
        }
    }

    /// "SCMP_ARCH_X86_64" -> libseccomp's token for "x86_64".
    static func arch(_ name: String, field: String) throws(BuildError) -> UInt32 {
        var short = name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst(10)) : name
        short = short.lowercased()
        let token = seccomp_arch_resolve_name(short)
        if token == 0 { throw BuildError(description: "\(field): unknown architecture \"\(name)\"") }
        return token
    }

    /// Compiles `profile`, or takes its program from `cache` when it was compiled before. With a
    /// cache, the program is generated here (not in the child) and stored.
    public static func build(_ profile: OCI.Seccomp, field: String = "linux.seccomp", cache: SeccompCache? = nil)
        throws(BuildError) -> SeccompFilter
    {
        guard let cache, let key = SeccompCache.key(profile) else { return try compile(profile, field: field) }
        if let entry = cache.lookup(key) { return SeccompFilter(cached: entry, profile: profile) }
        let filter = try compile(profile, field: field)
        // A program libseccomp cannot export is left to the child's `precompile`, which reports it.
        do { try filter.precompile() } catch { return filter }
        if let program = filter.program {
            cache.store(key, SeccompCache.Entry(program: program, skippedSyscalls: filter.skippedSyscalls))
        }
        return filter
    }

    static func usesNotify(_ profile: OCI.Seccomp) -> Bool {
        profile.defaultAction == "SCMP_ACT_NOTIFY"
            || (profile.syscalls ?? []).contains { $0.action == "SCMP_ACT_NOTIFY" }
    }

    /// seccomp(2)'s flag bits for linux.seccomp.flags (unknown names are refused by `setFlags`).
    static func flagBits(_ names: [String]) -> UInt32 {
        names.reduce(0) { bits, name in bits | (flags.first { $0.name == name }?.bit ?? 0) }
    }

    static func compile(_ profile: OCI.Seccomp, field: String) throws(BuildError) -> SeccompFilter {
        let defaultAction = try action(
            profile.defaultAction, errnoRet: profile.defaultErrnoRet, field: "\(field).defaultAction")
        guard let ctx = seccomp_init(defaultAction) else {
            throw BuildError(description: "\(field): seccomp_init failed")
        }
        let filter = SeccompFilter(ctx: ctx)
        filter.notifies = defaultAction == SCMP_ACT_NOTIFY
        // The runtime sets no_new_privs itself when the config asks; libseccomp must not force it.
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        let archTokens = try filter.addArchitectures(profile.architectures ?? [], field: "\(field).architectures")
        try filter.setFlags(profile.flags ?? [], field: "\(field).flags")
        filter.loadFlags = flagBits(profile.flags ?? [])
        for (i, rule) in (profile.syscalls ?? []).enumerated() {
            try filter.addRule(rule, defaultAction: defaultAction, field: "\(field).syscalls[\(i)]")
        }
        filter.enosysStub = EnosysStub.build(profile, archTokens: archTokens) ?? []
        if filter.loadFlags & (1 << 5) != 0 && !filter.notifies {
            throw BuildError(
                description:
                    "\(field).flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule (the "
                    + "kernel takes it only with a listener)"
            )
        }
        if filter.notifies && (profile.listenerPath ?? "").isEmpty {
            throw BuildError(description: "\(field).listenerPath: required when an action is SCMP_ACT_NOTIFY")
        }
        return filter
    }

    /// linux.seccomp.architectures: each added to the filter; their libseccomp tokens.
    private func addArchitectures(_ names: [String], field: String) throws(BuildError) -> [UInt32] {
        var tokens: [UInt32] = []
        guard let ctx else { return tokens }
        for (i, a) in names.enumerated() {
            let token = try Self.arch(a, field: "\(field)[\(i)]")
            tokens.append(token)
            let rc = seccomp_arch_add(ctx, token)
            if rc < 0 && rc != -EEXIST {
                throw BuildError(description: "\(field)[\(i)]: seccomp_arch_add \(a): \(errnoString(-rc))", errno: -rc)
            }
        }
        return tokens
    }

    /// linux.seccomp.flags as libseccomp filter attributes (WAIT_KILLABLE_RECV: a raw flag at load).
    private func setFlags(_ flags: [String], field: String) throws(BuildError) {
        guard let ctx else { return }
        for (i, f) in flags.enumerated() {
            guard let known = Self.flags.first(where: { $0.name == f }) else {
                throw BuildError(description: "\(field)[\(i)]: unknown seccomp flag \"\(f)\"")
            }
            guard let attr = known.attribute else { continue }
            let rc = seccomp_attr_set(ctx, attr, 1)
            if rc < 0 { throw BuildError(description: "\(field)[\(i)]: \(f): \(errnoString(-rc))", errno: -rc) }
        }
    }

    /// One linux.seccomp.syscalls entry: its conditions, then a rule per syscall name (names this
    /// libseccomp does not know are skipped, as runc does; rules with the default action add nothing).
    private func addRule(_ rule: OCI.Seccomp.Syscall, defaultAction: UInt32, field: String) throws(BuildError) {
        guard let ctx else { return }
        let act = try Self.action(rule.action, errnoRet: rule.errnoRet, field: "\(field).action")
        if act == SCMP_ACT_NOTIFY { notifies = true }
        var conditions: [scmp_arg_cmp] = []
        for (j, arg) in (rule.args ?? []).enumerated() {
            guard let op = Self.operators[arg.op] else {
                throw BuildError(description: "\(field).args[\(j)].op: unknown operator \"\(arg.op)\"")
            }
            guard arg.index < 6 else { throw BuildError(description: "\(field).args[\(j)].index: must be 0 to 5") }
            conditions.append(scmp_arg_cmp(arg: arg.index, op: op, datum_a: arg.value, datum_b: arg.valueTwo ?? 0))
        }
        // libseccomp ANDs the conditions of one rule but refuses two on one argument; like runc,
        // such rules become one rule per condition (OR).
        let distinct = Set(conditions.map(\.arg)).count == conditions.count
        let groups: [[scmp_arg_cmp]] = distinct ? [conditions] : conditions.map { [$0] }
        for name in rule.names {
            let nr = seccomp_syscall_resolve_name(name)
            if nr == -1 {
                skippedSyscalls.append(name)
                continue
            }
            if act == defaultAction { continue }
            for g in groups {
                var cmp = g
                let rc = seccomp_rule_add_array(ctx, act, nr, UInt32(cmp.count), &cmp)
                if rc < 0 {
                    throw BuildError(description: "\(field): adding rule for \(name): \(errnoString(-rc))", errno: -rc)
                }
            }
        }
    }

    /// The notify fd of a loaded filter (SCMP_ACT_NOTIFY), to hand to the listener.
    public func notifyFd() throws(SysError) -> Int32 {
        if notifyFdFromLoad >= 0 { return notifyFdFromLoad }
        guard let ctx else { throw SysError("seccomp_notify_fd", errno: EBADF) }
        let fd = seccomp_notify_fd(ctx)
        if fd < 0 { throw SysError("seccomp_notify_fd", errno: -fd) }
        return fd
    }

    /// Generates the BPF program now, libseccomp's most expensive step (5 ms for a 300-syscall
    /// allow-list on 3 architectures): container init does it before the runtime says go, so that
    /// `load` later only installs it.
    public func precompile() throws(SysError) {
        if program == nil { program = try exportProgram() }
    }

    /// Loads the filter into the calling process. The last thing before exec (or before giving up
    /// privileges when no_new_privs is not set, since loading then needs CAP_SYS_ADMIN). Always
    /// through seccomp(2) with the exported program, so that the ENOSYS stub is part of it.
    public func load() throws(SysError) {
        try loadProgram()
    }

    /// The BPF program libseccomp generates for the filter, behind the ENOSYS stub.
    func exportProgram() throws(SysError) -> [UInt8] {
        guard let ctx else { throw SysError("export seccomp filter", errno: EBADF) }
        let mem = try sys("memfd_create", "seccomp") { sl_memfd("seccomp-bpf") }
        defer { close(mem) }
        let rc = seccomp_export_bpf(ctx, mem)
        if rc < 0 { throw SysError("export seccomp filter", errno: -rc) }
        lseek(mem, 0, SEEK_SET)
        return try enosysStub + FS.readAll(fd: mem, path: "seccomp filter")
    }

    /// Loads the (precompiled or now exported) program with seccomp(2), the profile's flags and,
    /// for SCMP_ACT_NOTIFY, NEW_LISTENER, whose result is then the notify fd (libseccomp's own load
    /// is never used).
    func loadProgram() throws(SysError) {
        let program: [UInt8]
        if let precompiled = self.program { program = precompiled } else { program = try exportProgram() }
        let flags = loadFlags | (notifies ? 1 << 3 : 0)  // SECCOMP_FILTER_FLAG_NEW_LISTENER
        let fd = try sys("seccomp(SECCOMP_SET_MODE_FILTER)") {
            program.withUnsafeBytes { sl_seccomp_set_filter(flags, $0.baseAddress, UInt16(program.count / 8)) }
        }
        if notifies { notifyFdFromLoad = fd }
    }
}
