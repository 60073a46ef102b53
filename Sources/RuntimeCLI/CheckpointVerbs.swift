import Argv
import Glibc
import LinuxSystem
import RuntimeCore

/// runc's default image directory: ./checkpoint.
func defaultImagePath() -> String { FS.cwd() + "/checkpoint" }

func nonEmpty(_ s: String?) -> String? { s.flatMap { $0.isEmpty ? nil : $0 } }

/// The flags both verbs take.
func criuFlags(_ o: ParsedOptions) -> CriuFlags {
    var f = CriuFlags()
    f.tcpEstablished = o.bool("tcp-established")
    f.extUnixSk = o.bool("ext-unix-sk")
    f.shellJob = o.bool("shell-job")
    f.fileLocks = o.bool("file-locks")
    f.autoDedup = o.bool("auto-dedup")
    f.lazyPages = o.bool("lazy-pages")
    f.manageCgroupsMode = o.string("manage-cgroups-mode") ?? ""
    f.emptyNamespaces = o.strings("empty-ns")
    return f
}

/// `checkpoint`: see Spec/checkpoint.md.
func checkpointVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    var c = CheckpointOptions(
        root: g.root, id: o.positionals[0], criu: g.criu,
        imagePath: nonEmpty(o.string("image-path")) ?? defaultImagePath())
    c.workPath = nonEmpty(o.string("work-path"))
    c.parentPath = nonEmpty(o.string("parent-path"))
    c.leaveRunning = o.bool("leave-running")
    c.preDump = o.bool("pre-dump")
    c.pageServer = nonEmpty(o.string("page-server"))
    c.flags = criuFlags(o)
    for w in try checkpointContainer(c) { g.log.warning(w) }
    return 0
}

/// `restore`: see Spec/checkpoint.md. Without --detach, waits for the restored init and exits
/// with its status, then removes the container (as runc does).
func restoreVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    let id = o.positionals[0]
    var r = RestoreOptions(
        root: g.root, id: id, criu: g.criu, bundle: nonEmpty(o.string("bundle")) ?? ".",
        imagePath: nonEmpty(o.string("image-path")) ?? defaultImagePath())
    r.workPath = nonEmpty(o.string("work-path"))
    r.consoleSocket = nonEmpty(o.string("console-socket"))
    r.pidFile = nonEmpty(o.string("pid-file"))
    r.detach = o.bool("detach")
    r.noSubreaper = o.bool("no-subreaper")
    r.flags = criuFlags(o)
    r.lsmProfile = nonEmpty(o.string("lsm-profile"))
    r.lsmMountContext = nonEmpty(o.string("lsm-mount-context"))
    r.systemdCgroup = g.systemdCgroup
    let restored = try restoreContainer(r)
    if r.detach { return 0 }
    let code = waitForeground(pid: restored.state.pid, pty: restored.ptyMaster)
    for w in try deleteContainer(root: g.root, id: id, force: true) { g.log.warning(w) }
    return code
}
