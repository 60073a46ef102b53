// Semantic checks of a decoded config (runtime-spec config.md and config-linux.md, plus the checks
// runc makes before it starts anything). Each error names the offending JSON path.

private func isAbsolute(_ path: String) -> Bool { path.utf8.first == UInt8(ascii: "/") }

private func fail(_ path: String, _ message: String) -> OCIError { OCIError(path: path, message: message) }

/// `base.key`, or `base["key"]` when the key is not an identifier.
private func member(_ base: String, _ key: String) -> String { base + formatPath([NameKey(key)]).dotted }

extension String {
    /// Prefixes a `.` unless the string already starts with `[`.
    fileprivate var dotted: String { hasPrefix("[") ? self : "." + self }
}

private let propagationModes: Set<String> = [
    "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable",
]
private let knownRlimitSet = Set(knownRlimits)

extension Spec {
    /// Throws the first problem found, e.g. `process.args: must not be empty`.
    public func validate() throws(OCIError) {
        if ociVersion.isEmpty { throw fail("ociVersion", "must not be empty") }
        guard let root else { throw fail("root", "required field missing") }
        if root.path.isEmpty { throw fail("root.path", "must not be empty") }
        if let process { try process.validate() }
        try validateMounts()
        if let hooks { try hooks.validate() }
        try validateLinux()
    }

    /// A relative destination is taken relative to "/" (runtime-spec 1.2, as runc does). A mount's
    /// own id mappings come in pairs (config.md: each "MUST be specified along with" the other).
    private func validateMounts() throws(OCIError) {
        for (i, mount) in (mounts ?? []).enumerated() {
            if mount.destination.isEmpty { throw fail("mounts[\(i)].destination", "must not be empty") }
            let pairs = [
                ("uidMappings", "gidMappings", mount.uidMappings, mount.gidMappings),
                ("gidMappings", "uidMappings", mount.gidMappings, mount.uidMappings),
            ]
            for (field, other, list, counterpart) in pairs {
                if list != nil && counterpart == nil {
                    throw fail("mounts[\(i)].\(field)", "must be specified along with \(other)")
                }
                for (j, m) in (list ?? []).enumerated() where m.size == 0 {
                    throw fail("mounts[\(i)].\(field)[\(j)].size", "must be greater than zero")
                }
            }
        }
    }

    private func validateLinux() throws(OCIError) {
        let linux = self.linux ?? Linux()
        let namespaces = linux.namespaces ?? []

        var seen = Set<NamespaceType>()
        for (i, ns) in namespaces.enumerated() {
            if !seen.insert(ns.type).inserted {
                throw fail("linux.namespaces[\(i)].type", "duplicate namespace \(quoteJSON(ns.type.rawValue))")
            }
            if let path = ns.path, !path.isEmpty, !isAbsolute(path) {
                throw fail("linux.namespaces[\(i)].path", "must be an absolute path")
            }
        }
        func namespace(_ type: NamespaceType) -> Namespace? { namespaces.first { $0.type == type } }

        // UTS: a hostname or domainname needs the container's own UTS namespace (as runc requires;
        // one joined by path counts, since it is not the runtime's).
        if let hostname, !hostname.isEmpty, namespace(.uts) == nil {
            throw fail("hostname", "unable to set hostname without a private UTS namespace")
        }
        if let domainname, !domainname.isEmpty, namespace(.uts) == nil {
            throw fail("domainname", "unable to set domainname without a private UTS namespace")
        }
        try linux.validateIDMappings(userNamespace: namespace(.user))

        // Time namespace offsets.
        if let offsets = linux.timeOffsets, !offsets.isEmpty {
            for clock in offsets.keys.sorted() where clock != "monotonic" && clock != "boottime" {
                throw fail(
                    member("linux.timeOffsets", clock),
                    "unknown clock \(quoteJSON(clock)) (must be monotonic or boottime)")
            }
            if namespace(.time) == nil {
                throw fail("linux.timeOffsets", "time namespace offsets specified, but no time namespace is configured")
            }
        }

        if let propagation = linux.rootfsPropagation, !propagation.isEmpty, !propagationModes.contains(propagation) {
            throw fail(
                "linux.rootfsPropagation",
                "invalid value \(quoteJSON(propagation)) (must be one of "
                    + "shared, slave, private, unbindable, rshared, rslave, rprivate, runbindable)")
        }
        try linux.validateDevices()
        try linux.validateSysctlsAndPaths(hasNamespace: { namespace($0) != nil })
    }
}

extension Linux {
    /// User namespace and id mappings.
    fileprivate func validateIDMappings(userNamespace: Namespace?) throws(OCIError) {
        let mappings = [("uidMappings", "uid", uidMappings ?? []), ("gidMappings", "gid", gidMappings ?? [])]
        for (field, kind, list) in mappings {
            if userNamespace == nil, !list.isEmpty {
                throw fail("linux.\(field)", "user namespace mappings specified, but no user namespace is configured")
            }
            if let user = userNamespace, user.path?.isEmpty ?? true, list.isEmpty {
                throw fail("linux.\(field)", "a new user namespace requires \(kind) mappings")
            }
            for (i, m) in list.enumerated() where m.size == 0 {
                throw fail("linux.\(field)[\(i)].size", "must be greater than zero")
            }
        }
    }

    fileprivate func validateDevices() throws(OCIError) {
        for (i, device) in (devices ?? []).enumerated() {
            let path = "linux.devices[\(i)]"
            guard ["c", "b", "u", "p"].contains(device.type) else {
                throw fail(path + ".type", "invalid device type \(quoteJSON(device.type)) (must be c, b, u or p)")
            }
            if !isAbsolute(device.path) { throw fail(path + ".path", "must be an absolute path") }
            if device.type != "p" {
                if device.major == nil {
                    throw fail(path + ".major", "required for device type \(quoteJSON(device.type))")
                }
                if device.minor == nil {
                    throw fail(path + ".minor", "required for device type \(quoteJSON(device.type))")
                }
            }
            // mknod takes 32-bit numbers; -1 ("any") is only meaningful in linux.resources.devices.
            for (name, n) in [("major", device.major), ("minor", device.minor)] {
                if let n, !(0...Int64(UInt32.max)).contains(n) {
                    throw fail("\(path).\(name)", "\(n) is out of range 0-4294967295")
                }
            }
        }
    }

    fileprivate func validateSysctlsAndPaths(hasNamespace: (NamespaceType) -> Bool) throws(OCIError) {
        if let sysctl, sysctl.keys.contains("") {
            throw fail("linux.sysctl", "key must not be empty")
        }
        for key in (sysctl ?? [:]).keys.sorted() {
            if let problem = sysctlProblem(key, hasNamespace: hasNamespace) {
                throw fail(member("linux.sysctl", key), problem)
            }
        }
        for (field, paths) in [("maskedPaths", maskedPaths ?? []), ("readonlyPaths", readonlyPaths ?? [])] {
            for (i, p) in paths.enumerated() where !isAbsolute(p) {
                throw fail("linux.\(field)[\(i)]", "must be an absolute path")
            }
            if !paths.isEmpty, !hasNamespace(.mount) {
                throw fail("linux.\(field)", "unable to restrict sys entries without a private MNT namespace")
            }
        }
    }
}

extension Process {
    /// Checks a process (config.json's `process`, or an exec's process.json); `path` prefixes error paths.
    public func validate(path base: String = "process") throws(OCIError) {
        func path(_ field: String) -> String { base.isEmpty ? field : base + "." + field }
        guard let args, !args.isEmpty else { throw fail(path("args"), "must not be empty") }
        if !isAbsolute(cwd) { throw fail(path("cwd"), "must be an absolute path") }

        for (i, entry) in (env ?? []).enumerated() {
            guard let eq = entry.utf8.firstIndex(of: UInt8(ascii: "=")) else {
                throw fail(path("env[\(i)]"), "invalid environment variable \(quoteJSON(entry)): missing '='")
            }
            if eq == entry.utf8.startIndex {
                throw fail(path("env[\(i)]"), "invalid environment variable \(quoteJSON(entry)): empty name")
            }
        }

        var seenRlimits = Set<String>()
        for (i, rlimit) in (rlimits ?? []).enumerated() {
            let field = path("rlimits[\(i)]")
            if !knownRlimitSet.contains(rlimit.type) {
                throw fail(field + ".type", "unknown rlimit \(quoteJSON(rlimit.type))")
            }
            if !seenRlimits.insert(rlimit.type).inserted {
                throw fail(field + ".type", "duplicate rlimit \(quoteJSON(rlimit.type))")
            }
            if rlimit.soft > rlimit.hard {
                throw fail(field + ".soft", "soft limit \(rlimit.soft) is greater than hard limit \(rlimit.hard)")
            }
        }

        // Unknown capabilities are not an error (runtime-spec 1.2): the runtime warns and leaves them out.

        if let adj = oomScoreAdj, adj < -1000 || adj > 1000 {
            throw fail(path("oomScoreAdj"), "\(adj) is out of range (must be between -1000 and 1000)")
        }
    }
}

extension Hooks {
    func validate() throws(OCIError) {
        let lists = [
            ("prestart", prestart), ("createRuntime", createRuntime), ("createContainer", createContainer),
            ("startContainer", startContainer), ("poststart", poststart), ("poststop", poststop),
        ]
        for (name, hooks) in lists {
            for (i, hook) in (hooks ?? []).enumerated() {
                let base = "hooks.\(name)[\(i)]"
                if !isAbsolute(hook.path) { throw fail(base + ".path", "must be an absolute path") }
                if let timeout = hook.timeout, timeout <= 0 {
                    throw fail(base + ".timeout", "must be greater than zero")
                }
            }
        }
    }
}

/// The IPC sysctls the kernel keeps per IPC namespace (besides every `fs.mqueue.*`).
private let ipcSysctls: Set<String> = [
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
]

/// A sysctl key in dotted form: "net/ipv4/conf/eth0.100/rp_filter" (slashes as separators, the
/// other form sysctl(8) accepts) becomes "net.ipv4.conf.eth0/100.rp_filter".
public func sysctlDotted(_ key: String) -> String {
    guard let first = key.first(where: { $0 == "." || $0 == "/" }), first == "/" else { return key }
    return String(key.map { $0 == "/" ? "." : $0 == "." ? "/" : $0 })
}

/// Why a sysctl may not be set, or nil. Only namespaced sysctls are allowed, as runc does: /proc/sys
/// is mostly global, and writing anything else would change the host (issue 13). `net.*` also needs
/// a network namespace that is not the runtime's own (checked when the plan opens a joined one).
func sysctlProblem(_ key: String, hasNamespace: (NamespaceType) -> Bool) -> String? {
    let s = sysctlDotted(key)
    if ipcSysctls.contains(s) || s.hasPrefix("fs.mqueue.") {
        return hasNamespace(.ipc) ? nil : "sysctl \(quoteJSON(s)) is not allowed in the host's ipc namespace"
    }
    if s.hasPrefix("net.") {
        return hasNamespace(.network) ? nil : "sysctl \(quoteJSON(s)) is not allowed in the host's network namespace"
    }
    if hasNamespace(.uts) && s == "kernel.domainname" { return nil }
    if hasNamespace(.uts) && s == "kernel.hostname" {
        return "sysctl \(quoteJSON(s)) is not allowed as it conflicts with the OCI \"hostname\" field"
    }
    return "sysctl \(quoteJSON(s)) is not in a separate kernel namespace"
}
