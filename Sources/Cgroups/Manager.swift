import Glibc
import LinuxSystem
import OCI

/// One container's cgroup: its directory in every mounted hierarchy, and the operations on it.
///
/// Keys of `paths` are v1 controller names (`memory`, `cpu`, `name=systemd`...) and `""` for the
/// cgroup2 directory (pure v2, or the unified tree of a hybrid layout), as runc names them.
public struct CgroupManager: Sendable {
    public let layout: CgroupLayout
    /// Prefix of every path the manager touches ("" on a real system; a fixture directory in tests).
    public let fsRoot: String
    /// Controller -> absolute directory of the container's cgroup.
    public let paths: [String: String]
    /// Called with (path, value) before every write (tests check the order of writes with it).
    var writeObserver: (@Sendable (String, String) -> Void)?

    /// `path` is the container's cgroup path inside every hierarchy (from `resolvePath`), e.g. `/swiftlet/ID`.
    public init(layout: CgroupLayout, path: String, fsRoot: String = "") {
        let inner = FS.cleanPath(path)
        self.init(layout: layout, fsRoot: fsRoot) { _ in inner }
    }

    /// Resolves linux.cgroupsPath per hierarchy, as runc does: an absolute path (or none: `/swiftlet/ID`)
    /// is the same in every hierarchy; a relative one is relative to this process's own cgroup in each
    /// hierarchy (from /proc/self/cgroup, or `procSelfCgroup` text), and on pure v2 to the parent of
    /// the own cgroup (which holds processes, so it cannot have controller-enabled children).
    public init(
        layout: CgroupLayout, cgroupsPath: String?, id: String, fsRoot: String = "",
        procSelfCgroup: String? = nil
    ) {
        guard let relative = cgroupsPath, !relative.isEmpty, !relative.hasPrefix("/") else {
            self.init(
                layout: layout, path: CgroupManager.resolvePath(cgroupsPath: cgroupsPath, id: id, ownCgroup: "/"),
                fsRoot: fsRoot)
            return
        }
        let text = procSelfCgroup ?? ((try? FS.readString("/proc/self/cgroup")) ?? "")
        let own = CgroupManager.ownCgroups(procSelfCgroup: text)
        let isPureV2: Bool = if case .v2 = layout { true } else { false }
        self.init(layout: layout, fsRoot: fsRoot) { key in
            var base = own[key] ?? "/"
            if key.isEmpty && isPureV2 { base = FS.dirname(base) }
            return CgroupManager.resolvePath(cgroupsPath: relative, id: id, ownCgroup: base)
        }
    }

    /// A manager for directories resolved earlier (stored in the container's state).
    public init(layout: CgroupLayout, paths: [String: String]) {
        self.layout = layout
        self.fsRoot = ""
        self.paths = paths
    }

    private init(layout: CgroupLayout, fsRoot: String, inner: (String) -> String) {
        self.layout = layout
        self.fsRoot = fsRoot
        var paths: [String: String] = [:]
        for (controller, mountPoint) in layout.hierarchies {
            paths[controller] = joinPath(fsRoot + mountPoint, inner(controller))
        }
        if let unified = layout.unifiedMountPoint {
            paths[""] = joinPath(fsRoot + unified, inner(""))
        }
        self.paths = paths
    }

    /// The container's cgroup path: `/swiftlet/ID` when linux.cgroupsPath is absent or empty, the
    /// cleaned path when absolute, else the path under `ownCgroup` (`..` cannot climb above it).
    public static func resolvePath(cgroupsPath: String?, id: String, ownCgroup: String) -> String {
        guard let p = cgroupsPath, !p.isEmpty else { return "/swiftlet/" + id }
        if p.hasPrefix("/") { return FS.cleanPath(p) }
        return FS.cleanPath(FS.cleanPath(ownCgroup) + FS.cleanPath(p))
    }

    /// Parses /proc/PID/cgroup: controller -> cgroup path, `""` for the cgroup2 line (`0::/path`).
    public static func ownCgroups(procSelfCgroup: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in ProcCgroup.parse(procSelfCgroup) {
            if line.controllers.isEmpty { out[""] = line.path }
            for controller in line.controllers { out[controller] = line.path }
        }
        return out
    }

    // MARK: - Directories

    /// Each directory once (co-mounted controllers share one), sorted.
    var uniqueDirs: [String] { Array(Set(paths.values)).sorted() }

    /// The cgroup2 directory (v2, or the unified tree in hybrid).
    var unifiedDir: String? { paths[""] }

    var isV2: Bool { if case .v2 = layout { true } else { false } }

    /// The directory whose cgroup.procs lists the container's processes.
    var primaryDir: String? {
        if isV2 { return unifiedDir }
        for key in ["pids", "devices", "memory", "freezer", "cpu"] { if let d = paths[key] { return d } }
        return paths.keys.filter { !$0.isEmpty }.sorted().first.flatMap { paths[$0] } ?? unifiedDir
    }

    /// The directories that are the root of their hierarchy (never created, never removed).
    private var mountRoots: Set<String> {
        var roots = Set(layout.hierarchies.values.map { FS.cleanPath(fsRoot + $0) })
        if let u = layout.unifiedMountPoint { roots.insert(FS.cleanPath(fsRoot + u)) }
        return roots
    }

    // MARK: - Lifecycle

    /// Creates the cgroup in every hierarchy (mkdir -p). v1 cpuset: every new level gets its parent's
    /// cpuset.cpus/mems (an empty cpuset cannot take tasks). v2: the controllers of each ancestor are
    /// enabled in its cgroup.subtree_control. Hybrid: the unified directory is created too, like runc.
    public func create() throws(CgroupError) {
        guard !paths.isEmpty else { throw CgroupError("no cgroup hierarchy is mounted") }
        let roots = mountRoots
        for dir in uniqueDirs where roots.contains(FS.cleanPath(dir)) {
            throw CgroupError("cgroup path \(dir) is the root of its hierarchy")
        }
        for dir in uniqueDirs {
            if dir == unifiedDir && isV2 {
                try createV2(dir)
            } else if dir == paths["cpuset"] {
                try createCpuset(dir)
            } else {
                do throws(SysError) { try FS.mkdirAll(dir) } catch { throw .sys(error) }
            }
        }
    }

    /// mkdir every level below the cpuset mount, copying cpus/mems from the parent where empty.
    private func createCpuset(_ dir: String) throws(CgroupError) {
        guard let mount = layout.hierarchies["cpuset"] else { return }
        var current = FS.cleanPath(fsRoot + mount)
        for component in levels(below: current, to: dir) {
            let parent = current
            current = parent + "/" + component
            do throws(SysError) { try FS.mkdir(current) } catch { throw .sys(error) }
            for name in ["cpuset.cpus", "cpuset.mems"] {
                let mine = try readTrimmed(current + "/" + name)
                if !mine.isEmpty { continue }
                let inherited = try readTrimmed(parent + "/" + name)
                try KnobWriter(journaling: false, observer: writeObserver).write(current + "/" + name, inherited)
            }
        }
    }

    /// mkdir every level below the cgroup2 mount; before descending, enables in each level's
    /// cgroup.subtree_control the controllers it has (cgroup.controllers) and has not enabled yet.
    /// Directories created here are removed again if a later step fails.
    private func createV2(_ dir: String) throws(CgroupError) {
        guard let mount = layout.unifiedMountPoint else { return }
        var current = FS.cleanPath(fsRoot + mount)
        var created: [String] = []
        do throws(CgroupError) {
            for component in levels(below: current, to: dir) {
                try enableControllers(in: current, only: nil)
                current += "/" + component
                if FS.statOf(current) == nil {
                    do throws(SysError) { try FS.mkdir(current) } catch { throw .sys(error) }
                    created.append(current)
                }
            }
        } catch {
            for d in created.reversed() { rmdir(d) }
            throw error
        }
    }

    /// Enables in `dir`'s cgroup.subtree_control the controllers it has but has not enabled.
    /// All at once first; if the kernel refuses, one by one, ignoring refusals (like runc: a controller
    /// that cannot be enabled shows up later as a missing file). With `only`, just that controller,
    /// and a refusal is an error.
    func enableControllers(in dir: String, only: String?) throws(CgroupError) {
        let available = (readIfPresent(dir + "/cgroup.controllers") ?? "").split(separator: " ").map { trimmed($0) }
        let enabled = Set(
            (readIfPresent(dir + "/cgroup.subtree_control") ?? "").split(separator: " ").map { trimmed($0) })
        let missing = available.filter { !$0.isEmpty && !enabled.contains($0) && (only == nil || only == $0) }
        if missing.isEmpty { return }
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        let file = dir + "/cgroup.subtree_control"
        do throws(CgroupError) {
            try writer.write(file, missing.map { "+" + $0 }.joined(separator: " "))
        } catch {
            if only != nil { throw error }
            for c in missing { try? writer.write(file, "+" + c) }
        }
    }

    /// The path components of `dir` below `base` (["swiftlet", "ID"]).
    private func levels(below base: String, to dir: String) -> [String] {
        let clean = FS.cleanPath(dir)
        guard clean.hasPrefix(base + "/") else { return [] }
        return clean.dropFirst(base.count + 1).split(separator: "/").map(String.init)
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    public enum Part: Sendable { case all, v1Only, unifiedOnly }

    public func add(pid: Int32, to part: Part = .all) throws(CgroupError) {
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        for dir in uniqueDirs {
            let unified = dir == paths[""]
            if (part == .v1Only && unified) || (part == .unifiedOnly && !unified) { continue }
            try writer.write(dir + "/cgroup.procs", String(pid))
        }
    }

    /// The v1 hierarchies' `tasks` files (not the cgroup2 tree's). A single-threaded process moves
    /// itself into them by writing "0": the kernel then skips the cgroup threadgroup lock, whose
    /// write side (any write of a pid to cgroup.procs) waits for an RCU grace period, 7-20 ms here.
    public var v1TaskFiles: [String] {
        uniqueDirs.filter { $0 != paths[""] }.map { $0 + "/tasks" }
    }

    /// Moves the calling thread (which must be the process's only one) into `v1TaskFiles`.
    public func addSelfToV1() throws(CgroupError) {
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        for file in v1TaskFiles { try writer.write(file, "0") }
    }

    /// The processes in the cgroup and its child cgroups (from cgroup.procs of the pids, devices,
    /// memory or freezer hierarchy on v1, of the directory on v2), sorted.
    public func pids() throws(CgroupError) -> [Int32] {
        guard let dir = primaryDir else { throw CgroupError("no cgroup hierarchy is mounted") }
        var out: [Int32] = []
        try collectPids(dir, into: &out)
        return out.sorted()
    }

    private func collectPids(_ dir: String, into out: inout [Int32]) throws(CgroupError) {
        for line in try readFile(dir + "/cgroup.procs").split(separator: "\n") {
            if let pid = Int32(trimmed(line)) { out.append(pid) }
        }
        for child in subdirectories(dir) { try collectPids(child, into: &out) }
    }

    /// True if the cgroup directory exists (the pids/devices/memory one on v1).
    public func exists() -> Bool {
        guard let dir = primaryDir, let st = FS.statOf(dir) else { return false }
        return FS.isDirectory(st)
    }

    /// Removes the cgroup from every hierarchy, child cgroups first. The processes must be dead;
    /// EBUSY (a dying process not yet gone) is retried 10 times, 10 ms apart. Only the container's own
    /// directory (and its children) is removed: parents such as /swiftlet may be shared and stay.
    public func destroy() throws(CgroupError) {
        let roots = mountRoots
        var failures: [CgroupError] = []
        for dir in uniqueDirs.sorted(by: { $0.count > $1.count }) where !roots.contains(FS.cleanPath(dir)) {
            do throws(CgroupError) { try removeCgroup(dir) } catch { failures.append(error) }
        }
        if let first = failures.first {
            if failures.count == 1 { throw first }
            throw CgroupError(failures.map(\.message).joined(separator: "; "), errno: first.errno)
        }
    }

    private func removeCgroup(_ dir: String) throws(CgroupError) {
        if rmdir(dir) == 0 || errno == ENOENT { return }
        for child in subdirectories(dir) { try removeCgroup(child) }
        var tries = 0
        while true {
            if rmdir(dir) == 0 { return }
            let e = errno
            switch e {
            case ENOENT: return
            case EINTR: continue
            case EBUSY where tries < 10:
                tries += 1
                usleep(10_000)
            default:
                throw CgroupError("rmdir \(dir): \(errnoString(e))", errno: e)
            }
        }
    }

    private func subdirectories(_ dir: String) -> [String] {
        guard let names = try? FS.listDirectory(dir) else { return [] }
        return names.sorted().map { dir + "/" + $0 }.filter { p in FS.lstatOf(p).map(FS.isDirectory) ?? false }
    }

    // MARK: - Freezer

    /// Freezes every process of the cgroup and waits until the kernel reports it frozen.
    /// v1: freezer.state (FREEZING is retried, thawing now and then, as runc does); without a v1 freezer
    /// (v2, or hybrid lacking it): cgroup.freeze and `frozen 1` in cgroup.events. On failure the
    /// cgroup is thawed again.
    public func freeze() throws(CgroupError) {
        if let dir = paths["freezer"] {
            try freezeV1(dir)
        } else if let dir = unifiedDir {
            try freezeV2(dir)
        } else {
            throw CgroupError("cannot freeze: no freezer cgroup controller is mounted")
        }
    }

    public func thaw() throws(CgroupError) {
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        if let dir = paths["freezer"] {
            try writer.write(dir + "/freezer.state", "THAWED")
        } else if let dir = unifiedDir {
            guard FS.exists(dir + "/cgroup.freeze") else { return }
            try writer.write(dir + "/cgroup.freeze", "0")
        } else {
            throw CgroupError("cannot thaw: no freezer cgroup controller is mounted")
        }
    }

    /// True if the cgroup itself is frozen (v1 FROZEN by its own freezer.state; v2 cgroup.freeze 1).
    public func isFrozen() -> Bool {
        if let dir = paths["freezer"] {
            guard let state = readIfPresent(dir + "/freezer.state"), trimmed(state) == "FROZEN" else { return false }
            guard let own = readIfPresent(dir + "/freezer.self_freezing") else { return true }
            return trimmed(own) == "1"
        }
        if let dir = unifiedDir, let v = readIfPresent(dir + "/cgroup.freeze") { return trimmed(v) == "1" }
        return false
    }

    private func freezeV1(_ dir: String) throws(CgroupError) {
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        let file = dir + "/freezer.state"
        do throws(CgroupError) {
            for attempt in 0..<1000 {
                if attempt % 50 == 49 {
                    // New tasks keep appearing: a short thaw gives the freeze a better chance.
                    try? writer.write(file, "THAWED")
                    usleep(10_000)
                }
                try writer.write(file, "FROZEN")
                if attempt % 25 == 24 { usleep(10) }
                switch try readTrimmed(file) {
                case "FROZEN": return
                case "FREEZING": continue
                case let other: throw CgroupError("freeze \(dir): unexpected freezer.state \(quoted(other))")
                }
            }
            throw CgroupError("freeze \(dir): still FREEZING after 1000 attempts", errno: EBUSY)
        } catch {
            try? writer.write(file, "THAWED")
            throw error
        }
    }

    private func freezeV2(_ dir: String) throws(CgroupError) {
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        let file = dir + "/cgroup.freeze"
        do throws(CgroupError) {
            try writer.write(file, "1")
        } catch {
            if error.errno == ENOENT {
                throw CgroupError("cannot freeze \(dir): cgroup.freeze is missing (kernel < 5.2)", errno: ENOENT)
            }
            throw error
        }
        for _ in 0..<1000 {
            if keyedValue(dir + "/cgroup.events", "frozen") == 1 { return }
            usleep(10_000)
        }
        try? writer.write(file, "0")
        throw CgroupError("freeze \(dir): not frozen after 10 s (cgroup.events)", errno: ETIMEDOUT)
    }

    // MARK: - Signals

    /// Sends `signal` to every process of the cgroup. SIGKILL with a cgroup2 directory (v2 or hybrid)
    /// uses cgroup.kill; otherwise the cgroup is frozen, each process signalled (ESRCH ignored), and
    /// thawed. Throws if the cgroup does not exist or a kill fails for another reason.
    public func killAll(signal: Int32) throws(CgroupError) {
        guard exists() else { throw CgroupError("cgroup \(primaryDir ?? "") does not exist", errno: ENOENT) }
        let writer = KnobWriter(journaling: false, observer: writeObserver)
        if signal == SIGKILL, let dir = unifiedDir {
            do throws(CgroupError) {
                try writer.write(dir + "/cgroup.kill", "1")
                return
            } catch {
                if error.errno != ENOENT { throw error }
            }
        }
        try? freeze()
        let all: [Int32]
        do throws(CgroupError) { all = try pids() } catch {
            try? thaw()
            throw error
        }
        var failure: CgroupError?
        for pid in all {
            if Glibc.kill(pid, signal) == 0 { continue }
            let e = errno
            if e != ESRCH && failure == nil { failure = CgroupError("kill \(pid): \(errnoString(e))", errno: e) }
        }
        try? thaw()
        if let failure { throw failure }
    }
}

/// `base` + `path` where path is absolute inside the hierarchy ("/" is the hierarchy root).
func joinPath(_ base: String, _ path: String) -> String {
    let inner = FS.cleanPath(path)
    return inner == "/" ? FS.cleanPath(base) : FS.cleanPath(base) + inner
}
