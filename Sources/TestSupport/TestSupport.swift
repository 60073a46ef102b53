// TestSupport: helpers for the integration tests (test-only target; Foundation is fine here, never in
// the runtime). Everything runs the real `swiftlet` binary as a child process.
//
//   let root = try TestRoot()                 // private --root, removed by cleanup()
//   defer { root.cleanup() }
//   let bundle = try makeBundle { $0[path: "process.args"] = ["echo", "hi"] }
//   let r = swiftlet(["run", "--bundle", bundle, "c1"], root: root.path)
//   XCTAssertEqual(r.status, 0, r.stderr); XCTAssertEqual(r.stdout, "hi\n")
//
// Environment: SWIFTLET_BINARY (default <repo>/.build/debug/swiftlet) and SWIFTLET_ROOTFS (default
// <repo>/test-rootfs, built by Scripts/make-rootfs.sh); Scripts/test.sh exports both.

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - Where things are

public struct Runtime {
    /// The repository root: this file is <repo>/Sources/TestSupport/TestSupport.swift.
    public static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// The swiftlet binary under test: $SWIFTLET_BINARY, or <repo>/.build/debug/swiftlet.
    public static var binary: String {
        if let b = ProcessInfo.processInfo.environment["SWIFTLET_BINARY"], !b.isEmpty { return absolute(b) }
        return repoRoot + "/.build/debug/swiftlet"
    }

    /// The swiftlet-monitor binary: $SWIFTLET_MONITOR, or the one next to `binary`.
    public static var monitor: String {
        if let b = ProcessInfo.processInfo.environment["SWIFTLET_MONITOR"], !b.isEmpty { return absolute(b) }
        return URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("swiftlet-monitor").path
    }

    /// The busybox test rootfs: $SWIFTLET_ROOTFS, or <repo>/test-rootfs.
    public static var rootfs: String {
        if let r = ProcessInfo.processInfo.environment["SWIFTLET_ROOTFS"], !r.isEmpty { return absolute(r) }
        return repoRoot + "/test-rootfs"
    }

    /// True when the binary exists and is executable (integration tests may XCTSkip otherwise).
    public static var binaryAvailable: Bool { access(binary, X_OK) == 0 }
    /// True when the rootfs looks built.
    public static var rootfsAvailable: Bool { access(rootfs + "/bin/busybox", X_OK) == 0 }
    /// Integration tests need root (namespaces, mounts).
    public static var isRoot: Bool { geteuid() == 0 }

    static func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return URL(fileURLWithPath: p).standardizedFileURL.path }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent(p).standardizedFileURL.path
    }
}

// MARK: - Temp dirs

private func tmpBase() -> String {
    ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
}

private func mkdtempIn(_ base: String, prefix: String) throws -> String {
    var template = Array((base + "/" + prefix + "XXXXXX").utf8CString)
    let ok = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
    guard ok else {
        throw TestSupportError("mkdtemp \(base)/\(prefix)XXXXXX: \(String(cString: strerror(errno)))")
    }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// One directory per test process (TMPDIR/swiftlet-tests.XXXXXX) that holds every temp dir made here;
/// removed when the process exits, unless something is still mounted below it.
private let sessionDir: String = {
    guard let d = try? mkdtempIn(tmpBase(), prefix: "swiftlet-tests.") else { return tmpBase() }
    atexit { removeSessionDir() }
    return d
}()

private func removeSessionDir() {
    guard sessionDir != tmpBase() else { return }
    removeTreeIfUnmounted(sessionDir)
}

/// Removes `path` recursively, but only when no mount lies at or below it: a mount leaked by a failed
/// test (a bind mount of a host directory, say) must not have its contents deleted.
@discardableResult
public func removeTreeIfUnmounted(_ path: String) -> Bool {
    let leaked = mountsContaining(path).filter { line in
        let fields = line.split(separator: " ")
        guard fields.count > 4 else { return false }
        let mp = String(fields[4])
        return mp == path || mp.hasPrefix(path + "/")
    }
    if !leaked.isEmpty {
        FileHandle.standardError.write(
            Data("TestSupport: not removing \(path): still mounted below it: \(leaked)\n".utf8))
        return false
    }
    return (try? FileManager.default.removeItem(atPath: path)) != nil
}

/// Creates a unique directory (mkdtemp) inside this test process's session dir
/// (TMPDIR/swiftlet-tests.XXXXXX, removed at exit), e.g. ".../swiftlet-root.Ab12Cd".
public func makeTempDir(prefix: String = "swiftlet-test.") throws -> String {
    try mkdtempIn(sessionDir, prefix: prefix)
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// A private `--root` state directory for one test. `cleanup()` force-deletes every container still
/// in it (`swiftlet --root R delete --force ID`) and removes the directory.
public final class TestRoot: Sendable {
    public let path: String

    public init() throws {
        path = try makeTempDir(prefix: "swiftlet-root.")
    }

    /// Container ids with a directory in the root (see Spec/state.md).
    public var containerIDs: [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return entries.filter { name in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &isDir) && isDir.boolValue
        }.sorted()
    }

    /// Force-deletes leftover containers, then removes the directory. Safe to call more than once.
    public func cleanup() {
        guard FileManager.default.fileExists(atPath: path) else { return }
        for id in containerIDs {
            _ = swiftlet(["delete", "--force", id], root: path, timeout: 15)
        }
        removeTreeIfUnmounted(path)
    }

    deinit { cleanup() }
}

// MARK: - Running the binary

public struct RunResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// True when the process was killed because it outlived its timeout.
    public var timedOut: Bool = false

    public init(status: Int32, stdout: String, stderr: String, timedOut: Bool = false) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.timedOut = timedOut
    }

    public var description: String {
        "status \(status)\(timedOut ? " (timed out)" : "")\nstdout: \(stdout)\nstderr: \(stderr)"
    }
}

/// Runs `swiftlet --root ROOT ARGS...` and waits for it (at most `timeout` seconds, then SIGKILL to
/// its process group). The child gets a clean signal state and only fds 0, 1 and 2.
///
/// stdout and stderr are captured through unlinked temp files, not pipes: a container started by
/// `create`/`run -d` inherits them and may keep them open long after the runtime exits, which would
/// make a read-to-EOF on a pipe hang; a file never blocks and never fills up. For the same reason this
/// does not use Foundation's Process, which only reports termination once every descendant has closed
/// an fd it leaks into the child. `stdin` (when given) is fed through a pipe from a background thread;
/// otherwise stdin is /dev/null.
public func swiftlet(_ args: [String], root: String, stdin: String? = nil, timeout: Double = 30) -> RunResult {
    runProgram(Runtime.binary, ["--root", root] + args, stdin: stdin, timeout: timeout)
}

/// Runs any program the same way as `swiftlet(_:root:)` (no `--root` added). `environment` nil
/// means: inherit the test process's environment. status: the exit status, 128+N when killed by
/// signal N, -1 when it could not be started (the reason is in stderr).
public func runProgram(
    _ executable: String, _ args: [String], stdin: String? = nil, timeout: Double = 30,
    environment: [String: String]? = nil
) -> RunResult {
    func failure(_ what: String) -> RunResult {
        RunResult(status: -1, stdout: "", stderr: "TestSupport: \(what): \(String(cString: strerror(errno)))")
    }
    let outFD = anonymousFile()
    let errFD = anonymousFile()
    defer {
        if outFD >= 0 { close(outFD) }
        if errFD >= 0 { close(errFD) }
    }
    guard outFD >= 0, errFD >= 0 else { return failure("cannot create temp files") }

    var inRead: Int32 = -1
    var inWrite: Int32 = -1
    if stdin != nil {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return failure("pipe") }
        inRead = fds[0]
        inWrite = fds[1]
        _ = fcntl(inRead, F_SETFD, FD_CLOEXEC)
        _ = fcntl(inWrite, F_SETFD, FD_CLOEXEC)
    } else {
        inRead = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard inRead >= 0 else { return failure("open /dev/null") }
    }
    var pid: pid_t = 0
    let rc = spawnWithStdio([executable] + args, environment: environment, stdio: [inRead, outFD, errFD], pid: &pid)
    close(inRead)
    guard rc == 0 else {
        if inWrite >= 0 { close(inWrite) }
        errno = rc
        return failure("cannot run \(executable)")
    }
    if let stdin, inWrite >= 0 { feedInBackground(Array(stdin.utf8), to: inWrite) }
    let (exitStatus, timedOut) = waitKillingAfter(timeout, pid: pid)
    var stderrText = readAll(errFD)
    if timedOut { stderrText += "\n[TestSupport: killed after \(timeout) s timeout]" }
    return RunResult(status: exitStatus, stdout: readAll(outFD), stderr: stderrText, timedOut: timedOut)
}

/// posix_spawn (the test process has threads: no fork) with `stdio` as fds 0-2 and no other fd, a
/// clean signal state, in a process group of its own. Returns posix_spawn's error number.
private func spawnWithStdio(
    _ argvStrings: [String], environment: [String: String]?, stdio: [Int32],
    pid: inout pid_t
) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (target, fd) in stdio.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(target)) }
    // Leak no other fd (glibc >= 2.34 has closefrom for spawn; Swift's Glibc module does not export it).
    if let sym = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        _ = unsafeBitCast(sym, to: CloseFrom.self)(&actions, 3)
    }

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var noSignals = sigset_t()
    var allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attr, &noSignals)
    posix_spawnattr_setsigdefault(&attr, &allSignals)
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

    let argv: [UnsafeMutablePointer<CChar>?] = argvStrings.map { strdup($0) } + [nil]
    let envStrings = environment.map { $0.map { "\($0.key)=\($0.value)" } }
    let envp: [UnsafeMutablePointer<CChar>?]? = envStrings.map { $0.map { strdup($0) } + [nil] }
    defer {
        argv.forEach { free($0) }
        envp?.forEach { free($0) }
    }
    if let envp { return posix_spawn(&pid, argvStrings[0], &actions, &attr, argv, envp) }
    return posix_spawn(&pid, argvStrings[0], &actions, &attr, argv, environ)
}

/// Writes `bytes` to `fd` and closes it, from a background thread so a child that does not read its
/// stdin cannot block us; SIGPIPE is blocked on that thread, so a child that exits early gives EPIPE
/// instead of killing the tests.
private func feedInBackground(_ bytes: [UInt8], to fd: Int32) {
    Thread.detachNewThread {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            off += n
        }
        close(fd)
    }
}

/// Waits for `pid`, SIGKILLing its process group after `timeout` seconds. Polls (1 ms) rather than
/// blocks, so the timeout needs no second thread. The status as a shell reports it (128+N for
/// signal N), -1 when waitpid failed.
private func waitKillingAfter(_ timeout: Double, pid: pid_t) -> (status: Int32, timedOut: Bool) {
    var status: Int32 = 0
    var timedOut = false
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { break }
        if r < 0 && errno != EINTR { return (-1, timedOut) }
        if !timedOut && Date() >= deadline {
            timedOut = true
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
        usleep(1000)
    }
    if status & 0x7f == 0 { return ((status >> 8) & 0xff, timedOut) }  // WIFEXITED: WEXITSTATUS
    return (128 + (status & 0x7f), timedOut)  // WIFSIGNALED: 128 + WTERMSIG
}

/// A read/write close-on-exec file with no name (created in TMPDIR and unlinked at once); -1 on error.
private func anonymousFile() -> Int32 {
    guard let dir = try? mkdtempIn(tmpBase(), prefix: "swiftlet-out.") else { return -1 }
    defer { rmdir(dir) }
    let path = dir + "/out"
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    if fd >= 0 { unlink(path) }
    return fd
}

private func readAll(_ fd: Int32) -> String {
    var result = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    var off: off_t = 0
    while true {
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off) }
        if n < 0 {
            if errno == EINTR { continue }
            break
        }
        if n == 0 { break }
        result.append(contentsOf: buf[0..<n])
        off += off_t(n)
    }
    return String(decoding: result, as: UTF8.self)
}

// MARK: - Bundles

/// The runc-like default config (runc 1.1.5 `runc spec`, minus ambient caps and the cgroup mount),
/// with terminal false, args ["sh"], root.path = the absolute test rootfs (readonly) and
/// hostname "swiftlet-test".
public func defaultConfig(rootfs: String = Runtime.rootfs) -> [String: Any] {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return [
        "ociVersion": "1.2.0",
        "process": [
            "terminal": false,
            "user": ["uid": 0, "gid": 0],
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": ["bounding": caps, "effective": caps, "permitted": caps],
            "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]],
            "noNewPrivileges": true,
        ] as [String: Any],
        "root": ["path": rootfs, "readonly": true] as [String: Any],
        "hostname": "swiftlet-test",
        "mounts": [
            ["destination": "/proc", "type": "proc", "source": "proc"],
            [
                "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            ],
            [
                "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            ],
            [
                "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            ],
            [
                "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            ],
            [
                "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            ],
        ] as [[String: Any]],
        "linux": [
            "namespaces": [["type": "pid"], ["type": "network"], ["type": "ipc"], ["type": "uts"], ["type": "mount"]],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        ] as [String: Any],
    ]
}

/// Creates a temp bundle dir (swiftlet-bundle.XXXXXX in the session dir, see `makeTempDir`) holding config.json: the
/// default config
/// after `spec` mutated it. The rootfs is not copied: root.path points at the shared read-only test
/// rootfs. The caller may remove the directory when done.
public func makeBundle(spec: (inout [String: Any]) throws -> Void = { _ in }) throws -> String {
    var config = defaultConfig()
    try spec(&config)
    let dir = try makeTempDir(prefix: "swiftlet-bundle.")
    try writeConfigThrowing(config, to: dir)
    return dir
}

/// Writes `dict` as BUNDLE/config.json (pretty-printed, sorted keys). Traps if it cannot: a test
/// fixture that cannot be written is a broken machine, not a test result.
public func writeConfig(_ dict: [String: Any], to bundle: String) {
    do { try writeConfigThrowing(dict, to: bundle) } catch { fatalError("writeConfig: \(error)") }
}

/// Same as `writeConfig`, throwing instead of trapping.
public func writeConfigThrowing(_ dict: [String: Any], to bundle: String) throws {
    guard JSONSerialization.isValidJSONObject(dict) else {
        throw TestSupportError("writeConfig: not a valid JSON object: \(dict)")
    }
    let data = try JSONSerialization.data(
        withJSONObject: dict,
        options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    try data.write(to: URL(fileURLWithPath: bundle + "/config.json"), options: .atomic)
}

/// Reads BUNDLE/config.json back as a dictionary.
public func readConfig(bundle: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))
    guard let d = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw TestSupportError("\(bundle)/config.json is not a JSON object")
    }
    return d
}

extension Dictionary where Key == String, Value == Any {
    /// Dotted-path access into nested dictionaries, creating intermediate dictionaries on write and
    /// removing the key when set to nil: `$0[path: "process.args"] = ["true"]`,
    /// `$0[path: "linux.uidMappings"] = [...]`, `$0[path: "root.readonly"] = false`.
    public subscript(path path: String) -> Any? {
        get {
            var parts = path.split(separator: ".").map(String.init)
            guard !parts.isEmpty else { return nil }
            let last = parts.removeLast()
            var cur: [String: Any] = self
            for p in parts {
                guard let next = cur[p] as? [String: Any] else { return nil }
                cur = next
            }
            return cur[last]
        }
        set {
            let parts = path.split(separator: ".").map(String.init)
            guard !parts.isEmpty else { return }
            Self.set(&self, parts[...], newValue)
        }
    }

    private static func set(_ d: inout [String: Any], _ parts: ArraySlice<String>, _ value: Any?) {
        let key = parts.first!
        if parts.count == 1 {
            d[key] = value
            return
        }
        var child = d[key] as? [String: Any] ?? [:]
        set(&child, parts.dropFirst(), value)
        d[key] = child
    }
}

// MARK: - Host observation

/// Lines of /proc/self/mountinfo that contain `s`. Read in one large read (the kernel renders the
/// table per read call; while other tests in this mount namespace mount and unmount, a table read in
/// small pieces can lose lines) and decoded leniently (a mount point need not be UTF-8, and a strict
/// decode would make every line vanish).
public func mountsContaining(_ s: String) -> [String] {
    let fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4 << 20)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init).filter { $0.contains(s) }
}

/// The state letter of /proc/PID/stat (R, S, D, Z, ...), nil when the process does not exist.
public func processState(_ pid: Int32) -> Character? {
    guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return nil }
    // "PID (comm) S ...": comm may hold spaces and parentheses, so look after the last ')'.
    return stat[stat.index(after: close)...].first { $0 != " " }
}

/// True when PID exists and is neither a zombie nor dead (PID 1 here reaps orphans lazily, so a
/// finished process can linger as Z for seconds).
public func processAlive(_ pid: Int32) -> Bool {
    guard let s = processState(pid) else { return false }
    return s != "Z" && s != "X" && s != "x"
}

/// Polls `cond` every 10 ms until it is true or `timeout` seconds have passed; returns the last result.
@discardableResult
public func waitUntil(timeout: Double, _ cond: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if cond() { return true }
        if Date() >= deadline { return false }
        usleep(10_000)
    }
}

// MARK: - Seeded randomness (fuzz tests reproduce from their seed)

/// SplitMix64: small, fast and reproducible.
public struct SeededRandom: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Socket types and flags as plain numbers (Linux values). glibc's enum constants (`SOCK_STREAM`, ...)
/// are not reliably visible to every test file: which Clang module owns <bits/socket_type.h> depends on
/// the order the modules of the build are compiled in, and a test file that does not import that module
/// then fails with "cannot find 'SOCK_STREAM' in scope" on some builds.
public enum SocketType {
    public static let stream: Int32 = 1
    public static let datagram: Int32 = 2
    public static let seqpacket: Int32 = 5
    public static let cloexec: Int32 = 0o2000000
}
