import CLinux
import Glibc
import LinuxSystem
import OCI

/// What Swiftlet keeps about a container in `<root>/<id>/state.json` (written atomically).
public struct StoredState: Codable, Sendable {
    public var id: String
    public var pid: Int32
    public var pidStartTime: UInt64
    public var bundle: String
    public var rootfs: String
    public var created: String
    public var owner: String
    /// True when init has its own PID namespace (killing init then kills every process in it).
    public var ownPidNamespace: Bool
    /// The container's cgroup directories (controller -> path; "" is the cgroup2 tree).
    public var cgroupPaths: [String: String]?
    /// The container's systemd unit (--systemd-cgroup), e.g. `swiftlet-ID.scope`.
    public var systemdUnit: String?
    /// True when that unit belongs to systemd's user instance (rootless; absent: the system bus).
    public var systemdUserBus: Bool?
    /// The container's config.json as create read it, kept as parsed JSON rather than as a `Spec`:
    /// most commands need a part of it or nothing, and encoding the whole spec on each save and
    /// decoding it on each load was a millisecond per container lifecycle (Spec/performance.md).
    public var config: JSONValue

    /// The whole spec, decoded on demand.
    public func spec() throws(RuntimeError) -> Spec {
        do { return try decodeJSON(Spec.self, from: config) } catch {
            throw RuntimeError(.internal, "read state of \(id): config", cause: error)
        }
    }

    /// One top-level member of the config (e.g. "hooks") decoded on demand, nil when absent.
    public func configMember<T: Decodable>(_ key: String, as type: T.Type) throws(RuntimeError) -> T? {
        guard case .object(let object) = config, let value = object[key], value != .null else { return nil }
        do { return try decodeJSON(type, from: value) } catch {
            throw RuntimeError(.internal, "read state of \(id): config: \(key)", cause: error)
        }
    }

    /// The config's hooks (validated by create), nil when it has none.
    public func hooks() throws(RuntimeError) -> OCI.Hooks? { try configMember("hooks", as: OCI.Hooks.self) }
}

/// The per-runtime state directory: one directory per container under --root.
public struct ContainerStore: Sendable {
    public let root: String
    public init(root: String) { self.root = root }

    public func dir(_ id: String) -> String { root + "/" + id }
    public func fifoPath(_ id: String) -> String { dir(id) + "/exec.fifo" }
    func statePath(_ id: String) -> String { dir(id) + "/state.json" }
    /// restore's mount of the rootfs for criu (a bind: never removed through, see `remove`).
    func criuRootPath(_ id: String) -> String { dir(id) + "/criu-root" }

    /// Container ids are what runc accepts: letters, digits, `_ + - .`, not "." or "..".
    public static func validate(id: String) throws(RuntimeError) {
        let ok =
            !id.isEmpty && id != "." && id != ".." && id.utf8.count <= 1024
            && id.unicodeScalars.allSatisfy {
                ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
                    || "_+-.".unicodeScalars.contains($0)
            }
        if !ok { throw RuntimeError(.invalidArgument, "invalid container id format: \(id)") }
    }

    /// Creates the container's directory; fails if it exists.
    public func createDir(_ id: String) throws(RuntimeError) {
        try step("create state directory") { try FS.mkdirAll(root, 0o700) }
        if mkdir(dir(id), 0o711) != 0 {
            if errno == EEXIST { throw RuntimeError(.exists, "container with given ID already exists") }
            throw RuntimeError.sys(SysError("mkdir", dir(id), errno: errno))
        }
    }

    public func load(_ id: String) throws(RuntimeError) -> StoredState {
        try ContainerStore.validate(id: id)
        let bytes: [UInt8]
        do { bytes = try FS.readFile(statePath(id)) } catch {
            if error.errno == ENOENT { throw RuntimeError(.notFound, "container does not exist") }
            throw RuntimeError.sys(error, "read state")
        }
        do { return try decodeJSON(StoredState.self, from: bytes) } catch {
            throw RuntimeError(.internal, "read state \(statePath(id))", cause: error)
        }
    }

    public func save(_ s: StoredState) throws(RuntimeError) {
        try step("write state") { try FS.writeFileAtomic(statePath(s.id), Array(encodeJSON(s).utf8), durable: false) }
    }

    public func remove(_ id: String) throws(RuntimeError) {
        // restore's bind of the rootfs, still mounted when a restore was killed half-way: detached
        // first, else removing the directory below would remove the container's rootfs through it.
        let criuRoot = criuRootPath(id)
        _ = sl_umount2(criuRoot, SL_MNT_DETACH)
        rmdir(criuRoot)
        // The files create makes, by name, then the directory: this needs no file descriptor, so it
        // also works when create failed for want of one (EMFILE).
        for name in ["state.json", "state.json.tmp", "exec.fifo"] { unlink(dir(id) + "/" + name) }
        if rmdir(dir(id)) == 0 || errno == ENOENT { return }
        try step("remove state directory") { try FS.removeAll(dir(id)) }
    }

    /// Ids of every container directory with a state file.
    public func ids() -> [String] {
        guard let names = try? FS.listDirectory(root) else { return [] }
        return names.filter { FS.exists(statePath($0)) }.sorted()
    }

    /// Takes the container's lock (flock on its directory) until `Lock.release`. A directory removed
    /// (and perhaps made again by another create) while we waited is "container does not exist".
    public func lock(_ id: String) throws(RuntimeError) -> Lock {
        let fd = Glibc.open(dir(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { throw RuntimeError(.notFound, "container does not exist") }
            throw RuntimeError.sys(SysError("open", dir(id), errno: errno))
        }
        do { _ = try sys("flock", dir(id)) { flock(fd, LOCK_EX) } } catch {
            close(fd)
            throw RuntimeError.sys(error, "lock")
        }
        var held = Glibc.stat()
        let atPath = FS.statOf(dir(id))
        if fstat(fd, &held) != 0 || atPath?.st_ino != held.st_ino || atPath?.st_dev != held.st_dev {
            close(fd)
            throw RuntimeError(.notFound, "container does not exist")
        }
        return Lock(fd: fd)
    }

    /// The lock, then the state as the previous holder left it (a command that read the state before
    /// waiting for the lock could act on a container that a concurrent delete already removed).
    public func lockAndLoad(_ id: String) throws(RuntimeError) -> (Lock, StoredState) {
        try ContainerStore.validate(id: id)
        let lock = try self.lock(id)
        do { return (lock, try load(id)) } catch {
            lock.release()
            throw error
        }
    }

    /// A new container directory, locked (create and restore): start/delete/update wait instead of racing
    /// with it. When locking fails the directory is removed, except when a concurrent delete already
    /// removed it in the moment before the lock (then it may belong to a new create of the same id).
    public func createLocked(_ id: String) throws(RuntimeError) -> Lock {
        try createDir(id)
        do { return try lock(id) } catch {
            if error.kind != .notFound { try? remove(id) }
            throw error
        }
    }

    /// An flock on the container directory. flock belongs to the open file description, so a forked
    /// child holding the fd would keep the lock: children call `release()` right after fork.
    public struct Lock: Sendable {
        let fd: Int32
        public func release() { close(fd) }
    }
}

/// Container status derived from the real process, never trusted from disk.
public enum Status: String, Sendable { case creating, created, running, stopped, paused }

extension ContainerStore {
    public func status(_ s: StoredState) -> Status {
        if s.pid == 0 { return .creating }  // create has not finished (or was killed half-way)
        if !Proc.isAlive(s.pid, startTime: s.pidStartTime) { return .stopped }
        // A created container can be paused too (as runc): frozen wins over created.
        if s.cgroup?.isFrozen() == true { return .paused }
        if FS.exists(fifoPath(s.id)) { return .created }
        return .running
    }

    /// The OCI state document (runtime.md) as `state` prints it.
    public func ociState(_ s: StoredState, status: Status) -> State {
        State(
            id: s.id, status: status.rawValue, pid: status == .stopped ? 0 : s.pid, bundle: s.bundle,
            rootfs: s.rootfs, created: s.created, owner: s.owner,
            annotations: (try? s.configMember("annotations", as: [String: String].self)) ?? nil)
    }
}
