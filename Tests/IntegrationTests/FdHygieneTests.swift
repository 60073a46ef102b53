import Foundation
import TestSupport
import XCTest

/// CVE-2024-21626 family: descriptors the runtime inherited from its caller reach neither the
/// container (its init while `created`, its process, an exec'd process) nor any hook, also when the
/// container's seccomp profile denies close_range. Only stdio and --preserve-fds are passed on.
final class FdHygieneTests: ContainerTestCase {
    var dir = ""
    /// Opened on fd 7 of the runtime (not close-on-exec): must reach nothing.
    var secret: String { dir + "/secret" }
    /// Opened on fd 3 and passed with --preserve-fds 1 (where the test says so).
    var preserved: String { dir + "/preserved" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("fds-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "secret\n".write(toFile: secret, atomically: true, encoding: .utf8)
        try "preserved\n".write(toFile: preserved, atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
        super.tearDown()
    }

    /// Runs the runtime with `preserved` on fd 3 and `secret` on fd 7, both inherited (no CLOEXEC).
    @discardableResult
    func slWithFds(_ args: [String]) -> RunResult {
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        return runProgram(
            "/bin/sh",
            ["-c", "exec 3<\(preserved) 7<\(secret); exec \"$0\" \"$@\"", Runtime.binary, "--root", root.path] + args,
            environment: env)
    }

    /// A seccomp profile that allows everything but close_range (EPERM).
    static func denyCloseRange(_ spec: inout [String: Any]) {
        var linux = spec[dict: "linux"]
        linux["seccomp"] = [
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [["names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1]],
        ]
        spec["linux"] = linux
    }

    /// `ls -l /proc/self/fd` output -> fd number: link target, without ls's own descriptor of the listed directory.
    static func openFds(_ listing: String) -> [Int: String] {
        var fds: [Int: String] = [:]
        for line in listing.split(separator: "\n") {
            let parts = line.components(separatedBy: " -> ")
            guard parts.count == 2, let n = Int(parts[0].split(separator: " ").last ?? "") else { continue }
            if parts[1].hasPrefix("/proc/") && parts[1].hasSuffix("/fd") { continue }
            fds[n] = parts[1]
        }
        return fds
    }

    /// The container's process, and its init while `created`, hold stdio and the preserved fd only.
    func testInheritedFdsReachNeitherCreatedInitNorProcess() throws {
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "exec ls -l /proc/self/fd > /out/fds"])(&spec)
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]])
            spec["mounts"] = mounts
            FdHygieneTests.denyCloseRange(&spec)
        }
        let id = "fds\(UInt32.random(in: 0...UInt32.max))"
        let created = slWithFds(["create", "--preserve-fds", "1", "--bundle", b, id])
        XCTAssertEqual(created.status, 0, created.stderr)
        defer { sl(["delete", "-f", id]) }
        let state = sl(["state", id]).stdout
        let json = try JSONSerialization.jsonObject(with: Data(state.utf8)) as? [String: Any]
        let pid = (json?["pid"] as? Int).map { Int32($0) } ?? 0
        XCTAssertGreaterThan(pid, 0, state)
        let initFds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        XCTAssertFalse(initFds.isEmpty)
        let targets = initFds.compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
        }
        XCTAssertFalse(targets.contains(secret), "created init holds the runtime's inherited fd: \(targets)")
        XCTAssertEqual(sl(["start", id]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.sl(["state", id]).stdout.contains("stopped") })
        let listing = try String(contentsOfFile: out + "/fds", encoding: .utf8)
        let fds = FdHygieneTests.openFds(listing)
        XCTAssertEqual(fds.keys.sorted(), [0, 1, 2, 3], listing)
        XCTAssertEqual(fds[3], preserved, listing)
    }

    /// `run` and `exec` with close_range denied by seccomp: stdio only in the process.
    func testInheritedFdsDoNotReachRunOrExecProcess() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "exec ls -l /proc/self/fd"])(&spec)
            FdHygieneTests.denyCloseRange(&spec)
        }
        let id = "fdr\(UInt32.random(in: 0...UInt32.max))"
        let r = slWithFds(["run", "--bundle", b, id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(FdHygieneTests.openFds(r.stdout).keys.sorted(), [0, 1, 2], r.stdout)

        let d = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            FdHygieneTests.denyCloseRange(&spec)
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", d, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let e = slWithFds(["exec", id, "ls", "-l", "/proc/self/fd"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(FdHygieneTests.openFds(e.stdout).keys.sorted(), [0, 1, 2], e.stdout)
        let p = slWithFds(["exec", "--preserve-fds", "1", id, "ls", "-l", "/proc/self/fd"])
        XCTAssertEqual(p.status, 0, p.stderr)
        let preservedFds = FdHygieneTests.openFds(p.stdout)
        XCTAssertEqual(preservedFds.keys.sorted(), [0, 1, 2, 3], p.stdout)
        XCTAssertEqual(preservedFds[3], preserved, p.stdout)
    }

    /// Every kind of hook gets stdio and nothing else: neither the runtime's inherited fds nor the
    /// preserved ones (startContainer runs under the container's seccomp profile, which denies close_range).
    func testHooksGetOnlyStdio() throws {
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func hook(_ kind: String, into dir: String) -> [[String: Any]] {
            [["path": "/bin/sh", "args": ["sh", "-c", "exec ls -l /proc/self/fd > \(dir)/\(kind)"]]]
        }
        let kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
        let b = try bundle { spec in
            ContainerTestCase.args(["true"])(&spec)
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]])
            spec["mounts"] = mounts
            var hooks: [String: Any] = [:]
            for k in kinds { hooks[k] = hook(k, into: k == "startContainer" ? "/out" : out) }
            spec["hooks"] = hooks
            FdHygieneTests.denyCloseRange(&spec)
        }
        let id = "fdh\(UInt32.random(in: 0...UInt32.max))"
        let created = slWithFds(["create", "--preserve-fds", "1", "--bundle", b, id])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertEqual(slWithFds(["start", id]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.sl(["state", id]).stdout.contains("stopped") })
        XCTAssertEqual(slWithFds(["delete", id]).status, 0)
        for k in kinds {
            let listing = (try? String(contentsOfFile: out + "/" + k, encoding: .utf8)) ?? "(hook did not run)"
            XCTAssertEqual(FdHygieneTests.openFds(listing).keys.sorted(), [0, 1, 2], "\(k): \(listing)")
        }
    }
}
