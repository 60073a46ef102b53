import Foundation
import TestSupport
import XCTest

/// Shared set-up for integration tests: a fresh --root per test, a tag in the runtime's
/// environment to find leftover processes, and leak checks for failure paths.
class ContainerTestCase: XCTestCase {
    var root: TestRoot!
    let tag = "SWIFTLET_TEST_TAG=\(UUID().uuidString)"

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "integration tests run real containers and need root")
        _ = SharedRootfs.baseline
        root = try TestRoot()
    }

    override func tearDown() {
        root?.cleanup()
        SharedRootfs.check()
    }

    /// Runs swiftlet with this test's --root and tag.
    @discardableResult
    func sl(_ args: [String], stdin: String? = nil, timeout: Double = 30) -> RunResult {
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        return runProgram(
            Runtime.binary, ["--root", root.path] + args, stdin: stdin, timeout: timeout, environment: env)
    }

    /// A bundle with the default config after `edit`. When a mount's destination is missing from the
    /// shared test rootfs (the runtime would create it there), the bundle gets a private copy instead.
    func bundle(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        try makeBundle { spec in
            edit(&spec)
            if Self.createsMountPoints(spec) {
                var root = spec[dict: "root"]
                root["path"] = try self.privateRootfs()
                spec["root"] = root
            }
        }
    }

    static func createsMountPoints(_ spec: [String: Any]) -> Bool {
        guard (spec["root"] as? [String: Any])?["path"] as? String == Runtime.rootfs else { return false }
        let mounts = spec["mounts"] as? [[String: Any]] ?? []
        return mounts.contains { mount in
            guard let dest = mount["destination"] as? String else { return false }
            var st = stat()
            return lstat(Runtime.rootfs + "/" + dest, &st) != 0
        }
    }

    /// Sets process.args in a config dictionary.
    static func args(_ a: [String]) -> (inout [String: Any]) -> Void {
        { spec in
            var p = spec["process"] as? [String: Any] ?? [:]
            p["args"] = a
            spec["process"] = p
        }
    }

    /// Adds a new user namespace mapping container ids 0-65535 to host ids from `hostID`.
    static func userNamespace(hostID: Int = 100000) -> (inout [String: Any]) -> Void {
        { spec in
            var linux = spec[dict: "linux"]
            var ns = linux["namespaces"] as? [[String: Any]] ?? []
            ns.append(["type": "user"])
            linux["namespaces"] = ns
            linux["uidMappings"] = [["containerID": 0, "hostID": hostID, "size": 65536]]
            linux["gidMappings"] = [["containerID": 0, "hostID": hostID, "size": 65536]]
            spec["linux"] = linux
        }
    }

    /// A private copy of the test rootfs (`SharedRootfs` says when a test needs one), for tests that plant things in it (removed afterwards).
    func privateRootfs() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rootfs-\(UUID().uuidString)").path
        let cp = runProgram("/bin/cp", ["-a", Runtime.rootfs, dir])
        XCTAssertEqual(cp.status, 0, cp.stderr)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Processes (not zombies) that carry this test's tag in their environment.
    func taggedProcesses() -> [Int32] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        return pids.filter { pid in
            guard pid != getpid(), let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else {
                return false
            }
            return String(decoding: env, as: UTF8.self).contains(tag) && processAlive(pid)
        }
    }

    /// A failure path left nothing behind: no state dir, no process, no host mount of the bundle, no
    /// cgroup directory (default cgroupsPath) in any hierarchy.
    func assertNothingLeft(_ id: String, bundle: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: root.path + "/" + id), "state dir left for \(id)", file: file,
            line: line)
        XCTAssertTrue(
            waitUntil(timeout: 5) { self.taggedProcesses().isEmpty }, "processes left: \(taggedProcesses())",
            file: file, line: line)
        if let bundle { XCTAssertEqual(mountsContaining(bundle), [], "host mounts left", file: file, line: line) }
        XCTAssertEqual(cgroupsLeft(id), [], "cgroups left", file: file, line: line)
    }

    /// Runs a container in the foreground and returns (status, stdout, stderr).
    func run(
        _ args: [String], id: String = "c\(UInt32.random(in: 0...UInt32.max))",
        _ edit: (inout [String: Any]) -> Void = { _ in }
    ) throws -> RunResult {
        let b = try bundle { spec in
            ContainerTestCase.args(args)(&spec)
            edit(&spec)
        }
        return sl(["run", "--bundle", b, id])
    }
}

extension Dictionary where Key == String, Value == Any {
    /// spec["linux"]["namespaces"] style edits without casting noise.
    subscript(dict key: String) -> [String: Any] {
        get { self[key] as? [String: Any] ?? [:] }
        set { self[key] = newValue }
    }
}

/// Which runtime SWIFTLET_BINARY is (for assertions on behaviour only swiftlet has, or where runc
/// or crun differ): judged by the binary's name (`crun-host` counts as crun).
extension XCTestCase {
    var runtimeName: String { URL(fileURLWithPath: Runtime.binary).lastPathComponent }
    var isSwiftlet: Bool { runtimeName.hasPrefix("swiftlet") }
    var isRunc: Bool { runtimeName.hasPrefix("runc") }
    var isCrun: Bool { runtimeName.hasPrefix("crun") }
}

extension XCTestCase {
    /// A self-signed TLS server (`openssl s_server -www`) on 127.0.0.1:8443 in the network namespace
    /// of `pid`, started from the host; killed at teardown, its key and certificate removed.
    func startTLSServer(inNetworkNamespaceOf pid: Int) throws -> Process {
        let dir = try makeTempDir(prefix: "swiftlet-tls.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let gen = runProgram(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/k.pem",
                "-out", dir + "/c.pem", "-subj", "/CN=probe", "-days", "1",
            ])
        XCTAssertEqual(gen.status, 0, gen.stderr)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        server.arguments = [
            "-t", String(pid), "-n", "/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:8443", "-www",
            "-cert", dir + "/c.pem", "-key", dir + "/k.pem", "-quiet",
        ]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        addTeardownBlock { if server.isRunning { kill(server.processIdentifier, SIGKILL) } }
        return server
    }
}

/// The shared test rootfs must stay as Scripts/make-rootfs.sh built it. A mount on a destination the
/// busybox tree lacks makes the runtime create that mount point in it, and later tests then pass or
/// fail because of it (one did). Every ContainerTestCase checks the tree at tearDown: the test that
/// added or removed an entry fails, naming it, and what it added is removed again (empty directories
/// and empty files only). Such tests use `privateRootfs()`.
enum SharedRootfs {
    static let baseline = entries()

    static func entries() -> Set<String> {
        var found = Set<String>()
        guard let walk = FileManager.default.enumerator(atPath: Runtime.rootfs) else { return found }
        while let path = walk.nextObject() as? String { found.insert(path) }
        return found
    }

    static func check() {
        let now = entries()
        let added = now.subtracting(baseline).sorted()
        let removed = baseline.subtracting(now).sorted()
        if !added.isEmpty {
            XCTFail("this test added \(added) to the shared test rootfs \(Runtime.rootfs): use privateRootfs()")
            for path in added.reversed() { removeIfEmpty(Runtime.rootfs + "/" + path) }
        }
        if !removed.isEmpty {
            XCTFail("this test removed \(removed) from the shared test rootfs \(Runtime.rootfs)")
        }
    }

    /// Removes what a test added, never recursively: empty directories, empty files, symlinks and
    /// device nodes (the runtime creates /dev's nodes in a rootfs whose config mounts no /dev).
    private static func removeIfEmpty(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        switch st.st_mode & S_IFMT {
        case S_IFDIR: rmdir(path)
        case S_IFREG: if st.st_size == 0 { unlink(path) }
        default: unlink(path)
        }
    }
}
