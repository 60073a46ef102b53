import Foundation
import TestSupport
import XCTest

/// `--systemd-cgroup` for a rootless runtime (Spec/cgroups.md, "Rootless"): a normal user with
/// `loginctl enable-linger`, so that systemd starts user@UID.service and its bus at
/// /run/user/UID/bus; the runtime, run as that user, makes its scope in the user instance, which
/// the system delegates `cpu memory pids` to. Only where systemd is PID 1 on pure cgroup v2
/// (`Scripts/vm-test.sh --systemd`, test.sh's systemd lane); skipped elsewhere. Every resource is
/// checked in the cgroup files and with `systemctl --user show`.
final class RootlessSystemdTests: ContainerTestCase {
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var dir = ""
    var bundleDir: String { dir + "/bundle" }
    var stateRoot: String { dir + "/state" }
    var xdg: String { "/run/user/\(uid)" }
    /// The user instance's cgroup: /user.slice/user-UID.slice/user@UID.service.
    var instance: String { "/user.slice/user-\(uid).slice/user@\(uid).service" }
    static let isSwiftlet = runProgram(Runtime.binary, ["--version"]).stdout.hasPrefix("swiftlet")

    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(
            SystemdTestCase.systemdIsInit, "systemd is not PID 1 here (run them with Scripts/vm-test.sh --systemd)")
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers"),
            "the user instance's delegation is tested on pure cgroup v2")
        (uid, gid) = try RootlessTests.ensureUser()
        try startUserInstance()
        dir = try RootlessTests.userDir(uid: uid, gid: gid)
        addTeardownBlock { [dir, stateRoot] in
            for id in (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? [] {
                _ = self.rl(["delete", "--force", id], timeout: 30)
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        try FileManager.default.createDirectory(atPath: bundleDir, withIntermediateDirectories: false)
        let cp = runProgram("/bin/cp", ["-a", Runtime.rootfs, bundleDir + "/rootfs"])
        XCTAssertEqual(cp.status, 0, cp.stderr)
        let chown = runProgram("/bin/chown", ["-R", "\(uid):\(gid)", dir])
        XCTAssertEqual(chown.status, 0, chown.stderr)
    }

    /// `loginctl enable-linger`: logind starts user@UID.service (the user's systemd) and with it
    /// the user's D-Bus socket, whose daemon starts on the first connection (busctl's); all waited
    /// for (bounded: the first start takes many seconds under TCG).
    func startUserInstance() throws {
        let linger = runProgram("/usr/bin/loginctl", ["enable-linger", RootlessTests.userName], timeout: 120)
        guard linger.status == 0 else { throw TestSupportError("loginctl enable-linger: \(linger)") }
        let unit = "user@\(uid).service"
        let up = waitUntil(timeout: 180) {
            runProgram("/usr/bin/systemctl", ["is-active", unit]).stdout.hasPrefix("active")
                && FileManager.default.fileExists(atPath: self.xdg + "/bus")
        }
        guard up else {
            throw TestSupportError("\(unit) not active: \(runProgram("/usr/bin/systemctl", ["status", unit]))")
        }
        let bus = asUser(["/usr/bin/busctl", "--user", "--timeout=120", "status"], timeout: 150)
        guard bus.status == 0 else { throw TestSupportError("the user bus does not answer: \(bus)") }
    }

    /// Runs `argv` as the user, with the user's XDG_RUNTIME_DIR (so the user bus is $XDG_RUNTIME_DIR/bus).
    func asUser(_ argv: [String], env: [String: String] = [:], timeout: Double = 60) -> RunResult {
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR": xdg]
        let kv = tag.split(separator: "=", maxSplits: 1)
        environment[String(kv[0])] = String(kv[1])
        environment.merge(env) { $1 }
        return runProgram(
            "/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"] + argv,
            timeout: timeout, environment: environment)
    }

    /// The runtime as the user with --systemd-cgroup and the user's own state root.
    @discardableResult
    func rl(_ args: [String], env: [String: String] = [:], timeout: Double = 60) -> RunResult {
        asUser([Runtime.binary, "--root", stateRoot, "--systemd-cgroup"] + args, env: env, timeout: timeout)
    }

    /// `systemctl --user show UNIT -p ...` (as the user) as a dictionary.
    func userShow(_ unit: String, _ props: [String]) -> [String: String] {
        let r = asUser(["/usr/bin/systemctl", "--user", "show", unit] + props.flatMap { ["-p", $0] })
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    /// `spec --rootless` run by the user, then: `args`, no terminal, linux.resources, and the
    /// cgroupsPath `:swiftlet:ID` (the default slice; the unit `swiftlet-ID.scope` with runc too).
    func rootlessBundle(_ args: [String], id: String, resources: [String: Any] = [:]) throws {
        try? FileManager.default.removeItem(atPath: bundleDir + "/config.json")
        let spec = asUser([Runtime.binary, "spec", "--rootless", "--bundle", bundleDir])
        XCTAssertEqual(spec.status, 0, "spec --rootless: \(spec)")
        var config = try readConfig(bundle: bundleDir)
        var process = config[dict: "process"]
        process["terminal"] = false
        process["args"] = args
        config["process"] = process
        var linux = config[dict: "linux"]
        if !resources.isEmpty { linux["resources"] = resources }
        linux["cgroupsPath"] = ":swiftlet:\(id)"
        config["linux"] = linux
        try writeConfigThrowing(config, to: bundleDir)
    }

    func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? "<missing \(path)>"
    }

    func initPid(_ id: String) -> String? {
        let r = rl(["state", id])
        let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return (obj?["pid"] as? NSNumber).map { "\($0)" }
    }

    func assertNothingLeft(_ id: String, unit: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: stateRoot + "/" + id), "state dir left for \(id)", file: file,
            line: line)
        XCTAssertTrue(
            waitUntil(timeout: 10) { self.userShow(unit, ["LoadState"])["LoadState"] == "not-found" },
            "\(unit) left: \(userShow(unit, ["LoadState", "ActiveState"]))", file: file, line: line)
        let cgroup = "/sys/fs/cgroup\(instance)/user.slice/\(unit)"
        XCTAssertFalse(FileManager.default.fileExists(atPath: cgroup), "cgroup \(cgroup) left", file: file, line: line)
        XCTAssertTrue(
            waitUntil(timeout: 5) { self.taggedProcesses().isEmpty }, "processes left: \(taggedProcesses())",
            file: file, line: line)
    }

    // MARK: - Tests

    /// The scope lands in the user instance (default slice user.slice, as runc's) with the
    /// delegated limits applied; `update` goes through the user bus too; pause, resume and ps work;
    /// `delete` removes the scope.
    func testScopeInUserInstanceWithDelegatedLimitsUpdateAndDelete() throws {
        let id = "rs\(UInt32.random(in: 0...UInt32.max))"
        try rootlessBundle(
            ["sleep", "1000"], id: id,
            resources: ["memory": ["limit": 64 << 20], "pids": ["limit": 40], "cpu": ["shares": 512]])
        let unit = "swiftlet-\(id).scope"
        let run = rl(["run", "-d", "--bundle", bundleDir, id], timeout: 120)
        XCTAssertEqual(run.status, 0, "run -d: \(run)")
        defer { rl(["delete", "--force", id]) }

        let props = userShow(unit, ["ActiveState", "ControlGroup", "Slice", "MemoryMax", "TasksMax", "CPUWeight"])
        XCTAssertEqual(props["ActiveState"], "active")
        XCTAssertEqual(props["Slice"], "user.slice")
        XCTAssertEqual(props["ControlGroup"], "\(instance)/user.slice/\(unit)")
        XCTAssertEqual(props["MemoryMax"], "\(64 << 20)")
        XCTAssertEqual(props["TasksMax"], "40")
        let cg = "/sys/fs/cgroup\(instance)/user.slice/\(unit)"
        XCTAssertEqual(read(cg + "/memory.max"), "\(64 << 20)")
        XCTAssertEqual(read(cg + "/pids.max"), "40")
        XCTAssertEqual(props["CPUWeight"], read(cg + "/cpu.weight"))
        XCTAssertNotEqual(props["CPUWeight"], "[not set]")
        let pid = try XCTUnwrap(initPid(id))
        XCTAssertTrue(read(cg + "/cgroup.procs").split(separator: "\n").contains(Substring(pid)), "init not in \(cg)")

        let update = rl(["update", "--memory", "\(96 << 20)", "--pids-limit", "50", id])
        XCTAssertEqual(update.status, 0, "update: \(update)")
        XCTAssertEqual(read(cg + "/memory.max"), "\(96 << 20)")
        XCTAssertEqual(read(cg + "/pids.max"), "50")
        let updated = userShow(unit, ["MemoryMax", "TasksMax"])
        XCTAssertEqual(updated["MemoryMax"], "\(96 << 20)")
        XCTAssertEqual(updated["TasksMax"], "50")

        // The scope's cgroup is the user's (Delegate=yes): pause, resume and ps work on it.
        XCTAssertEqual(rl(["pause", id]).status, 0)
        XCTAssertEqual(read(cg + "/cgroup.freeze"), "1")
        XCTAssertEqual(rl(["resume", id]).status, 0)
        XCTAssertEqual(read(cg + "/cgroup.freeze"), "0")
        let ps = rl(["ps", id])
        XCTAssertEqual(ps.status, 0, "ps: \(ps)")
        XCTAssertTrue(ps.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains(Substring(pid)), ps.stdout)

        let delete = rl(["delete", "--force", id])
        XCTAssertEqual(delete.status, 0, "delete: \(delete)")
        assertNothingLeft(id, unit: unit)
    }

    /// `features` as the user: the driver works on the user bus here.
    func testFeaturesReportSystemdUser() throws {
        try XCTSkipUnless(Self.isSwiftlet, "runc reports what it was built with")
        let r = asUser([Runtime.binary, "features"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let cgroup = (obj?["linux"] as? [String: Any])?["cgroup"] as? [String: Any]
        XCTAssertEqual(cgroup?["systemdUser"] as? Bool, true, r.stdout)
    }

    /// A limit on a controller user@.service does not delegate (cpuset, io): an error naming the
    /// limit, and no unit, cgroup or state dir left.
    func testUndelegatedControllerFailsNamingTheLimitAndLeavesNothing() throws {
        let delegated = read("/sys/fs/cgroup\(instance)/cgroup.controllers").split(separator: " ")
        let cases: [(String, String, [String: Any])] = [
            ("cpuset", "cpu.cpus", ["cpu": ["cpus": "0"]]), ("io", "blockIO", ["blockIO": ["weight": 500]]),
        ]
        for (controller, field, resources) in cases where !delegated.contains(Substring(controller)) {
            let id = "rs\(UInt32.random(in: 0...UInt32.max))"
            try rootlessBundle(["sleep", "1000"], id: id, resources: resources)
            let run = rl(["run", "-d", "--bundle", bundleDir, id], timeout: 120)
            XCTAssertNotEqual(run.status, 0, "a \(controller) limit ran without the controller: \(run)")
            if Self.isSwiftlet {
                XCTAssertTrue(
                    run.stderr.contains("linux.resources.\(field)") && run.stderr.contains("\(controller) controller"),
                    run.stderr)
            }
            assertNothingLeft(id, unit: "swiftlet-\(id).scope")
        }
    }

    /// No user bus at $XDG_RUNTIME_DIR/bus: an error naming the address, nothing left.
    func testUnreachableUserBusIsAClearErrorAndLeavesNothing() throws {
        let id = "rs\(UInt32.random(in: 0...UInt32.max))"
        try rootlessBundle(["sleep", "1000"], id: id)
        let run = rl(["run", "-d", "--bundle", bundleDir, id], env: ["XDG_RUNTIME_DIR": dir])
        XCTAssertNotEqual(run.status, 0, "ran without a user bus: \(run)")
        if Self.isSwiftlet { XCTAssertTrue(run.stderr.contains("unix:path=\(dir)/bus"), run.stderr) }
        assertNothingLeft(id, unit: "swiftlet-\(id).scope")
    }
}
