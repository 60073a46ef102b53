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
        root = try TestRoot()
    }

    override func tearDown() {
        root?.cleanup()
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

    func bundle(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        try makeBundle(spec: edit)
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

    /// A private copy of the test rootfs, for tests that plant things in it (removed afterwards).
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
