import CLinux
import Glibc
import LinuxSystem
import Mounts
import OCI
import Seccomp

/// A process to start (container init or exec), fully resolved before fork.
struct ProcessPlan: Sendable {
    var args: [String]
    var env: [String]
    var cwd: String
    var uid: UInt32
    var gid: UInt32
    var additionalGids: [UInt32]
    var umask: UInt32?
    var caps: CapabilitySets?
    var rlimits: [(resource: Int32, soft: UInt64, hard: UInt64)]
    var noNewPrivileges: Bool
    var oomScoreAdj: Int?
    var terminal: Bool
    var consoleSize: ConsoleSize?
    /// The container's seccomp filter (exec'd processes get the same one).
    var seccomp: SeccompFilter?
    var appArmorProfile: String?
    var seLinuxLabel: String?
    /// ioprio value ((class << 13) | level) for ioprio_set, when process.ioPriority is set.
    var ioPriority: Int32?
    /// Settings left out (capabilities the kernel does not know or cannot grant), for the log.
    var warnings: [String] = []
    var scheduler: SchedulerPlan?
    /// process.execCPUAffinity as CPU masks (exec only; runc and crun ignore it for init).
    var initialAffinity: [UInt64]?
    var finalAffinity: [UInt64]?
    /// The container's linux.memoryPolicy (exec'd processes get it too).
    var memoryPolicy: MemoryPolicyPlan?

    static let rlimitTable: [String: Int32] = [
        "RLIMIT_CPU": SL_RLIMIT_CPU, "RLIMIT_FSIZE": SL_RLIMIT_FSIZE, "RLIMIT_DATA": SL_RLIMIT_DATA,
        "RLIMIT_STACK": SL_RLIMIT_STACK, "RLIMIT_CORE": SL_RLIMIT_CORE, "RLIMIT_RSS": SL_RLIMIT_RSS,
        "RLIMIT_NPROC": SL_RLIMIT_NPROC, "RLIMIT_NOFILE": SL_RLIMIT_NOFILE, "RLIMIT_MEMLOCK": SL_RLIMIT_MEMLOCK,
        "RLIMIT_AS": SL_RLIMIT_AS, "RLIMIT_LOCKS": SL_RLIMIT_LOCKS, "RLIMIT_SIGPENDING": SL_RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE": SL_RLIMIT_MSGQUEUE, "RLIMIT_NICE": SL_RLIMIT_NICE, "RLIMIT_RTPRIO": SL_RLIMIT_RTPRIO,
        "RLIMIT_RTTIME": SL_RLIMIT_RTTIME,
    ]

    init(_ p: OCI.Process, field: String = "process") throws(RuntimeError) {
        guard let args = p.args, !args.isEmpty else {
            throw RuntimeError(.invalidArgument, "\(field).args: must not be empty")
        }
        self.args = args
        env = dedupEnv(p.env ?? [])
        cwd = p.cwd
        uid = p.user.uid
        gid = p.user.gid
        additionalGids = p.user.additionalGids ?? []
        umask = p.user.umask
        noNewPrivileges = p.noNewPrivileges ?? false
        oomScoreAdj = p.oomScoreAdj
        terminal = p.terminal ?? false
        consoleSize = p.consoleSize
        if let c = p.capabilities {
            let (sets, capWarnings) = ProcessPlan.capabilitySets(c)
            caps = sets
            warnings += capWarnings
        }
        rlimits = try ProcessPlan.rlimits(p.rlimits, field: field)
        if !cwd.hasPrefix("/") { throw RuntimeError(.invalidArgument, "\(field).cwd: must be an absolute path") }
        if let io = p.ioPriority { ioPriority = try ProcessPlan.ioprio(io, field: field) }
        // LSM labels: applied at exec where the module is enabled; a clear error where it is not.
        if let a = p.apparmorProfile, !a.isEmpty {
            guard LSM.appArmorEnabled else {
                throw RuntimeError(.unsupported, "\(field).apparmorProfile: AppArmor is not enabled on this host")
            }
            appArmorProfile = a
        }
        if let l = p.selinuxLabel, !l.isEmpty {
            guard LSM.seLinuxEnabled else {
                throw RuntimeError(.unsupported, "\(field).selinuxLabel: SELinux is not enabled on this host")
            }
            seLinuxLabel = l
        }
        // Not applied yet: refuse rather than start the process without them.
        if let sched = p.scheduler { scheduler = try SchedulerPlan(sched, field: "\(field).scheduler") }
        if let a = p.execCPUAffinity {
            initialAffinity = try cpuMask(a.initial, field: "\(field).execCPUAffinity.initial")
            finalAffinity = try cpuMask(a.final, field: "\(field).execCPUAffinity.final")
        }
    }
}

extension ProcessPlan {
    /// The capability sets by number. runtime-spec 1.2: a capability that cannot be mapped or
    /// granted is logged as a warning, not a failure (runc 1.3 does the same, with these messages).
    static func capabilitySets(_ c: OCI.Capabilities) -> (CapabilitySets, warnings: [String]) {
        var sets = CapabilitySets()
        var unknown: [String] = []
        var warnings: [String] = []
        let lastCap = CapabilitySets.lastCap()
        func resolve(_ names: [String]?) -> [Int32] {
            var out: [Int32] = []
            for name in names ?? [] {
                if let v = CapabilitySets.value(of: name), v <= lastCap {
                    out.append(v)
                } else if !unknown.contains(name) {
                    unknown.append(name)
                }
            }
            return out
        }
        sets.bounding = resolve(c.bounding)
        sets.effective = resolve(c.effective)
        sets.inheritable = resolve(c.inheritable)
        sets.permitted = resolve(c.permitted)
        let ambient = resolve(c.ambient)
        if !unknown.isEmpty {
            warnings.append("ignoring unknown or unavailable capabilities: [\(unknown.joined(separator: " "))]")
        }
        // The kernel raises an ambient capability only if it is permitted and inheritable.
        for (v, name) in zip(ambient, (c.ambient ?? []).filter { !unknown.contains($0) }) {
            if sets.permitted.contains(v) && sets.inheritable.contains(v) {
                sets.ambient.append(v)
            } else {
                warnings.append("can't raise ambient capability \(name): operation not permitted")
            }
        }
        return (sets, warnings)
    }

    static func rlimits(_ list: [Rlimit]?, field: String) throws(RuntimeError) -> [(
        resource: Int32, soft: UInt64, hard: UInt64
    )] {
        var out: [(resource: Int32, soft: UInt64, hard: UInt64)] = []
        for (i, r) in (list ?? []).enumerated() {
            guard let res = rlimitTable[r.type] else {
                throw RuntimeError(.invalidArgument, "\(field).rlimits[\(i)].type: unknown rlimit \"\(r.type)\"")
            }
            out.append((res, r.soft, r.hard))
        }
        return out
    }

    /// The ioprio_set value ((class << 13) | level) of process.ioPriority.
    static func ioprio(_ io: IOPriority, field: String) throws(RuntimeError) -> Int32 {
        let classes = ["IOPRIO_CLASS_RT": Int32(1), "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3]
        guard let c = classes[io.class] else {
            throw RuntimeError(.invalidArgument, "\(field).ioPriority.class: unknown class \"\(io.class)\"")
        }
        let level = io.priority ?? 0
        guard (0...7).contains(level) else {
            throw RuntimeError(.invalidArgument, "\(field).ioPriority.priority: must be 0 to 7")
        }
        return (c << 13) | Int32(level)
    }
}

/// A sched_setaffinity mask for a CPU list like "0-3,7"; nil for none or "" (the spec: leave it).
func cpuMask(_ list: String?, field: String) throws(RuntimeError) -> [UInt64]? {
    guard let list, !list.isEmpty else { return nil }
    guard let cpus = parseNumberList(list), cpus.allSatisfy({ $0 < 8192 }) else {
        throw RuntimeError(.invalidArgument, "\(field): \"\(list)\" is not a list of CPUs like \"0-3,7\"")
    }
    var mask = [UInt64](repeating: 0, count: (cpus.max() ?? 0) / 64 + 1)
    for c in cpus { mask[c / 64] |= 1 << UInt64(c % 64) }
    return mask
}

/// personality(2) persona for linux.personality (PER_LINUX or PER_LINUX32); init and exec apply it.
func persona(_ p: Personality?) throws(RuntimeError) -> UInt? {
    guard let p else { return nil }
    let value: UInt
    switch p.domain {
    case "LINUX": value = 0x0000
    case "LINUX32": value = 0x0008
    default:
        throw RuntimeError(.invalidArgument, "config.json: linux.personality.domain: unknown domain \"\(p.domain)\"")
    }
    if let flags = p.flags, !flags.isEmpty {
        throw RuntimeError(.unsupported, "config.json: linux.personality.flags: not supported yet by swiftlet")
    }
    return value
}

/// The environment with each name once, at the place and with the value of its last occurrence
/// (as runc does).
func dedupEnv(_ env: [String]) -> [String] {
    var seen = Set<Substring>()
    var out: [String] = []
    for kv in env.reversed()
    where seen.insert(kv.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]).inserted {
        out.append(kv)
    }
    return out.reversed()
}

/// Which namespaces to create and which to join, with the join targets already opened.
struct NamespacePlan: Sendable {
    var newFlags: Int32 = 0  // everything new except the user and cgroup namespaces
    var newUser = false
    /// A new cgroup namespace is unshared by init after the runtime put it in its cgroup, so the
    /// namespace's root is the container's cgroup (runc does the same).
    var newCgroup = false
    var join: [(type: NamespaceType, fd: Int32)] = []  // user first
    var uidMap = ""
    var gidMap = ""
    var timeOffsets = ""
    var newPid: Bool { newFlags & SL_CLONE_NEWPID != 0 }

    /// The flags for making init with one clone that creates its new namespaces (as crun does),
    /// or nil when that cannot work and a middle process must set them up and fork init: a joined
    /// user namespace must be entered before the others are made, a joined PID namespace applies
    /// only to children, and time offsets must be written before any process is in the namespace.
    var cloneFlags: Int32? {
        if !timeOffsets.isEmpty || join.contains(where: { $0.type == .user || $0.type == .pid }) { return nil }
        return newFlags | (newUser ? SL_CLONE_NEWUSER : 0)
    }

    static func flag(_ t: NamespaceType) -> Int32 {
        switch t {
        case .pid: SL_CLONE_NEWPID
        case .network: SL_CLONE_NEWNET
        case .mount: SL_CLONE_NEWNS
        case .ipc: SL_CLONE_NEWIPC
        case .uts: SL_CLONE_NEWUTS
        case .user: SL_CLONE_NEWUSER
        case .cgroup: SL_CLONE_NEWCGROUP
        case .time: SL_CLONE_NEWTIME
        }
    }

    func closeFds() { for j in join { close(j.fd) } }
}

func mapText(_ m: [IDMapping]?) -> String {
    (m ?? []).map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
}

/// When init builds (mounts) and enters (pivot_root) its rootfs relative to `G`, the runtime's word
/// that it is in its cgroup (Spec/sync-protocol.md, process model, step 3). Nothing of the container
/// runs before `G`; as much as can be is done while the runtime still places init.
enum RootfsOrder: Equatable, Sendable {
    /// No hooks in between, no new cgroup namespace: mounts and pivot_root before `G`.
    case allBeforeGo
    /// prestart/createRuntime (`H`) or createContainer hooks run between the mounts and pivot_root:
    /// mounts before `G`, pivot_root after the hooks.
    case mountBeforeGo
    /// A new cgroup namespace must be made inside the cgroup, before the mounts: all after `G`.
    case allAfterGo

    init(newCgroupNamespace: Bool, runtimeHooks: Bool, createContainerHooks: Bool) {
        if newCgroupNamespace {
            self = .allAfterGo
        } else if runtimeHooks || createContainerHooks {
            self = .mountBeforeGo
        } else {
            self = .allBeforeGo
        }
    }

    var mountsBeforeGo: Bool { self != .allAfterGo }
    var entersBeforeGo: Bool { self == .allBeforeGo }
}

/// The whole resolved container: namespaces, rootfs, process, hooks.
struct ContainerPlan: Sendable {
    var spec: Spec
    /// config.json as parsed, for the state file.
    var specJSON: JSONValue
    var bundle: String
    var namespaces: NamespacePlan
    var rootfs: RootfsPlan
    var process: ProcessPlan?
    var hostname: String?
    var domainname: String?
    var sysctl: [(String, String)]
    /// personality(2) persona for linux.personality (PER_LINUX or PER_LINUX32).
    var personality: UInt?
    var preserveFds: Int
    /// Name of the session keyring init joins ("_ses.<id>"), nil with --no-new-keyring.
    var sessionKeyring: String?
    /// Things the config asks for that are done differently or left out, for the log.
    var warnings: [String] = []
    var netDevices: [NetDevicePlan] = []
    var intelRdt: IntelRdtPlan?

    /// Validates and resolves everything first; opens descriptors (joined namespaces, id-mapped
    /// trees) last, so an invalid config never leaves one open. The caller closes them (`closeFds`).
    init(
        spec: Spec, specJSON: JSONValue, id: String, bundle: String, noPivot: Bool, noNewKeyring: Bool,
        preserveFds: Int,
        listenFds: Int, cgroupBinds: [CgroupBind], seccompCache: SeccompCache? = nil
    ) throws(RuntimeError) {
        self.spec = spec
        self.specJSON = specJSON
        self.bundle = bundle
        self.preserveFds = preserveFds + listenFds
        sessionKeyring = noNewKeyring ? nil : "_ses.\(id)"
        process = try spec.process.map { p throws(RuntimeError) in
            try ContainerPlan.initProcess(p, listenFds: listenFds)
        }
        warnings += process?.warnings ?? []
        guard let root = spec.root else {
            throw RuntimeError(.invalidArgument, "config.json: root: required field missing")
        }
        let linux = spec.linux ?? Linux()
        try ContainerPlan.addLinuxSettings(&process, linux, seccompCache: seccompCache)
        personality = try persona(linux.personality)
        if let label = linux.mountLabel, !label.isEmpty, !LSM.seLinuxEnabled {
            throw RuntimeError(.unsupported, "config.json: linux.mountLabel: SELinux is not enabled on this host")
        }
        if linux.intelRdt != nil {
            intelRdt = try IntelRdtPlan.plan(linux.intelRdt, id: id, resctrlRoot: IntelRdtPlan.hostMountPoint())
        }
        netDevices = try NetDevicePlan.plan(linux)
        hostname = spec.hostname
        domainname = spec.domainname
        sysctl = try ContainerPlan.sysctls(linux)
        var ns = ContainerPlan.newNamespaces(linux)
        let inUserNS = (linux.namespaces ?? []).contains { $0.type == .user }
        let joinedUserNS = (linux.namespaces ?? []).first { $0.type == .user && !($0.path ?? "").isEmpty }?.path

        // Rootfs, mounts, devices.
        let (rootfsReal, propagation) = try ContainerPlan.rootfsPath(root, linux, bundle: bundle)
        var (mounts, devIsBind, mountWarnings) = try ContainerPlan.planMounts(
            spec, linux, bundle: bundle, rootfsReal: rootfsReal,
            joinedUserNS: joinedUserNS)
        warnings += mountWarnings
        let devices = try ContainerPlan.devices(linux)

        // Descriptors, last: namespaces joined by path, then id-mapped trees.
        try ContainerPlan.openJoinedNamespaces(linux, &ns)
        do {
            try ContainerPlan.openMountTrees(
                spec, linux, &mounts, joined: ns, inUserNS: inUserNS, rootfsReal: rootfsReal)
            // tmpfs with noswap in a new user namespace: the kernel only takes it from the initial one.
            if ns.newUser { try ContainerPlan.makeHostTmpfs(linux, &mounts) }
        } catch {
            ns.closeFds()
            closeDetachedTrees(mounts)
            throw error
        }
        namespaces = ns
        rootfs = RootfsPlan(
            rootfs: rootfsReal, readonly: root.readonly ?? false, rootPropagation: propagation,
            mounts: mounts, devices: devices, createDevices: !devIsBind,
            bindDevices: inUserNS || Kernel.runningInUserNamespace,  // rootless: no mknod
            inUserNamespace: inUserNS || Kernel.runningInUserNamespace, noPivot: noPivot,
            maskedPaths: linux.maskedPaths ?? [],
            readonlyPaths: linux.readonlyPaths ?? [], cgroupBinds: cgroupBinds)
        rootfs.newMountNamespace = (linux.namespaces ?? []).contains { $0.type == .mount }
        rootfs.explicitPropagation = !(linux.rootfsPropagation ?? "").isEmpty
    }

    /// Init's process: execCPUAffinity is for exec'd processes only (config.md), so init's affinity
    /// is reset; socket activation (systemd's LISTEN_FDS) passes the fds on and tells pid 1.
    static func initProcess(_ p: OCI.Process, listenFds: Int) throws(RuntimeError) -> ProcessPlan {
        var plan = try ProcessPlan(p)
        plan.initialAffinity = nil
        plan.finalAffinity = nil
        if listenFds > 0 { plan.env += ["LISTEN_FDS=\(listenFds)", "LISTEN_PID=1"] }
        return plan
    }

    /// What init's process gets from linux.*: the memory policy and the seccomp filter.
    static func addLinuxSettings(_ process: inout ProcessPlan?, _ linux: Linux, seccompCache: SeccompCache?)
        throws(RuntimeError)
    {
        if let policy = linux.memoryPolicy { process?.memoryPolicy = try MemoryPolicyPlan(policy) }
        if let profile = linux.seccomp {
            do { process?.seccomp = try SeccompFilter.build(profile, cache: seccompCache) } catch {
                throw RuntimeError(.invalidArgument, "config.json", cause: error)
            }
        }
    }

    /// linux.sysctl sorted by key; net.* refused in the runtime's own network namespace (validation
    /// accepted it for a joined one).
    static func sysctls(_ linux: Linux) throws(RuntimeError) -> [(String, String)] {
        let sysctl = (linux.sysctl ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let key = sysctl.first(where: { sysctlDotted($0.0).hasPrefix("net.") })?.0,
            let path = linux.namespaces?.first(where: { $0.type == .network })?.path, isOwnNetworkNamespace(path)
        {
            throw RuntimeError(
                .invalidArgument,
                "config.json: linux.sysctl: sysctl \"\(sysctlDotted(key))\" is not allowed in the host's network "
                    + "namespace"
            )
        }
        return sysctl
    }

    /// The namespaces to create (no descriptors yet), with id maps and time offsets.
    static func newNamespaces(_ linux: Linux) -> NamespacePlan {
        var ns = NamespacePlan()
        for n in linux.namespaces ?? [] where (n.path ?? "").isEmpty {
            if n.type == .user { ns.newUser = true } else { ns.newFlags |= NamespacePlan.flag(n.type) }
        }
        ns.newCgroup = ns.newFlags & SL_CLONE_NEWCGROUP != 0
        ns.newFlags &= ~SL_CLONE_NEWCGROUP
        if ns.newUser {
            ns.uidMap = mapText(linux.uidMappings)
            ns.gidMap = mapText(linux.gidMappings)
        }
        if let offs = linux.timeOffsets {
            ns.timeOffsets = offs.keys.sorted().map { "\($0) \(offs[$0]?.secs ?? 0) \(offs[$0]?.nanosecs ?? 0)\n" }
                .joined()
        }
        return ns
    }

    /// root.path made real (it must be a directory), and the rootfs propagation flags.
    static func rootfsPath(_ root: Root, _ linux: Linux, bundle: String) throws(RuntimeError) -> (String, UInt) {
        let rootPath = FS.absolute(root.path, base: bundle)
        guard let st = FS.statOf(rootPath), FS.isDirectory(st) else {
            throw RuntimeError(
                .invalidArgument, "config.json: root.path: \(rootPath): not a directory or does not exist")
        }
        let rootfsReal: String
        do { rootfsReal = try FS.realpath(rootPath) } catch { throw RuntimeError.sys(error, "config.json: root.path") }
        var propagation = SL_MS_SLAVE | SL_MS_REC
        if let rp = linux.rootfsPropagation, !rp.isEmpty {
            guard let f = MountOptions.propagationFlag(rp) else {
                throw RuntimeError(.invalidArgument, "config.json: linux.rootfsPropagation: invalid value \"\(rp)\"")
            }
            propagation = f
        }
        return (rootfsReal, propagation)
    }

    /// The config's mounts, parsed and checked (no descriptors yet); whether /dev is a bind mount,
    /// and warnings for the log.
    static func planMounts(
        _ spec: Spec, _ linux: Linux, bundle: String, rootfsReal: String,
        joinedUserNS: String?
    ) throws(RuntimeError) -> ([PlannedMount], devIsBind: Bool, [String]) {
        var mounts: [PlannedMount] = []
        var devIsBind = false
        var warnings: [String] = []
        for (i, m) in (spec.mounts ?? []).enumerated() {
            let options = m.options ?? []
            if options.contains("noswap") && !Kernel.tmpfsNoswap() {
                throw RuntimeError(
                    .unsupported,
                    "config.json: mounts[\(i)].options: \"noswap\" needs Linux 6.4 or later (this kernel is "
                        + "\(Kernel.release))"
                )
            }
            var o = MountOptions.parse(options.filter { !MountOptions.idmapNames.contains($0) })
            let type = m.type ?? (o.isBind ? "bind" : "")
            if type == "bind" && !o.isBind { o.flags |= SL_MS_BIND }
            let source = o.isBind ? FS.absolute(m.source ?? "", base: bundle) : (m.source ?? type)
            var destination = m.destination
            if !destination.hasPrefix("/") {
                destination = "/" + destination
                warnings.append(
                    "mounts[\(i)].destination \"\(m.destination)\" is not absolute: taken as \"\(destination)\" "
                        + "(deprecated)"
                )
            }
            if destination == "/dev" && o.isBind { devIsBind = true }
            // A bind source in the rootfs is resolved when init mounts it, in config order (an earlier
            // mount may provide it); one outside cannot come from a mount: checked now.
            if o.isBind && FS.statOf(source) == nil {
                let e = errno
                if !isInside(source, rootfs: rootfsReal) {
                    throw RuntimeError(
                        .invalidArgument, "config.json: mounts[\(i)].source: \(source): \(errnoString(e))")
                }
            }
            if IDMapRequest(m) != nil {
                try ContainerPlan.checkIDMapped(m, o, linux, index: i, joinedUserNS: joinedUserNS)
            }
            let planned = PlannedMount(destination: destination, type: type, source: source, options: o)
            do { try Rootfs.checkProcDestination(FS.cleanPath(destination), planned) } catch {
                throw RuntimeError(.invalidArgument, "config.json: mounts[\(i)].destination: \(error.op)")
            }
            mounts.append(planned)
        }
        return (mounts, devIsBind, warnings)
    }

    /// An id-mapped mount needs mappings (its own, linux.*, or a joined user namespace's); one that is
    /// not a bind, a filesystem the runtime can create and map (checkIDMappedFilesystem).
    static func checkIDMapped(_ m: Mount, _ o: MountOptions, _ linux: Linux, index i: Int, joinedUserNS: String?)
        throws(RuntimeError)
    {
        let ownOrLinux =
            !(m.uidMappings ?? linux.uidMappings ?? []).isEmpty && !(m.gidMappings ?? linux.gidMappings ?? []).isEmpty
        if !ownOrLinux && (joinedUserNS == nil || m.uidMappings != nil || m.gidMappings != nil) {
            throw RuntimeError(
                .invalidArgument,
                "config.json: mounts[\(i)]: an id-mapped mount needs uidMappings and gidMappings (its own or linux.*)")
        }
        if !o.isBind { try checkIDMappedFilesystem(m.type ?? "", index: i) }
    }

    static func devices(_ linux: Linux) throws(RuntimeError) -> [DeviceNode] {
        var devices: [DeviceNode] = []
        for (i, d) in (linux.devices ?? []).enumerated() {
            if d.type != "p" && (d.major == nil || d.minor == nil) {
                throw RuntimeError(
                    .invalidArgument,
                    "config.json: linux.devices[\(i)]: major and minor are required for type \"\(d.type)\"")
            }
            devices.append(
                DeviceNode(
                    path: d.path, type: d.type, major: d.major ?? 0, minor: d.minor ?? 0,
                    fileMode: d.fileMode ?? 0o666, uid: d.uid ?? 0, gid: d.gid ?? 0))
        }
        return devices
    }

    /// Opens the namespaces joined by path (user namespace first); none left open on failure.
    static func openJoinedNamespaces(_ linux: Linux, _ ns: inout NamespacePlan) throws(RuntimeError) {
        for (i, n) in (linux.namespaces ?? []).enumerated() {
            guard let path = n.path, !path.isEmpty else { continue }
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                let e = errno
                ns.closeFds()
                throw RuntimeError(
                    .invalidArgument, "config.json: linux.namespaces[\(i)].path: open \(path): \(errnoString(e))")
            }
            ns.join.append((n.type, fd))
        }
        ns.join = ns.join.filter { $0.type == .user } + ns.join.filter { $0.type != .user }
    }

    /// Detached trees for id-mapped mounts (one user namespace per distinct mapping), and clones of
    /// bind sources only the host can reach for a container in a user namespace. The caller closes
    /// what was opened when this fails.
    static func openMountTrees(
        _ spec: Spec, _ linux: Linux, _ mounts: inout [PlannedMount], joined ns: NamespacePlan,
        inUserNS: Bool, rootfsReal: String
    ) throws(RuntimeError) {
        var usernsFds: [String: Int32] = [:]  // one user namespace per distinct mapping
        defer { for fd in usernsFds.values { close(fd) } }
        for (i, m) in (spec.mounts ?? []).enumerated() {
            let planned = mounts[i]
            let tree = planned.options.flags & SL_MS_REC != 0  // rbind: submounts come along
            do {
                guard let recursiveMap = IDMapRequest(m) else {
                    // In a user namespace init may not reach a source only the host can (in a 0700
                    // directory): clone it here, as runc has its host side open it. Sources in the
                    // rootfs stay with init (an earlier mount may provide them).
                    // Should the runtime be unable to clone (no CAP_SYS_ADMIN over its mount
                    // namespace), init mounts the source itself.
                    if inUserNS && planned.options.isBind && FS.statOf(planned.source) != nil
                        && !isInside(planned.source, rootfs: rootfsReal),
                        let clone = try? IDMappedMount.clone(source: planned.source, recursive: tree)
                    {
                        mounts[i].detachedTree = clone
                        mounts[i].hostClone = true
                        try mounts[i].checkHostCloneFlags()
                    }
                    continue
                }
                let uids = mapText(m.uidMappings ?? linux.uidMappings)
                let gids = mapText(m.gidMappings ?? linux.gidMappings)
                let userns: Int32
                if uids.isEmpty || gids.isEmpty, let j = ns.join.first(where: { $0.type == .user }) {
                    userns = j.fd  // the joined user namespace's own mappings, as runc does
                } else if let fd = usernsFds[uids + "|" + gids] {
                    userns = fd
                } else {
                    userns = try IDMappedMount.userNamespace(uidMap: uids, gidMap: gids)
                    usernsFds[uids + "|" + gids] = userns
                }
                // `ridmap` maps every mount of the tree, so it takes the submounts even with `bind`
                // (runc 1.3 fails there); `rbind` with `idmap` keeps them, unmapped.
                mounts[i].detachedTree =
                    planned.options.isBind
                    ? try IDMappedMount.clone(
                        source: planned.source, recursive: tree || recursiveMap,
                        usernsFd: userns, recursiveMap: recursiveMap)
                    : try IDMappedMount.newFilesystem(planned, usernsFd: userns)
            } catch {
                throw RuntimeError(.internal, "config.json: mounts[\(i)]", cause: error)
            }
        }
    }

    /// tmpfs mounts with noswap, made by the host for a new user namespace (read-only comes after
    /// /dev is populated: Rootfs.remountReadonlyTmpfs).
    static func makeHostTmpfs(_ linux: Linux, _ mounts: inout [PlannedMount]) throws(RuntimeError) {
        let rootUid = hostID(of: 0, in: linux.uidMappings)
        let rootGid = hostID(of: 0, in: linux.gidMappings)
        for (i, m) in mounts.enumerated()
        where m.type == "tmpfs" && m.options.data.contains("noswap") && m.detachedTree == nil {
            do {
                mounts[i].detachedTree = try HostFilesystem.create(
                    type: "tmpfs", data: m.options.data,
                    flags: m.options.flags & ~SL_MS_RDONLY, uid: rootUid, gid: rootGid)
            } catch {
                throw RuntimeError(.internal, "config.json: mounts[\(i)]", cause: error)
            }
        }
    }

    /// Closes the descriptors the plan holds (after fork, or when create fails).
    func closeFds() {
        namespaces.closeFds()
        closeDetachedTrees(rootfs.mounts)
    }
}

/// Whether the namespace file at `path` is the runtime's own network namespace.
func isOwnNetworkNamespace(_ path: String) -> Bool {
    guard let a = FS.statOf(path), let b = FS.statOf("/proc/self/ns/net") else { return false }
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// The host id that container id `id` maps to (the id itself when unmapped).
func hostID(of id: UInt32, in mappings: [IDMapping]?) -> UInt32 {
    for m in mappings ?? [] where id >= m.containerID && id - m.containerID < m.size {
        return m.hostID + (id - m.containerID)
    }
    return id
}

/// An id-mapped mount that is not a bind is a new filesystem the runtime creates and maps: never one
/// bound to the runtime's namespaces, and tmpfs only where the kernel maps it (Linux 6.3).
func checkIDMappedFilesystem(_ type: String, index i: Int) throws(RuntimeError) {
    if HostFilesystem.namespaceBound.contains(type) {
        throw RuntimeError(
            .unsupported,
            "config.json: mounts[\(i)].options: id-mapped \(type) mounts are not supported (only bind mounts and "
                + "filesystems the runtime can create, such as tmpfs)"
        )
    }
    if type == "tmpfs" && !Kernel.atLeast(6, 3) {
        throw RuntimeError(
            .unsupported,
            "config.json: mounts[\(i)].options: id-mapped tmpfs needs Linux 6.3 or later (this kernel is "
                + "\(Kernel.release))"
        )
    }
}

/// nil when the mount is not id-mapped; else whether the mapping is recursive (`ridmap`).
func IDMapRequest(_ m: Mount) -> Bool? {
    let opts = m.options ?? []
    if opts.contains("ridmap") { return true }
    if opts.contains("idmap") || m.uidMappings != nil || m.gidMappings != nil { return false }
    return nil
}

/// True when `path` is the rootfs (a real path) or below it; a missing path is judged by its
/// deepest existing ancestor, made real.
func isInside(_ path: String, rootfs: String) -> Bool {
    var head = FS.cleanPath(path)
    var tail = ""
    while true {
        if let real = try? FS.realpath(head) {
            let full = tail.isEmpty ? real : (real == "/" ? "" : real) + tail
            return full == rootfs || full.hasPrefix(rootfs + "/")
        }
        if head == "/" || head.isEmpty { return false }
        tail = "/" + (head.split(separator: "/").last.map(String.init) ?? "") + tail
        head = FS.dirname(head)
    }
}

func closeDetachedTrees(_ mounts: [PlannedMount]) {
    for m in mounts { if let fd = m.detachedTree { close(fd) } }
}
