import CLinux
import Cgroups
import Glibc
import LinuxSystem
import Mounts
import OCI
import Seccomp

/// Code that runs in forked children. It never prints: errors go to the parent as (errno, message)
/// and the child exits. It never re-executes the runtime binary (CVE-2019-5736).
enum Child {
    /// Reports `error` to the parent and exits.
    static func fail(_ sock: SeqPacket, _ error: Error) -> Never {
        try? sock.send(.error, SyncMessage.errorPayload(error))
        _exit(1)
    }

    /// The runtime's first child, made as `placement` says (Spec/sync-protocol.md, cgroup placement).
    /// `.initByClone`: the clone made its new namespaces, so it has its ids mapped, joins the
    /// namespaces given by path, reports `I` and becomes init. `.middleProcess`: it joins and creates
    /// the namespaces, forks the process that will live in them (a new PID namespace only applies to
    /// children), reports its pid (`P`) and exits. `selfJoinV1`: first move into `cgroup`'s v1
    /// hierarchies (CgroupManager.addSelfToV1), before any namespace is entered (in a user namespace
    /// the host's cgroup files cannot be written); a process forked later inherits them.
    static func enterNamespaces(
        _ ns: NamespacePlan, _ placement: CgroupPlacement, cgroup: CgroupManager?,
        _ sock: SeqPacket, then body: () -> Never
    ) -> Never {
        let cloned = placement.initByClone
        do {
            if placement.selfJoinV1, let cgroup {
                do { try cgroup.addSelfToV1() } catch { throw RuntimeError(.internal, "join cgroup", cause: error) }
            }
            // Until execve these processes are the host's swiftlet binary: non-dumpable, so nothing in
            // the container can reach it through /proc/<pid>/exe or /proc/<pid>/fd (CVE-2019-5736).
            // execve restores dumpability for the user process.
            try sys("prctl(PR_SET_DUMPABLE)") { sl_prctl(SL_PR_SET_DUMPABLE, 0, 0, 0, 0) }
            // Time offsets are written by a process capable in the user namespace that owns the new
            // time namespace: the host root we still are. Opened now (later, in a new user
            // namespace, the non-dumpable process's /proc files belong to an unmapped root).
            let offsets =
                ns.timeOffsets.isEmpty
                ? -1
                : try Procfs.open("self/timens_offsets", O_WRONLY)
            // With a user namespace joined by path, the namespaces it does not own (e.g. the host's
            // network namespace) can only be joined before it: try each first, the rest after (runc).
            var joinedEarly = Set<Int32>()
            if ns.join.contains(where: { $0.type == .user }) {
                for j in ns.join where j.type != .user && sl_setns(j.fd, NamespacePlan.flag(j.type)) == 0 {
                    joinedEarly.insert(j.fd)
                }
            }
            for j in ns.join where j.type == .user {
                try sys("setns", "user namespace") { sl_setns(j.fd, SL_CLONE_NEWUSER) }
            }
            if ns.newUser {
                if !cloned { try sys("unshare", "user namespace") { sl_unshare(SL_CLONE_NEWUSER) } }
                // Unprivileged, the runtime may write our id maps only while we are dumpable (runc).
                let unprivileged = geteuid() != 0
                if unprivileged { try sys("prctl(PR_SET_DUMPABLE)") { sl_prctl(SL_PR_SET_DUMPABLE, 1, 0, 0, 0) } }
                try sock.send(.mapIDs)
                _ = try sock.expect(.ack)
                if unprivileged { try sys("prctl(PR_SET_DUMPABLE)") { sl_prctl(SL_PR_SET_DUMPABLE, 0, 0, 0, 0) } }
            }
            if ns.newUser || ns.join.contains(where: { $0.type == .user }) {
                // Become root of the user namespace (needs 0 mapped; otherwise keep the mapped ids).
                _ = sl_setresgid(0, 0, 0)
                _ = sl_setresuid(0, 0, 0)
            }
            for j in ns.join where j.type != .user && !joinedEarly.contains(j.fd) {
                try sys("setns", "\(j.type.rawValue) namespace") { sl_setns(j.fd, NamespacePlan.flag(j.type)) }
            }
            ns.closeFds()
            if cloned {
                try sock.send(.cloned)
                body()
            }
            if ns.newFlags != 0 {
                try sys("unshare", "namespaces") { sl_unshare(ns.newFlags) }
            }
            if offsets >= 0 {
                try FS.writeAll(fd: offsets, Array(ns.timeOffsets.utf8), path: "/proc/self/timens_offsets")
                close(offsets)
            }
            let pid = try Proc.fork()
            if pid == 0 { body() }
            try sock.send(.initPid, String(pid))
            _exit(0)
        } catch {
            fail(sock, error)
        }
    }

    /// Container init: build the rootfs, apply the process settings, wait for `start`, exec.
    static func initProcess(_ plan: ContainerPlan, sock: SeqPacket, fifoFd: Int32, hasRuntimeHooks: Bool) -> Never {
        do {
            _ = setsid()
            // As runc and crun: a new network namespace gets its loopback device up (always index 1).
            if plan.namespaces.newFlags & SL_CLONE_NEWNET != 0 {
                var netlink = try RouteNetlink()
                try netlink.setUp(index: 1)
            }
            // Before `go` (the runtime has finished putting us in our cgroup) init generates the
            // seccomp program and builds and enters the rootfs as far as RootfsOrder says.
            let createHooks = plan.spec.hooks?.createContainer ?? []
            let order = RootfsOrder(
                newCgroupNamespace: plan.namespaces.newCgroup, runtimeHooks: hasRuntimeHooks,
                createContainerHooks: !createHooks.isEmpty)
            let early = order.mountsBeforeGo
            let enterEarly = order.entersBeforeGo
            if early { try Rootfs.prepare(plan.rootfs) }
            if enterEarly { try enterRootfs(plan) }
            try plan.process?.seccomp?.precompile()
            let go = try sock.expect(.go)
            let stateJSON = go.text
            if !early {
                try sys("unshare", "cgroup namespace") { sl_unshare(SL_CLONE_NEWCGROUP) }
                try Rootfs.prepare(plan.rootfs)
            }
            if !enterEarly {
                if hasRuntimeHooks {
                    try sock.send(.runHooks)
                    let hooks = plan.spec.hooks
                    _ = try sock.expect(
                        .ack,
                        timeoutMs: syncStepTimeoutMs + hookAllowanceMs(hooks?.prestart)
                            + hookAllowanceMs(hooks?.createRuntime))
                }
                // As runc: in the container's root (not yet pivoted into), with an empty environment
                // unless the hook has its own.
                if !createHooks.isEmpty { try sys("chdir", plan.rootfs.rootfs) { chdir(plan.rootfs.rootfs) } }
                for (i, h) in createHooks.enumerated() {
                    try Hooks.runOne(h, kind: "createContainer", index: i, state: stateJSON, inheritedEnv: [])
                }
                try enterRootfs(plan)
            }
            if let process = plan.process, process.terminal { try setupTerminal(process, sock, console: true) }
            try Rootfs.remountReadonlyTmpfs(plan.rootfs)
            // Without a process (allowed by the spec) init only holds the namespaces; `start` refuses.
            guard let process = plan.process else {
                try sock.send(.ready)
                while true { pause() }
            }
            try closeExtraFds(preserveFds: plan.preserveFds)
            let path = try applyProcess(process, sock)
            try sock.send(.ready)
            if fifoFd >= 0 {
                // Block until `start` opens the fifo for reading, then tell it we are going.
                // The write end stays open (close-on-exec): `start` sees EOF exactly when execve happened.
                let w = try Procfs.reopen(fifoFd, O_WRONLY)
                try FS.writeAll(fd: w, [0x30], path: "exec fifo")
            } else {
                // `run` (no fifo): the runtime says start on the sync socket, and sees EOF on it when
                // execve happened (close-on-exec), or an error message.
                _ = try sock.expect(.start)
            }
            for (i, h) in (plan.spec.hooks?.startContainer ?? []).enumerated() {
                try Hooks.runOne(
                    h, kind: "startContainer", index: i, state: stateJSON, inheritedEnv: environment(process))
            }
            execProcess(path, process)
        } catch {
            fail(sock, error)
        }
    }

    /// pivot_root into the prepared rootfs and the settings that go with it (cwd made as runc does,
    /// readonly and masked paths, stdio on /dev/null, hostname, sysctls, personality, keyring).
    static func enterRootfs(_ plan: ContainerPlan) throws(SysError) {
        // As runc does, a missing cwd is created (inside the rootfs, symlinks resolved safely).
        if let p = plan.process {
            let cwd = try secureJoin(root: plan.rootfs.rootfs, p.cwd)
            if FS.lstatOf(cwd) == nil { try FS.mkdirAll(cwd) }
        }
        try Rootfs.enter(plan.rootfs)
        // Sysctls before the masked and read-only paths (as runc): /proc/sys is read-only after them
        // (containerd's CRI default). Written through a handle verified to be the container's procfs.
        for (k, v) in plan.sysctl {
            let path = "sys/" + sysctlFilePath(k)
            do { try Procfs.write(path, v) } catch {
                throw SysError(
                    "linux.sysctl \"\(k)\": \(error.op) \(error.path ?? "/proc/" + path)", errno: error.errno)
            }
        }
        try Rootfs.finish(plan.rootfs)
        Rootfs.reopenNullStdio()
        if let h = plan.hostname { try sys("sethostname", h) { sl_sethostname(h, h.utf8.count) } }
        if let d = plan.domainname { try sys("setdomainname", d) { sl_setdomainname(d, d.utf8.count) } }
        if let persona = plan.personality { try sys("personality", String(persona)) { sl_personality(persona) } }
        if let name = plan.sessionKeyring, sl_join_session_keyring(name) < 0, errno != ENOSYS {
            throw SysError("join session keyring", name, errno: errno)
        }
    }

    /// Allocates a pty in the container, sends the master to the parent, makes the slave our stdio.
    /// For init (`console`), the slave is also bind-mounted on /dev/console, as runc does.
    static func setupTerminal(_ p: ProcessPlan, _ sock: SeqPacket, console: Bool = false) throws(SysError) {
        let master = try sys("open", "/dev/ptmx") { sl_openpt() }
        try sys("unlockpt", "/dev/ptmx") { sl_unlockpt(master) }
        var name = [CChar](repeating: 0, count: 128)
        try sys("ptsname", "/dev/ptmx") { sl_ptsname(master, &name, 128) }
        let slavePath = cString(name)
        let slave = try FS.open(slavePath, O_RDWR | O_NOCTTY)
        // The terminal belongs to the process's user (its group stays devpts' gid=, e.g. tty), as in
        // runc; EINVAL/EPERM (uid not mapped, or a pty inode we may not chown in a user namespace)
        // leave it as it is, as runc does.
        if fchown(slave, p.uid, gid_t.max) != 0 && errno != EINVAL && errno != EPERM {
            throw SysError("fchown", slavePath, errno: errno)
        }
        if console {
            // CVE-2025-52565 class: never mount the console over whatever a planted symlink points at.
            if let st = FS.lstatOf("/dev/console"), FS.isSymlink(st) {
                throw SysError(
                    "/dev/console in the container is a symlink; refusing to mount the console through it", errno: EPERM
                )
            }
            try FS.touch("/dev/console", 0o600)
            let target = try FS.open("/dev/console", SL_O_PATH | O_NOFOLLOW)
            defer { close(target) }
            try sys("mount \(slavePath) to", "/dev/console") {
                sl_mount(slavePath, "/proc/self/fd/\(target)", nil, SL_MS_BIND, nil)
            }
        }
        if let size = p.consoleSize {
            _ = sl_set_winsize(master, UInt16(clamping: size.height), UInt16(clamping: size.width))
        }
        try sock.send(.pty, "/dev/ptmx", fd: master)
        _ = try sock.expect(.ack)
        close(master)
        for target in Int32(0)...2 { try sys("dup2", slavePath) { dup2(slave, target) } }
        if slave > 2 { close(slave) }
        try sys("ioctl(TIOCSCTTY)", slavePath) { sl_set_ctty(0) }
    }

    /// Applies the process settings (shared by init and exec); returns the resolved executable path.
    static func applyProcess(_ p: ProcessPlan, _ sock: SeqPacket) throws(SysError) -> String {
        // execCPUAffinity (exec): `final` once in the container's cgroup; with only `initial`, the
        // process keeps what the runtime set before the move (as runc and crun).
        if let final = p.finalAffinity {
            try setCPUAffinity(final, field: "execCPUAffinity.final")
        } else if p.initialAffinity == nil {
            try setCPUAffinity(allCPUs, field: "process (every CPU)")
        }
        if let io = p.ioPriority { try sys("ioprio_set", "ioPriority") { sl_ioprio_set_self(io) } }
        // While the process still has CAP_SYS_NICE (a negative nice, real-time policies).
        try p.scheduler?.apply()
        try p.memoryPolicy?.apply()
        if let adj = p.oomScoreAdj { try Procfs.write("self/oom_score_adj", String(adj)) }
        for r in p.rlimits {
            try sys("setrlimit", ProcessPlan.rlimitTable.first { $0.value == r.resource }?.key) {
                sl_setrlimit(r.resource, r.soft, r.hard)
            }
        }
        try sys("chdir to cwd set in config.json", p.cwd) { chdir(p.cwd) }
        // CVE-2024-21626: a cwd through /proc/self/fd/N could land outside the container root;
        // getcwd fails (ENOENT) when the directory is not reachable from our root.
        var buf = [CChar](repeating: 0, count: 4097)
        if getcwd(&buf, 4096) == nil {
            throw SysError("cwd \"\(p.cwd)\" is outside the container root", errno: errno)
        }
        // Identity and capabilities, in the order CredentialSwitch documents.
        let calls = LinuxCredentials()
        let load: CredentialSwitch.LoadSeccomp = { (f) throws(SysError) in try loadSeccomp(f, sock) }
        try CredentialSwitch.become(p, calls, loadSeccomp: load)
        if let u = p.umask { umask(mode_t(u)) }
        let path = try lookPath(p.args[0], env: p.env)
        try LSM.setExecLabel(appArmorProfile: p.appArmorProfile, seLinuxLabel: p.seLinuxLabel)
        try CredentialSwitch.restrict(p, calls, loadSeccomp: load)
        return path
    }

    /// Every CPU (the kernel keeps the mask within the cgroup's cpuset): a runtime started from a
    /// pinned shim must not pin the container (runc does the same).
    /// Every CPU (CPU_SETSIZE bits).
    static let allCPUs = [UInt64](repeating: ~0, count: 1024 / 64)

    static func setCPUAffinity(_ mask: [UInt64], field: String) throws(SysError) {
        try sys("sched_setaffinity", field) {
            mask.withUnsafeBytes { sl_sched_setaffinity(0, UInt($0.count), $0.baseAddress) }
        }
    }

    /// Marks every descriptor above stdio and the preserved ones (--preserve-fds, LISTEN_FDS)
    /// close-on-exec, before the seccomp filter is loaded (it may deny close_range) and before
    /// anything is exec'd. The runtime has already closed what it inherited (closeInheritedFds);
    /// this catches a descriptor of the runtime's own that lacks O_CLOEXEC.
    static func closeExtraFds(preserveFds: Int) throws(SysError) {
        try FS.closeFrom(Int32(3 + preserveFds), cloexec: true)
    }

    /// Loads the filter; with SCMP_ACT_NOTIFY, hands the notify fd to the runtime for the listener.
    static func loadSeccomp(_ filter: SeccompFilter, _ sock: SeqPacket) throws(SysError) {
        try filter.load()
        guard filter.notifies else { return }
        let fd = try filter.notifyFd()
        try sock.send(.seccompFd, fd: fd)
        _ = try sock.expect(.ack)
        close(fd)
    }

    /// Finds the executable like exec.LookPath in the container: a name with "/" is used as is.
    static func lookPath(_ name: String, env: [String]) throws(SysError) -> String {
        // With the process's effective ids and capabilities (AT_EACCESS), as execve judges: access()
        // would ignore CAP_DAC_OVERRIDE of a non-root user.
        func executable(_ path: String) -> Bool {
            if faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0 { return true }
            // glibc answers AT_EACCESS with faccessat2, which a seccomp profile loaded before this
            // (noNewPrivileges false) may deny (EPERM) or not know (ENOSYS): then access() decides,
            // through faccessat, as before runc 1.3.
            let e = errno
            if e == EPERM || e == ENOSYS { return access(path, X_OK) == 0 }
            errno = e
            return false
        }
        if name.contains("/") {
            if executable(name) { return name }
            throw SysError("exec: \"\(name)\"", errno: errno)
        }
        let path =
            env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            if let st = FS.statOf(candidate), !FS.isDirectory(st), executable(candidate) { return candidate }
        }
        throw SysError("exec: \"\(name)\": executable file not found in $PATH", errno: ENOENT)
    }

    /// Resets signals and execs (descriptors: closeExtraFds ran before). Never returns.
    static func execProcess(_ path: String, _ p: ProcessPlan) -> Never {
        _ = sl_signal_default_all()
        _ = sl_sigmask_unblock_all()
        let argv = p.args.map { strdup($0) } + [nil]
        let envp = environment(p).map { strdup($0) } + [nil]
        execve(path, argv, envp)
        let e = errno
        let msg = "exec \(path): \(errnoString(e))\n"
        _ = msg.withCString { write(2, $0, strlen($0)) }
        _exit(127)
    }

    /// The process's environment as it is exec'd: HOME unset or empty is the user's home from the
    /// container's /etc/passwd (runc 1.3).
    static func environment(_ p: ProcessPlan) -> [String] {
        var env = p.env
        if let i = env.firstIndex(of: "HOME=") {
            env[i] = "HOME=" + homeDirectory(uid: p.uid)
        } else if !env.contains(where: { $0.hasPrefix("HOME=") }) {
            env.append("HOME=" + homeDirectory(uid: p.uid))
        }
        return env
    }

    /// HOME from the container's /etc/passwd, "/" when the user has no entry (as runc does).
    static func homeDirectory(uid: UInt32) -> String { PasswdEntry.lookup(uid: uid)?.home ?? "/" }
}

/// The file under /proc/sys of a sysctl key: "net.ipv4.conf.eth0/100.rp_filter" (or its slash form
/// "net/ipv4/conf/eth0.100/rp_filter") -> "net/ipv4/conf/eth0.100/rp_filter".
func sysctlFilePath(_ key: String) -> String {
    String(sysctlDotted(key).map { $0 == "." ? "/" : $0 == "/" ? "." : $0 })
}
