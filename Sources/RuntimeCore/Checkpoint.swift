import CLinux
import Cgroups
import Checkpoint
import Glibc
import LinuxSystem
import Mounts
import OCI

/// What `checkpoint` was asked to do (runc's flags; see Spec/checkpoint.md).
public struct CheckpointOptions: Sendable {
    public var root: String
    public var id: String
    public var criu: String
    public var imagePath: String
    public var workPath: String?
    public var parentPath: String?
    public var leaveRunning = false
    public var preDump = false
    public var pageServer: String?
    public var flags = CriuFlags()
    public init(root: String, id: String, criu: String, imagePath: String) {
        self.root = root
        self.id = id
        self.criu = criu
        self.imagePath = imagePath
    }
}

/// The flags checkpoint and restore share (runc's flags of the same names).
public struct CriuFlags: Sendable {
    public var tcpEstablished = false
    public var extUnixSk = false
    public var shellJob = false
    public var fileLocks = false
    public var autoDedup = false
    public var lazyPages = false
    public var manageCgroupsMode = ""
    public var emptyNamespaces: [String] = []
    public init() {}
}

/// The shared flags, checked before anything is touched, and set on CRIU's options.
struct CriuCommonChecks {
    var flags: CriuFlags
    var mode: CriuCgroupMode
    var emptyNs: UInt32

    init(_ flags: CriuFlags) throws(RuntimeError) {
        self.flags = flags
        guard let m = CriuCgroupMode.parse(flags.manageCgroupsMode) else {
            throw RuntimeError(
                .invalidArgument,
                "--manage-cgroups-mode: invalid value \"\(flags.manageCgroupsMode)\" (soft, full, strict or ignore)")
        }
        self.mode = m
        var bits: UInt32 = 0
        for name in flags.emptyNamespaces {
            guard let t = NamespaceType(rawValue: name) else {
                throw RuntimeError(.invalidArgument, "--empty-ns: namespace \"\(name)\" is not supported")
            }
            bits |= UInt32(bitPattern: NamespacePlan.flag(t))
        }
        emptyNs = bits
        if flags.lazyPages {
            throw RuntimeError(
                .unsupported,
                "--lazy-pages: lazy migration is not supported by swiftlet (no page server or lazy-pages daemon "
                    + "handling)"
            )
        }
    }

    /// What dump and restore set alike: cgroups managed in the checked mode, notify callbacks, the
    /// shared flags, empty namespaces, and orphan pts masters sent back to us.
    func apply(to opts: inout CriuOptions) {
        opts.manageCgroups = true
        opts.manageCgroupsMode = mode
        opts.notifyScripts = true
        opts.shellJob = flags.shellJob
        opts.tcpEstablished = flags.tcpEstablished
        opts.extUnixSk = flags.extUnixSk
        opts.fileLocks = flags.fileLocks
        opts.emptyNamespaces = emptyNs
        opts.orphanPtsMaster = true
        opts.autoDedup = flags.autoDedup
    }
}

/// `checkpoint`: dumps the running container with CRIU into `imagePath`. Without --leave-running
/// (and without --pre-dump) CRIU kills the processes and the container is then removed, as runc
/// does; restore recreates it. On failure the container is left as it was (CRIU thaws it).
/// Returns warnings (from poststop hooks of the removed container) for the caller to log.
@discardableResult
public func checkpointContainer(_ o: CheckpointOptions) throws(RuntimeError) -> [String] {
    let checks = try CriuCommonChecks(o.flags)
    if let ps = o.pageServer, !ps.isEmpty {
        throw RuntimeError(.unsupported, "--page-server: dumping to a CRIU page server is not supported by swiftlet")
    }
    let store = ContainerStore(root: o.root)
    let (lock, state) = try store.lockAndLoad(o.id)
    var locked = true
    defer { if locked { lock.release() } }
    let iterative = try checkCheckpointable(o, store.status(state))

    // A user-namespaced container is restored by criu as the container's root (an unprivileged host
    // uid), which must be able to reach the image files (0644): a new image directory gets 0711.
    let spec = try state.spec()
    let inUserNS = (spec.linux?.namespaces ?? []).contains { $0.type == .user }
    let images = try openCriuDir(o.imagePath, what: "--image-path", mode: inUserNS ? 0o711 : 0o700)
    defer { close(images.fd) }
    var work: (path: String, fd: Int32)?
    if let w = o.workPath, !w.isEmpty { work = try openCriuDir(w, what: "--work-path") }
    defer { if let work { close(work.fd) } }
    let logPath = (work?.path ?? images.path) + "/dump.log"
    let opts = try dumpOptions(o, state, spec, checks, images: images, workFd: work?.fd, iterative: iterative)
    let what = o.preDump ? "pre-dump" : "checkpoint"
    let dumper = try criu { () throws(CriuError) in try CriuService.start(binary: o.criu) }
    let resp: CriuResponse
    do { resp = try dumper.call(CriuRequest(type: o.preDump ? .preDump : .dump, options: opts)) } catch {
        dumper.finish()
        throw criuFailure(what, error.message, logPath: logPath)
    }
    // After a pre-dump criu waits for the next request of an iterative series (another PRE_DUMP or
    // the final DUMP; the pre-dump itself ran in a child of it that has exited) and takes a hang-up
    // as an error ("Can't recv request" on our stderr, exit status 255). Each of our pre-dumps is a
    // request of its own, so the service is killed instead and its status means nothing (runc
    // ignores it too).
    let status = dumper.finish(kill: o.preDump && resp.success)
    guard resp.success else { throw criuFailure(what, resp, logPath: logPath) }
    if status != 0 && !o.preDump {
        throw criuFailure("checkpoint", "criu exited with status \(status)", logPath: logPath)
    }
    if o.preDump || o.leaveRunning { return [] }
    // The processes are gone: remove the container like `delete` (cgroup, state, poststop hooks).
    lock.release()
    locked = false
    return try deleteContainer(root: o.root, id: o.id, force: true)
}

/// Refuses a container that is not running or paused, and an iterative checkpoint (--pre-dump,
/// --parent-path) where criu cannot track memory; returns whether it is iterative.
private func checkCheckpointable(_ o: CheckpointOptions, _ status: Status) throws(RuntimeError) -> Bool {
    switch status {
    case .running, .paused: break
    case .created: throw RuntimeError(.invalidState, "cannot checkpoint container \(o.id): it has not been started")
    case .creating: throw RuntimeError(.invalidState, "cannot checkpoint container \(o.id): it is still being created")
    case .stopped: throw RuntimeError(.invalidState, "cannot checkpoint container \(o.id): container not running")
    }
    // Pre-dumps and dumps on top of them (--parent-path) rely on memory tracking (soft-dirty
    // bits): CRIU hits an internal BUG pre-dumping without it, and a parent can only be a
    // pre-dump. Without it both are refused before anything is touched (runc: feature check).
    let iterative = o.preDump || !(o.parentPath ?? "").isEmpty
    if iterative, try !criuSupportsMemoryTracking(o.criu) {
        throw RuntimeError(
            .unsupported,
            "\(o.preDump ? "--pre-dump" : "--parent-path"): criu cannot track memory changes on this kernel (no "
                + "soft-dirty page bits: `criu check --feature mem_dirty_track` fails), so iterative checkpoints are "
                + "not possible here"
        )
    }
    return iterative
}

/// CRIU's dump options; a full dump also records init's stdio in descriptors.json for restore.
private func dumpOptions(
    _ o: CheckpointOptions, _ state: StoredState, _ spec: Spec, _ checks: CriuCommonChecks,
    images: (path: String, fd: Int32), workFd: Int32?, iterative: Bool
) throws(RuntimeError) -> CriuOptions {
    var opts = CriuOptions()
    opts.imagesDirFd = images.fd
    opts.workDirFd = workFd
    opts.logFile = "dump.log"
    opts.root = state.rootfs
    opts.pid = state.pid
    checks.apply(to: &opts)
    opts.leaveRunning = o.leaveRunning
    opts.configFile = criuConfigFile(spec)
    // CRIU freezes with the cgroup freezer when given one (else it stops each task with ptrace).
    opts.freezeCgroup = state.cgroupPaths?["freezer"] ?? state.cgroupPaths?[""]
    opts.external = try externalNamespaces(spec)
    if let parent = o.parentPath, !parent.isEmpty { opts.parentImage = parent }
    opts.trackMem = iterative
    if !o.preDump {
        opts.externalMounts = dumpExternalMounts(state, spec)
        // The init's stdio as the kernel names them; restore maps pipes among them to its own stdio.
        let fds = (0...2).map { (try? FS.readlink("/proc/\(state.pid)/fd/\($0)")) ?? "" }
        try step("write \(images.path)/descriptors.json") {
            try FS.writeFileAtomic(images.path + "/descriptors.json", Array(encodeJSON(fds).utf8), mode: 0o600)
        }
    }
    return opts
}

/// Creates (with `mode`, if missing) and opens a directory CRIU reads or writes.
func openCriuDir(_ path: String, what: String, mode: mode_t = 0o700) throws(RuntimeError) -> (path: String, fd: Int32) {
    let abs = FS.cleanPath(FS.absolute(path, base: FS.cwd()))
    if Glibc.mkdir(abs, mode) == 0 {
        _ = chmod(abs, mode)  // whatever the umask
    } else if errno != EEXIST {
        throw RuntimeError(.invalidArgument, "\(what): mkdir \(abs): \(errnoString(errno))")
    }
    let fd = Glibc.open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0 { throw RuntimeError(.invalidArgument, "\(what): open \(abs): \(errnoString(errno))") }
    return (abs, fd)
}

/// Runs a CRIU step, turning a CriuError into a RuntimeError.
func criu<T>(_ body: () throws(CriuError) -> T) throws(RuntimeError) -> T {
    do { return try body() } catch { throw RuntimeError(.internal, "", cause: error) }
}

/// Asks CRIU (FEATURE_CHECK) whether it can track memory changes here (soft-dirty bits).
func criuSupportsMemoryTracking(_ binary: String) throws(RuntimeError) -> Bool {
    let service = try criu { () throws(CriuError) in try CriuService.start(binary: binary) }
    defer { service.finish() }
    let resp = try criu { () throws(CriuError) in
        try service.call(CriuRequest(type: .featureCheck, features: CriuFeatures(memTrack: true)))
    }
    return resp.success && resp.features?.memTrack == true
}

/// What a failed response says; CRIU's own message (its first error) only when `withMessage`.
func criuResponseError(_ r: CriuResponse, withMessage: Bool = true) -> String {
    var s = "criu failed"
    if withMessage, let m = r.errorMessage?.split(separator: "\n").last, !m.isEmpty { s += ": \(m)" }
    if let e = r.errno, e != 0 { s += " (errno \(e): \(errnoString(e)))" }
    return s
}

/// CRIU's configuration file for a container, as runc chooses it: the `org.criu.config`
/// annotation when set (an empty value: none), else /etc/criu/runc.conf. Settings in the file
/// override the RPC options; criu ignores a file that does not exist.
func criuConfigFile(_ spec: Spec) -> String? {
    guard let value = spec.annotations?["org.criu.config"] else { return "/etc/criu/runc.conf" }
    return value.isEmpty ? nil : value
}

/// "checkpoint: criu failed ...; LOG says:\n  <the last error lines>". CRIU's first error is often
/// harmless noise (e.g. a failed rlimit raise), so the log's last errors are what is quoted.
func criuFailure(_ what: String, _ response: CriuResponse, logPath: String) -> RuntimeError {
    let quoted = !criuLogErrors(logPath).isEmpty
    return criuFailure(what, criuResponseError(response, withMessage: !quoted), logPath: logPath)
}

func criuFailure(_ what: String, _ reason: String, logPath: String) -> RuntimeError {
    let lines = criuLogErrors(logPath)
    var msg = "\(what): \(reason)"
    if lines.isEmpty {
        msg += " (no log at \(logPath))"
    } else {
        msg += "; \(logPath) says:\n" + lines.map { "  " + $0 }.joined(separator: "\n")
    }
    return RuntimeError(.internal, msg)
}

/// CRIU's key for a namespace joined by path: the namespace is external, CRIU neither dumps nor
/// recreates it ("extRootNetNS", "extRootPidNS", as runc names them).
func externalNamespaceKey(_ t: NamespaceType) -> String? {
    switch t {
    case .network: "extRootNetNS"
    case .pid: "extRootPidNS"
    default: nil
    }
}

/// `--external net[INODE]:extRootNetNS` entries for network/pid namespaces joined by path.
func externalNamespaces(_ spec: Spec) throws(RuntimeError) -> [String] {
    var out: [String] = []
    for (i, n) in (spec.linux?.namespaces ?? []).enumerated() {
        guard let path = n.path, !path.isEmpty, let key = externalNamespaceKey(n.type) else { continue }
        guard let st = FS.statOf(path) else {
            throw RuntimeError(
                .invalidArgument, "config.json: linux.namespaces[\(i)].path: stat \(path): \(errnoString(errno))")
        }
        out.append("\(n.type == .network ? "net" : "pid")[\(st.st_ino)]:\(key)")
    }
    return out
}

/// A bind mount from outside the container, as CRIU needs it named: the destination in the
/// container (dump key and restore key) and the host source (restore value).
struct ExternalMount {
    var destination: String
    var source: String
}

/// Every mount of the container whose source lives outside it: config bind mounts, the cgroup
/// hierarchies bound under a `cgroup` mount, and devices bound from the host (user namespaces).
/// Masked paths are binds of the container's own /dev/null (inside its /dev tmpfs), so CRIU
/// dumps them as internal mounts.
func externalMounts(spec: Spec, bundle: String, cgroupPaths: [String: String]) -> [ExternalMount] {
    var out: [ExternalMount] = []
    let manager = CgroupManager(layout: hostCgroupLayout, paths: cgroupPaths)
    for m in spec.mounts ?? [] {
        let dest = FS.cleanPath(m.destination)
        let opts = MountOptions.parse(m.options ?? [])
        if m.type == "bind" || opts.isBind {
            out.append(ExternalMount(destination: dest, source: FS.absolute(m.source ?? "", base: bundle)))
        } else if m.type == "cgroup" {
            for b in cgroupBinds(manager) {
                out.append(ExternalMount(destination: b.name.isEmpty ? dest : dest + "/" + b.name, source: b.hostPath))
            }
        }
    }
    let inUserNS = (spec.linux?.namespaces ?? []).contains { $0.type == .user }
    let devBound = (spec.mounts ?? []).contains {
        $0.destination == "/dev" && ($0.type == "bind" || MountOptions.parse($0.options ?? []).isBind)
    }
    if inUserNS && !devBound {
        for d in DeviceNode.defaults.map(\.path) + (spec.linux?.devices ?? []).map(\.path) {
            out.append(ExternalMount(destination: FS.cleanPath(d), source: d))
        }
    }
    return out
}

func dumpExternalMounts(_ state: StoredState, _ spec: Spec) -> [(key: String, value: String)] {
    externalMounts(spec: spec, bundle: state.bundle, cgroupPaths: state.cgroupPaths ?? [:])
        .map { ($0.destination, $0.destination) }
}
