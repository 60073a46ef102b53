import CLinux
import Glibc
import LinuxSystem

/// A mount from config.json, resolved in the parent (source made absolute, options parsed).
public struct PlannedMount: Sendable {
    public var destination: String
    public var type: String
    public var source: String
    public var options: MountOptions
    /// A mount tree prepared by the runtime and attached by init with move_mount instead of mounting:
    /// an id-mapped bind (IDMappedMount.clone), a clone of a bind source only the host can reach
    /// (`hostClone`) or a filesystem the runtime created (HostFilesystem.create), id-mapped or not.
    public var detachedTree: Int32?
    /// The detached tree is a plain clone of a host bind source, made for a user-namespaced container
    /// (init could not reach the source). The kernel does not lock its flags as it locks those of a bind
    /// made in the container's mount namespace, so the remount keeps them as if it did (runc's result).
    public var hostClone = false
    public init(destination: String, type: String, source: String, options: MountOptions, detachedTree: Int32? = nil) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
        self.detachedTree = detachedTree
    }
}

/// A device node to create in the container's /dev.
public struct DeviceNode: Sendable {
    public var path: String
    public var type: String  // c, b, u, p
    public var major: Int64
    public var minor: Int64
    public var fileMode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public init(path: String, type: String, major: Int64, minor: Int64, fileMode: UInt32, uid: UInt32, gid: UInt32) {
        self.path = path
        self.type = type
        self.major = major
        self.minor = minor
        self.fileMode = fileMode
        self.uid = uid
        self.gid = gid
    }

    /// The devices every container gets (runtime-spec config-linux.md "Default Devices").
    public static let defaults: [DeviceNode] = [
        DeviceNode(path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0),
        DeviceNode(path: "/dev/zero", type: "c", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0),
        DeviceNode(path: "/dev/full", type: "c", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0),
        DeviceNode(path: "/dev/random", type: "c", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0),
        DeviceNode(path: "/dev/urandom", type: "c", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0),
        DeviceNode(path: "/dev/tty", type: "c", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0),
    ]
}

/// A cgroup hierarchy of the host as the container should see it (bind of its own cgroup).
public struct CgroupBind: Sendable {
    public var name: String  // sub-directory under the mount point ("" for a pure v2 host)
    public var hostPath: String  // e.g. /sys/fs/cgroup/memory/some/path
    public init(name: String, hostPath: String) {
        self.name = name
        self.hostPath = hostPath
    }
}

/// Everything init needs to build the container's filesystem, resolved before fork.
public struct RootfsPlan: Sendable {
    public var rootfs: String
    public var readonly: Bool
    /// linux.rootfsPropagation as MS_* flags (default MS_SLAVE|MS_REC).
    public var rootPropagation: UInt
    /// True when config.json set rootfsPropagation: it is applied again to the new "/" after pivot.
    public var explicitPropagation = false
    public var mounts: [PlannedMount]
    public var devices: [DeviceNode]
    public var createDevices: Bool  // false when /dev is bind-mounted from the host
    public var bindDevices: Bool  // user namespace: mknod is not allowed, bind from host
    public var inUserNamespace: Bool
    public var noPivot: Bool
    /// Without a new mount namespace (runc allows it) the mounts happen in the caller's namespace
    /// and the root is entered with chroot; "/" keeps its propagation.
    public var newMountNamespace: Bool = true
    public var maskedPaths: [String]
    public var readonlyPaths: [String]
    public var cgroupBinds: [CgroupBind]
    public init(
        rootfs: String, readonly: Bool, rootPropagation: UInt, mounts: [PlannedMount], devices: [DeviceNode],
        createDevices: Bool, bindDevices: Bool, inUserNamespace: Bool, noPivot: Bool,
        maskedPaths: [String], readonlyPaths: [String], cgroupBinds: [CgroupBind]
    ) {
        self.rootfs = rootfs
        self.readonly = readonly
        self.rootPropagation = rootPropagation
        self.mounts = mounts
        self.devices = devices
        self.createDevices = createDevices
        self.bindDevices = bindDevices
        self.inUserNamespace = inUserNamespace
        self.noPivot = noPivot
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
        self.cgroupBinds = cgroupBinds
    }
}

/// The atime flags (the kernel locks them together, MNT_LOCK_ATIME).
let atimeFlags = SL_MS_NOATIME | SL_MS_RELATIME | SL_MS_STRICTATIME | SL_MS_NODIRATIME

/// The lockable flags of a mount (statvfs f_flag) as MS_* flags. Without noatime or relatime the
/// mount is strictatime, which statvfs does not report.
func lockedFlags(_ vfs: statvfs) -> UInt {
    var locked =
        UInt(vfs.f_flag) & (SL_MS_RDONLY | SL_MS_NOSUID | SL_MS_NODEV | SL_MS_NOEXEC | SL_MS_NOATIME | SL_MS_NODIRATIME)
    if UInt(vfs.f_flag) & SL_ST_RELATIME != 0 { locked |= SL_MS_RELATIME }
    if locked & (SL_MS_NOATIME | SL_MS_RELATIME) == 0 { locked |= SL_MS_STRICTATIME }
    return locked
}

/// A bind remount asking to clear a locked flag (`cleared`), or for other atime flags than the
/// locked ones, cannot be honoured: an error, as with runc.
func checkLockedFlags(_ locked: UInt, flags: UInt, cleared: UInt, name: String) throws(SysError) {
    if locked & cleared != 0 {
        throw SysError("remount \(name): cannot clear locked flags \(flagNames(locked & cleared))", errno: EPERM)
    }
    if flags & atimeFlags != 0 && flags & atimeFlags != locked & atimeFlags {
        throw SysError(
            "remount \(name): cannot change locked atime flags \(flagNames(locked & atimeFlags))", errno: EPERM)
    }
}

extension PlannedMount {
    /// For a host clone (`hostClone`), checked by the runtime before the container is made: the
    /// config must not clear a flag the kernel would have locked.
    public func checkHostCloneFlags() throws(SysError) {
        guard hostClone, let tree = detachedTree,
            options.flags & ~(SL_MS_BIND | SL_MS_REC) != 0 || options.clearFlags != 0
        else { return }
        var vfs = statvfs()
        try sys("fstatvfs", source) { fstatvfs(tree, &vfs) }
        try checkLockedFlags(lockedFlags(vfs), flags: options.flags, cleared: options.clearFlags, name: destination)
    }
}

/// Option names of MS_* flags, for messages.
func flagNames(_ flags: UInt) -> String {
    let names: [(UInt, String)] = [
        (SL_MS_RDONLY, "ro"), (SL_MS_NOSUID, "nosuid"), (SL_MS_NODEV, "nodev"),
        (SL_MS_NOEXEC, "noexec"), (SL_MS_NOATIME, "noatime"), (SL_MS_RELATIME, "relatime"),
        (SL_MS_STRICTATIME, "strictatime"), (SL_MS_NODIRATIME, "nodiratime"),
    ]
    return names.filter { flags & $0.0 != 0 }.map { $0.1 }.joined(separator: ",")
}

@inline(__always)
func mountCall(
    _ source: String?, _ target: String, _ fstype: String?, _ flags: UInt, _ data: String?,
    what: String
) throws(SysError) {
    try sys("mount \(what) to", target) { sl_mount(source, target, fstype, flags, data) }
}

/// Remounts a bind mount with exactly `flags` (runc 1.3). When that fails with EPERM, or at once with
/// `assumeLocked`, the flags the kernel locks (nosuid/nodev/noexec/ro/atime of a mount inherited from a more
/// privileged mount namespace) are kept, as runc does; asking to clear one (`cleared`), or for other
/// atime flags than the locked ones, is an error. `name` is the mount's destination, for messages.
func remountBind(
    _ target: String, _ flags: UInt, cleared: UInt = 0, assumeLocked: Bool = false,
    name: String? = nil
) throws(SysError) {
    let base = SL_MS_BIND | SL_MS_REMOUNT | (flags & ~(SL_MS_BIND | SL_MS_REC | SL_MS_REMOUNT))
    if !assumeLocked && sl_mount(nil, target, nil, base, nil) == 0 { return }
    let first = assumeLocked ? EPERM : errno
    var vfs = statvfs()
    guard first == EPERM, statvfs(target, &vfs) == 0 else { throw SysError("remount", name ?? target, errno: first) }
    let locked = lockedFlags(vfs)
    try checkLockedFlags(locked, flags: flags, cleared: cleared, name: name ?? target)
    if sl_mount(nil, target, nil, base | locked, nil) == 0 { return }
    throw SysError("remount \(name ?? target) with locked flags \(flagNames(locked)) re-applied", errno: errno)
}

public enum Rootfs {
    /// Before pivot_root: propagation, rootfs bind, mounts, devices, /dev symlinks.
    public static func prepare(_ plan: RootfsPlan) throws(SysError) {
        if plan.newMountNamespace {
            // An unbindable "/" would refuse the rootfs bind below: start private, set it after pivot.
            var flags = plan.rootPropagation
            if flags & SL_MS_UNBINDABLE != 0 { flags = (flags & ~SL_MS_UNBINDABLE) | SL_MS_PRIVATE }
            try mountCall(nil, "/", nil, flags, nil, what: "propagation of")
            // pivot_root refuses a new root whose parent mount is shared.
            if flags & SL_MS_SHARED != 0, let parent = mountPoint(containing: plan.rootfs) {
                try mountCall(nil, parent, nil, SL_MS_PRIVATE, nil, what: "propagation of rootfs parent")
            }
        }
        try mountCall(plan.rootfs, plan.rootfs, nil, SL_MS_BIND | SL_MS_REC, nil, what: "rootfs")
        for (i, m) in plan.mounts.enumerated() { try mountOne(m, index: i, plan) }
        if plan.createDevices {
            for d in DeviceNode.defaults + plan.devices { try createDevice(d, plan) }
            try devSymlinks(plan)
        } else {
            for d in plan.devices { try createDevice(d, plan) }
        }
    }

    /// Opens `destination` inside the rootfs as an O_PATH fd, resolving every component in the root
    /// (openat2 RESOLVE_IN_ROOT): a symlink swapped in after we checked cannot send it elsewhere.
    static func openInRoot(_ rootfs: String, _ destination: String) throws(SysError) -> Int32 {
        let root = try FS.open(rootfs, SL_O_PATH | O_DIRECTORY)
        defer { close(root) }
        let rel = String(FS.cleanPath(destination).dropFirst())
        return try sys("openat2 in rootfs", destination) {
            sl_openat2(
                root, rel.isEmpty ? "." : rel, UInt64(SL_O_PATH | O_CLOEXEC), 0,
                SL_RESOLVE_IN_ROOT | SL_RESOLVE_NO_MAGICLINKS)
        }
    }

    /// Mounts one config.json mount. The mount point is created along the safely joined path, then
    /// the mount goes onto an fd opened inside the root (CVE-2021-30465), and the follow-up changes
    /// (remount flags, recursive attributes, propagation) onto a fresh fd of the new mount.
    static func mountOne(_ m: PlannedMount, index: Int, _ plan: RootfsPlan) throws(SysError) {
        let dest = try secureJoin(root: plan.rootfs, m.destination)
        try checkProcDestination(FS.cleanPath(String(dest.dropFirst(plan.rootfs.count))), m)
        if m.type == "cgroup" || m.type == "cgroup2" {
            try mountCgroup(dest, m, plan)
            return
        }
        if m.type == "proc" || m.type == "sysfs" {
            // CVE-2019-16884 class: procfs/sysfs only on a real directory, never through a symlink.
            let literal = FS.cleanPath(m.destination)
            if dest != plan.rootfs + (literal == "/" ? "" : literal) || FS.lstatOf(dest).map(FS.isSymlink) == true {
                throw SysError("\(m.type) mount destination \(m.destination) goes through a symlink", errno: EPERM)
            }
        }
        // A tmpfs takes the mode of the directory it covers, as runc does (a later mode= still wins).
        var data = m.options.dataString
        if m.type == "tmpfs", let st = FS.statOf(dest) {
            data = "mode=0" + String(st.st_mode & 0o7777, radix: 8) + (data.isEmpty ? "" : "," + data)
        }
        try makeMountPoint(m, dest, index: index, plan)
        let target = try openInRoot(plan.rootfs, m.destination)
        defer { close(target) }
        // tmpcopyup: the covered directory, still reachable through this fd after the mount.
        let below =
            m.options.copyUp && m.type == "tmpfs"
            ? try sys("open for tmpcopyup", m.destination) { openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            : -1
        defer { if below >= 0 { close(below) } }
        let at = "/proc/self/fd/\(target)"
        // A bind keeps the source's flags unless the config names any (set or cleared): then exactly those.
        var remount =
            m.options.isBind && (m.options.flags & ~(SL_MS_BIND | SL_MS_REC) != 0 || m.options.clearFlags != 0)
        if let tree = m.detachedTree {
            try IDMappedMount.attach(tree, to: target, name: m.destination)
        } else if m.options.isBind {
            try mountCall(
                m.source, at, "bind", m.options.flags & (SL_MS_BIND | SL_MS_REC), nil, what: "\"\(m.source)\"")
        } else if try !mountFilesystem(m, at, data: data, plan) {
            remount = m.options.flags != 0  // the host's /sys, bound: its flags come by remount
        }
        let top = try openInRoot(plan.rootfs, m.destination)
        defer { close(top) }
        let onTop = "/proc/self/fd/\(top)"
        if m.detachedTree != nil && m.options.isBind && plan.newMountNamespace {
            // A clone from the host may be a peer of a shared host mount: give it the propagation a
            // bind made under the container's root gets.
            var p = plan.rootPropagation
            if p & SL_MS_UNBINDABLE != 0 { p = (p & ~SL_MS_UNBINDABLE) | SL_MS_PRIVATE }
            try mountCall(nil, onTop, nil, p | SL_MS_REC, nil, what: "propagation of")
        }
        if below >= 0 { try CopyUp.copyContents(from: below, to: top, name: m.destination) }
        if remount {
            try remountBind(
                onTop, m.options.flags, cleared: m.options.clearFlags, assumeLocked: m.hostClone, name: m.destination)
        }
        if m.type == "proc" || m.type == "sysfs" { try checkFilesystem(onTop, m) }
        if m.options.hasRecursiveAttributes {
            try sys("mount_setattr (recursive options of \(m.destination))", m.destination) {
                sl_mount_setattr(
                    top, "", SL_AT_RECURSIVE | SL_AT_EMPTY_PATH, m.options.recursiveSet, m.options.recursiveClear, 0, 0)
            }
        }
        for p in m.options.propagation { try mountCall(nil, onTop, nil, p, nil, what: "propagation of") }
    }

    /// The mount point of `m` at `dest`: a directory, or an empty file for a bind of a non-directory
    /// (its source resolved now, in config order: an earlier mount may have made it).
    static func makeMountPoint(_ m: PlannedMount, _ dest: String, index: Int, _ plan: RootfsPlan) throws(SysError) {
        guard m.options.isBind else { return try InRoot.mkdirAll(dest, rootfs: plan.rootfs) }
        var st = stat()
        if let tree = m.detachedTree {
            try sys("fstat bind source", m.source) { fstat(tree, &st) }
        } else {
            guard let s = FS.statOf(m.source) else {
                throw SysError("config.json: mounts[\(index)].source: stat", m.source, errno: errno)
            }
            st = s
        }
        if FS.isDirectory(st) {
            try InRoot.mkdirAll(dest, rootfs: plan.rootfs)
        } else {
            try InRoot.touch(dest, rootfs: plan.rootfs)
        }
    }

    /// A new filesystem of `m` on `at`; false when sysfs could not be mounted in a user namespace that
    /// does not own the network namespace and the host's /sys was bound instead.
    static func mountFilesystem(_ m: PlannedMount, _ at: String, data: String, _ plan: RootfsPlan) throws(SysError)
        -> Bool
    {
        // A read-only tmpfs (/dev above all) is filled first and made read-only at the end (runc).
        let flags = m.type == "tmpfs" ? m.options.flags & ~SL_MS_RDONLY : m.options.flags
        if sl_mount(m.source, at, m.type, flags, data.isEmpty ? nil : data) == 0 { return true }
        let e = errno
        guard m.type == "sysfs" && plan.inUserNamespace && (e == EPERM || e == EACCES) else {
            throw SysError("mount \"\(m.source)\" (\(m.type)) to", m.destination, errno: e)
        }
        try mountCall("/sys", at, "bind", SL_MS_BIND | SL_MS_REC, nil, what: "\"/sys\" (sysfs fallback)")
        return false
    }

    /// Files under /proc that may be mount destinations (lxcfs-style replacements, as runc allows).
    static let procMountFiles: Set<String> = [
        "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
        "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
    ]

    /// runc's rule for destinations in /proc (`resolved`: the destination inside the root, symlinks
    /// resolved; the plan checks the literal one first): /proc itself only takes procfs (a new one or a bind of one),
    /// and nothing below it
    /// except `procMountFiles`, so no mount can redirect the runtime's procfs writes (issue 13).
    public static func checkProcDestination(_ resolved: String, _ m: PlannedMount) throws(SysError) {
        if resolved == "/proc" {
            let isProc = m.options.isBind ? sl_statfs_type(m.source) == Procfs.superMagic : m.type == "proc"
            if isProc { return }
            throw SysError(
                "mount destination \(m.destination) cannot be mounted because it is not of type proc", errno: EPERM)
        }
        if resolved.hasPrefix("/proc/") && !procMountFiles.contains(resolved) {
            throw SysError(
                "mount destination \(m.destination) cannot be mounted because it is inside /proc", errno: EPERM)
        }
    }

    /// After mounting procfs/sysfs: the target really is one (not something mounted over it later).
    static func checkFilesystem(_ dest: String, _ m: PlannedMount) throws(SysError) {
        let type = sl_statfs_type(dest)
        guard type >= 0 else { throw SysError("statfs", m.destination, errno: errno) }
        let want: Int = m.type == "proc" ? 0x9fa0 : 0x6265_6572  // PROC_SUPER_MAGIC, SYSFS_MAGIC
        // sysfs may be a bind of the host's /sys in a user namespace: still sysfs.
        if type != want {
            throw SysError("\(m.destination) is not \(m.type) after mounting it", errno: EPERM)
        }
    }

    /// cgroup mounts show the container its own cgroup: the host hierarchies, bind-mounted at the
    /// container's cgroup (one directory per v1 hierarchy under a tmpfs, or the v2 tree directly).
    /// The mount point in the rootfs is made and mounted on through fds (InRoot, openInRoot); what
    /// goes below it is in the new tmpfs, which only this mount namespace sees.
    static func mountCgroup(_ dest: String, _ m: PlannedMount, _ plan: RootfsPlan) throws(SysError) {
        try InRoot.mkdirAll(dest, rootfs: plan.rootfs)
        let ro = m.options.flags & SL_MS_RDONLY != 0
        let perMount = (m.options.flags | SL_MS_NOSUID | SL_MS_NODEV | SL_MS_NOEXEC) & ~SL_MS_REC
        let target = try openInRoot(plan.rootfs, m.destination)
        defer { close(target) }
        if plan.cgroupBinds.count == 1 && plan.cgroupBinds[0].name.isEmpty {
            try mountCall(
                plan.cgroupBinds[0].hostPath, "/proc/self/fd/\(target)", "bind", SL_MS_BIND | SL_MS_REC, nil,
                what: "cgroup")
            let top = try openInRoot(plan.rootfs, m.destination)
            defer { close(top) }
            try remountBind("/proc/self/fd/\(top)", perMount)
            return
        }
        try mountCall(
            "tmpfs", "/proc/self/fd/\(target)", "tmpfs", SL_MS_NOSUID | SL_MS_NODEV | SL_MS_NOEXEC, "mode=755",
            what: "cgroup tmpfs")
        let top = try openInRoot(plan.rootfs, m.destination)
        defer { close(top) }
        let tmpfs = "/proc/self/fd/\(top)"
        for b in plan.cgroupBinds {
            let sub = tmpfs + "/" + b.name
            try FS.mkdirAll(sub)
            try mountCall(b.hostPath, sub, "bind", SL_MS_BIND | SL_MS_REC, nil, what: "cgroup \"\(b.name)\"")
            try remountBind(sub, perMount)
        }
        if ro {
            try mountCall(
                nil, tmpfs, nil, SL_MS_REMOUNT | SL_MS_RDONLY | SL_MS_NOSUID | SL_MS_NODEV | SL_MS_NOEXEC, nil,
                what: "cgroup tmpfs read-only")
        }
    }

    /// A device node in the container's /dev, made relative to its directory's fd (InRoot).
    static func createDevice(_ d: DeviceNode, _ plan: RootfsPlan) throws(SysError) {
        let dest = try secureJoin(root: plan.rootfs, d.path)
        if plan.bindDevices {
            try InRoot.touch(dest, rootfs: plan.rootfs)
            let target = try openInRoot(plan.rootfs, d.path)
            defer { close(target) }
            try mountCall(d.path, "/proc/self/fd/\(target)", "bind", SL_MS_BIND, nil, what: "device \"\(d.path)\"")
            return
        }
        let kind: mode_t
        switch d.type {
        case "b": kind = S_IFBLK
        case "p": kind = S_IFIFO
        default: kind = S_IFCHR
        }
        let (dir, name) = try InRoot.parent(dest, rootfs: plan.rootfs)
        defer { close(dir) }
        try InRoot.mknod(dir, name, d, kind: kind)
    }

    static func devSymlinks(_ plan: RootfsPlan) throws(SysError) {
        var links = [
            ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
        ]
        if FS.exists("/proc/kcore") { links.append(("/proc/kcore", "/dev/core")) }
        if plan.mounts.contains(where: { $0.destination == "/dev/pts" }) { links.append(("pts/ptmx", "/dev/ptmx")) }
        for (target, link) in links {
            // The link itself is made, never what a planted one points at: only its directory is resolved.
            let dest =
                try secureJoin(root: plan.rootfs, FS.dirname(link)) + "/"
                + String(link.dropFirst(FS.dirname(link).count + 1))
            let (dir, name) = try InRoot.parent(dest, rootfs: plan.rootfs)
            defer { close(dir) }
            if link == "/dev/ptmx" { unlinkat(dir, name, 0) }
            if symlinkat(target, dir, name) != 0 && errno != EEXIST { throw SysError("symlink", link, errno: errno) }
        }
    }

    /// Makes the rootfs "/" (pivot_root, or MS_MOVE + chroot with --no-pivot).
    public static func enter(_ plan: RootfsPlan) throws(SysError) {
        if !plan.newMountNamespace {
            try sys("chroot", plan.rootfs) { chroot(plan.rootfs) }
            try sys("chdir", "/") { chdir("/") }
            return
        }
        if plan.noPivot {
            try hideHostProcAndSys(outside: plan.rootfs)
            try sys("chdir", plan.rootfs) { chdir(plan.rootfs) }
            try mountCall(plan.rootfs, "/", nil, SL_MS_MOVE, nil, what: "rootfs (move)")
            try sys("chroot", plan.rootfs) { chroot(".") }
            try sys("chdir", "/") { chdir("/") }
            return
        }
        let oldRoot = try FS.open("/", O_DIRECTORY | O_RDONLY)
        defer { close(oldRoot) }
        let newRoot = try FS.open(plan.rootfs, O_DIRECTORY | O_RDONLY)
        defer { close(newRoot) }
        try sys("fchdir", plan.rootfs) { fchdir(newRoot) }
        try sys("pivot_root", plan.rootfs) { sl_pivot_root(".", ".") }
        try sys("fchdir", "old root") { fchdir(oldRoot) }
        try mountCall(nil, ".", nil, SL_MS_SLAVE | SL_MS_REC, nil, what: "propagation of old root")
        try sys("umount old root", "/") { sl_umount2(".", SL_MNT_DETACH) }
        try sys("chdir", "/") { chdir("/") }
    }

    /// --no-pivot keeps the old root in the mount namespace, and a fully visible procfs or sysfs
    /// there would let a process in the container mount a new one from a user namespace of its own.
    /// As runc does, every whole proc/sysfs mount outside the rootfs is detached (made a slave first,
    /// so nothing propagates to the host), or covered with a tmpfs where it cannot be unmounted.
    static func hideHostProcAndSys(outside rootfs: String) throws(SysError) {
        let info = MountInfo.parse(try FS.readString("/proc/self/mountinfo"))
        let targets = info.filter {
            $0.root == "/" && ($0.fsType == "proc" || $0.fsType == "sysfs")
                && $0.mountPoint != rootfs && !$0.mountPoint.hasPrefix(rootfs + "/")
        }.map(\.mountPoint)
        for p in targets {
            if sl_mount(nil, p, nil, SL_MS_SLAVE | SL_MS_REC, nil) != 0 {
                if errno == ENOENT { continue }  // gone with a parent detached before
                throw SysError("make slave (hiding host mounts for --no-pivot)", p, errno: errno)
            }
            if sl_umount2(p, SL_MNT_DETACH) != 0 {
                guard errno == EINVAL || errno == EPERM else {
                    throw SysError("umount (hiding host mounts for --no-pivot)", p, errno: errno)
                }
                try mountCall("tmpfs", p, "tmpfs", 0, nil, what: "tmpfs over a host mount for --no-pivot")
            }
        }
    }

    /// The container's /dev/null, opened without following symlinks and checked to be the real
    /// null device (1:3) before it is bind-mounted over masked paths (CVE-2025-31133 class).
    static func verifiedNullDevice() throws(SysError) -> Int32 {
        let fd = try FS.open("/dev/null", SL_O_PATH | O_NOFOLLOW)
        var st = stat()
        if fstat(fd, &st) != 0 || st.st_mode & S_IFMT != S_IFCHR || sl_major(st.st_rdev) != 1
            || sl_minor(st.st_rdev) != 3
        {
            close(fd)
            throw SysError("masked paths: /dev/null in the container is not the null device (1:3)", errno: EPERM)
        }
        return fd
    }

    /// Stdio on the host's /dev/null is moved onto the container's /dev/null, as runc does: the
    /// container should not hold a host file open, and CRIU cannot checkpoint a file whose mount is
    /// not in the container. Nothing happens when the container has no null device.
    public static func reopenNullStdio() {
        var null: Int32 = -1
        var nullStat = stat()
        defer { if null >= 0 { close(null) } }
        for fd: Int32 in 0...2 {
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFCHR,
                sl_major(st.st_rdev) == 1, sl_minor(st.st_rdev) == 3
            else { continue }
            if null < 0 {
                null = Glibc.open("/dev/null", O_RDWR | O_NOFOLLOW | O_CLOEXEC)
                guard null >= 0, fstat(null, &nullStat) == 0, nullStat.st_mode & S_IFMT == S_IFCHR,
                    sl_major(nullStat.st_rdev) == 1, sl_minor(nullStat.st_rdev) == 3
                else { return }
            }
            if nullStat.st_dev == st.st_dev && nullStat.st_ino == st.st_ino { continue }
            _ = dup2(null, fd)
        }
    }

    /// The mount point (from /proc/self/mountinfo) that holds `path`.
    static func mountPoint(containing path: String) -> String? {
        var best: String?
        for m in MountInfo.read() {
            let mp = m.mountPoint
            let inside = mp == "/" || path == mp || path.hasPrefix(mp + "/")
            if inside && mp.count >= (best?.count ?? 0) { best = mp }
        }
        return best
    }

    /// Last step of the rootfs, after /dev is complete (devices, console): read-only tmpfs mounts,
    /// mounted writable so that they could be filled, become read-only, as runc does.
    public static func remountReadonlyTmpfs(_ plan: RootfsPlan) throws(SysError) {
        for m in plan.mounts where m.type == "tmpfs" && m.options.flags & SL_MS_RDONLY != 0 {
            try remountBind(m.destination, m.options.flags, name: m.destination)
        }
    }

    /// After entering the rootfs: propagation, masked and read-only paths, read-only root.
    public static func finish(_ plan: RootfsPlan) throws(SysError) {
        if plan.explicitPropagation && plan.newMountNamespace {
            try mountCall(nil, "/", nil, plan.rootPropagation, nil, what: "rootfsPropagation of")
        }
        for p in plan.readonlyPaths {
            guard FS.lstatOf(p) != nil else { continue }
            try mountCall(p, p, nil, SL_MS_BIND | SL_MS_REC, nil, what: "readonly path")
            try remountBind(p, SL_MS_RDONLY | SL_MS_NOSUID | SL_MS_NODEV | SL_MS_NOEXEC)
        }
        if !plan.maskedPaths.isEmpty {
            let null = try verifiedNullDevice()
            defer { close(null) }
            for p in plan.maskedPaths {
                guard let st = FS.lstatOf(p) else { continue }
                if FS.isDirectory(st) {
                    try mountCall("tmpfs", p, "tmpfs", SL_MS_RDONLY, nil, what: "masked path")
                } else {
                    try mountCall("/proc/self/fd/\(null)", p, nil, SL_MS_BIND, nil, what: "masked path")
                }
            }
        }
        if plan.readonly { try remountBind("/", SL_MS_RDONLY) }
    }
}
