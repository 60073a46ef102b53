import Foundation
import TestSupport
import XCTest

/// Rootless containers (issue 15 item 2, Spec/cli.md "Rootless"): the runtime run by a normal user
/// (made with useradd when missing), with `spec --rootless`'s config, a private rootfs owned by that
/// user and a state root of its own. On this host nothing delegates cgroups to the user, so they are
/// skipped. The same tests pass with runc 1.3.6 as SWIFTLET_BINARY.
final class RootlessTests: ContainerTestCase {
    static let userName = "swiftlet-rl"
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    /// Owned by the user: bundle (config.json, rootfs/) and state/ (the --root).
    var dir = ""
    var bundleDir: String { dir + "/bundle" }
    var stateRoot: String { dir + "/state" }
    static let isSwiftlet = runProgram(Runtime.binary, ["--version"]).stdout.hasPrefix("swiftlet")

    override func setUpWithError() throws {
        try super.setUpWithError()
        (uid, gid) = try RootlessTests.ensureUser()
        dir = try RootlessTests.userDir(uid: uid, gid: gid)
        addTeardownBlock { [dir, stateRoot] in
            // Whatever a failed test left running, deleted by its owner.
            for id in (try? FileManager.default.contentsOfDirectory(atPath: stateRoot)) ?? [] {
                _ = self.asUser([Runtime.binary, "--root", stateRoot, "delete", "--force", id], timeout: 15)
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        try FileManager.default.createDirectory(atPath: bundleDir, withIntermediateDirectories: false)
        let cp = runProgram("/bin/cp", ["-a", Runtime.rootfs, bundleDir + "/rootfs"])
        XCTAssertEqual(cp.status, 0, cp.stderr)
        let chown = runProgram("/bin/chown", ["-R", "\(uid):\(gid)", dir])
        XCTAssertEqual(chown.status, 0, chown.stderr)
    }

    /// The test user's uid and gid; `useradd` makes it (with a home, and subordinate id ranges where
    /// useradd adds them) the first time.
    static func ensureUser() throws -> (UInt32, UInt32) {
        if getpwnam(userName) == nil {
            let r = runProgram("/usr/sbin/useradd", ["--create-home", "--shell", "/bin/sh", userName])
            guard r.status == 0 || getpwnam(userName) != nil else {
                throw TestSupportError("useradd \(userName): \(r)")
            }
        }
        guard let pw = getpwnam(userName) else { throw TestSupportError("no user \(userName)") }
        return (pw.pointee.pw_uid, pw.pointee.pw_gid)
    }

    /// A fresh 0700 directory in /tmp owned by the user (the test session dir is root's own).
    static func userDir(uid: UInt32, gid: UInt32) throws -> String {
        var template = Array("/tmp/swiftlet-rootless.XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw TestSupportError("mkdtemp: \(errno)") }
        let path = String(cString: p)
        guard chown(path, uid, gid) == 0 else { throw TestSupportError("chown \(path): \(errno)") }
        return path
    }

    /// Runs `argv` as the test user (no capabilities, no supplementary groups) with a minimal
    /// environment plus the test's tag and `env`.
    func asUser(_ argv: [String], env: [String: String] = [:], timeout: Double = 30) -> RunResult {
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let kv = tag.split(separator: "=", maxSplits: 1)
        environment[String(kv[0])] = String(kv[1])
        environment.merge(env) { $1 }
        return runProgram(
            "/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"] + argv,
            timeout: timeout, environment: environment)
    }

    /// The runtime as the test user with the user's own state root.
    @discardableResult
    func rl(_ args: [String], timeout: Double = 30) -> RunResult {
        asUser([Runtime.binary, "--root", stateRoot] + args, timeout: timeout)
    }

    /// `spec --rootless` run by the user, then edited (as root, the file stays readable): no
    /// terminal, `args`, the private rootfs.
    func rootlessBundle(_ args: [String], _ edit: (inout [String: Any]) -> Void = { _ in }) throws {
        try? FileManager.default.removeItem(atPath: bundleDir + "/config.json")
        let spec = asUser([Runtime.binary, "spec", "--rootless", "--bundle", bundleDir])
        XCTAssertEqual(spec.status, 0, "spec --rootless: \(spec)")
        var config = try readConfig(bundle: bundleDir)
        var process = config[dict: "process"]
        process["terminal"] = false
        process["args"] = args
        config["process"] = process
        edit(&config)
        try writeConfigThrowing(config, to: bundleDir)
    }

    func assertNothingLeftRootless(_ id: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: stateRoot + "/" + id), "state dir left for \(id)", file: file,
            line: line)
        XCTAssertTrue(
            waitUntil(timeout: 5) { self.taggedProcesses().isEmpty }, "processes left: \(taggedProcesses())",
            file: file, line: line)
        XCTAssertEqual(cgroupsLeft(id), [], "cgroups left", file: file, line: line)
        XCTAssertEqual(mountsContaining(dir), [], "host mounts left", file: file, line: line)
    }

    // MARK: - Tests

    /// The issue's walk-through: `spec --rootless`, then run -d, state, list, exec, kill, delete.
    func testSpecRootlessContainerLifecycle() throws {
        try rootlessBundle(["sleep", "1000"])
        let id = "rl\(UInt32.random(in: 0...UInt32.max))"
        let run = rl(["run", "-d", "--bundle", bundleDir, id])
        XCTAssertEqual(run.status, 0, "run -d: \(run)")
        defer { rl(["delete", "--force", id]) }

        let state = rl(["state", id])
        XCTAssertEqual(state.status, 0, "state: \(state)")
        XCTAssertTrue(state.stdout.contains("\"running\""), state.stdout)
        let list = rl(["list", "-q"])
        XCTAssertEqual(list.stdout.split(separator: "\n").map(String.init), [id], "list: \(list)")

        // Root in the container is the user outside; no cgroup was made for it.
        let exec = rl(["exec", id, "sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/self/setgroups"])
        XCTAssertEqual(exec.status, 0, "exec: \(exec)")
        let words = exec.stdout.split(whereSeparator: { $0 == "\n" || $0 == " " }).map(String.init)
        XCTAssertEqual(words, ["0", "0", String(uid), "1", "deny"], exec.stdout)
        XCTAssertEqual(cgroupsLeft(id), [])

        XCTAssertEqual(rl(["kill", id, "KILL"]).status, 0)
        XCTAssertTrue(
            waitUntil(timeout: 10) { self.rl(["state", id]).stdout.contains("\"stopped\"") }, "not stopped after kill")
        let delete = rl(["delete", id])
        XCTAssertEqual(delete.status, 0, "delete: \(delete)")
        XCTAssertEqual(rl(["list", "-q"]).stdout.split(separator: "\n"), [])
        assertNothingLeftRootless(id)
    }

    /// What runc does for rootless inside the container: setgroups denied (no setgroups call), device
    /// nodes bind-mounted from the host (no mknod), the host's /sys bound read-only, the cgroup
    /// mount showing the (v1) hierarchies the container's processes are in.
    func testRootlessContainerGetsBoundDevicesAndSys() throws {
        let script =
            "test -c /dev/null && echo null-ok; echo x > /dev/null && echo write-ok; "
            + "grep -q ' /sys ro,' /proc/self/mountinfo && echo sys-ro; test -d /sys/kernel && echo sys-ok; "
            + "cat /proc/self/setgroups; test -r /sys/fs/cgroup/pids/cgroup.procs -o -r /sys/fs/cgroup/cgroup.procs "
            + "-o ! -e /sys/fs/cgroup/pids && echo cgroup-ok"
        try rootlessBundle(["sh", "-c", script])
        let id = "rl\(UInt32.random(in: 0...UInt32.max))"
        let run = rl(["run", "--bundle", bundleDir, id])
        XCTAssertEqual(run.status, 0, "run: \(run)")
        XCTAssertEqual(
            run.stdout.split(separator: "\n").map(String.init),
            ["null-ok", "write-ok", "sys-ro", "sys-ok", "deny", "cgroup-ok"], run.description)
        assertNothingLeftRootless(id)
    }

    /// A `sysfs` mount (not `spec --rootless`'s bind of /sys): with a network namespace of the
    /// container's own it is a new sysfs; without one the kernel refuses sysfs in the user namespace,
    /// and swiftlet binds the host's /sys (recursively, with the mount's flags) as crun does, where
    /// runc fails.
    func testSysfsMountWithAndWithoutNetworkNamespace() throws {
        for withNetns in [true, false] {
            try rootlessBundle(["sh", "-c", "grep ' /sys ' /proc/self/mountinfo; echo $(ls /sys/class/net)"]) {
                config in
                config["mounts"] = (config["mounts"] as? [[String: Any]] ?? []).map { m in
                    m["destination"] as? String != "/sys"
                        ? m
                        : [
                            "destination": "/sys", "type": "sysfs", "source": "sysfs",
                            "options": ["nosuid", "noexec", "nodev", "ro"],
                        ]
                }
                var linux = config[dict: "linux"]
                if withNetns {
                    linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []) + [["type": "network"]]
                }
                config["linux"] = linux
            }
            let id = "rl\(UInt32.random(in: 0...UInt32.max))"
            let run = rl(["run", "--bundle", bundleDir, id])
            defer { assertNothingLeftRootless(id) }
            if !withNetns && !RootlessTests.isSwiftlet {
                XCTAssertNotEqual(
                    run.status, 0, "runc mounts no sysfs in a user namespace without its network namespace")
                continue
            }
            XCTAssertEqual(run.status, 0, "run (network namespace: \(withNetns)): \(run)")
            let line = run.stdout.split(separator: "\n").first.map(String.init) ?? ""
            let fields = line.split(separator: " ").map(String.init)
            XCTAssertTrue(fields.count > 5 && fields[5].hasPrefix("ro,"), "/sys not read-only: \(line)")
            XCTAssertTrue(line.contains(" - sysfs "), line)
            // A new sysfs shows the container's network namespace (only lo); the host's /sys the host's.
            let hostNet = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).sorted()
            let seen = run.stdout.split(separator: "\n").last.map { $0.split(separator: " ").map(String.init) } ?? []
            XCTAssertEqual(seen, withNetns ? ["lo"] : hostNet, run.stdout)
        }
    }

    /// A limit needs a cgroup the user cannot make here: a clear error naming the limit, nothing left.
    func testLimitWithoutDelegatedCgroupFailsNamingIt() throws {
        for (name, resources) in [("memory", ["memory": ["limit": 64 << 20]]), ("pids", ["pids": ["limit": 64]])]
            as [(String, [String: Any])]
        {
            try rootlessBundle(["true"]) { config in
                var linux = config[dict: "linux"]
                linux["resources"] = resources
                config["linux"] = linux
            }
            let id = "rl\(UInt32.random(in: 0...UInt32.max))"
            let run = rl(["run", "--bundle", bundleDir, id])
            XCTAssertNotEqual(run.status, 0, "a \(name) limit without a cgroup ran: \(run)")
            XCTAssertTrue(run.stderr.contains("cannot set \(name) limit"), run.stderr)
            assertNothingLeftRootless(id)
        }
    }

    /// `--rootless` is not ignored: `false` makes the cgroup permission error fatal (nothing left),
    /// `true` skips the cgroups as `auto` does for a normal user.
    func testRootlessFlagDecidesWhetherCgroupsAreSkipped() throws {
        try rootlessBundle(["true"])
        let id = "rl\(UInt32.random(in: 0...UInt32.max))"
        let strict = asUser([
            Runtime.binary, "--rootless", "false", "--root", stateRoot, "run", "--bundle", bundleDir, id,
        ])
        XCTAssertNotEqual(strict.status, 0, "--rootless false ran without a cgroup: \(strict)")
        XCTAssertTrue(strict.stderr.lowercased().contains("permission denied"), strict.stderr)
        assertNothingLeftRootless(id)
        let lenient = asUser([
            Runtime.binary, "--rootless", "true", "--root", stateRoot, "run", "--bundle", bundleDir, id,
        ])
        XCTAssertEqual(lenient.status, 0, "--rootless true: \(lenient)")
        assertNothingLeftRootless(id)
    }

    /// Without --root the state lives in $XDG_RUNTIME_DIR/<runtime>, made 0700 with the sticky bit.
    func testStateRootDefaultsToXDGRuntimeDir() throws {
        try rootlessBundle(["sleep", "1000"])
        let xdg = dir + "/xdg"
        try FileManager.default.createDirectory(atPath: xdg, withIntermediateDirectories: false)
        XCTAssertEqual(chown(xdg, uid, gid), 0)
        let env = ["XDG_RUNTIME_DIR": xdg]
        let id = "rl\(UInt32.random(in: 0...UInt32.max))"
        let run = asUser([Runtime.binary, "run", "-d", "--bundle", bundleDir, id], env: env)
        XCTAssertEqual(run.status, 0, "run -d: \(run)")
        let root = xdg + (RootlessTests.isSwiftlet ? "/swiftlet" : "/runc")
        defer { _ = asUser([Runtime.binary, "delete", "--force", id], env: env) }
        var st = stat()
        XCTAssertEqual(stat(root, &st), 0, "\(root) not made")
        XCTAssertEqual(st.st_mode & 0o7777, 0o1700)
        XCTAssertEqual(st.st_uid, uid)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/" + id), "no state for \(id) in \(root)")
        XCTAssertEqual(asUser([Runtime.binary, "list", "-q"], env: env).stdout, id + "\n")
        XCTAssertEqual(asUser([Runtime.binary, "delete", "--force", id], env: env).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/" + id))
    }

    /// Root inside a user namespace (as under rootless podman: `unshare -Ur`, only the user's own id
    /// mapped) with a config that has no user namespace of its own: the runtime notices the user
    /// namespace, binds /dev nodes instead of mknod and skips the cgroups it cannot make.
    func testRootInUserNamespaceWithoutOwnUserNamespace() throws {
        try rootlessBundle(["sh", "-c", "test -c /dev/null && echo x > /dev/null && cat /proc/self/uid_map"]) {
            config in
            var linux = config[dict: "linux"]
            linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []).filter {
                $0["type"] as? String != "user"
            }
            linux["uidMappings"] = nil
            linux["gidMappings"] = nil
            config["linux"] = linux
        }
        let id = "rl\(UInt32.random(in: 0...UInt32.max))"
        let run = asUser([
            "/usr/bin/unshare", "-Ur", Runtime.binary, "--root", stateRoot, "run", "--bundle", bundleDir, id,
        ])
        XCTAssertEqual(run.status, 0, "run in a user namespace: \(run)")
        XCTAssertEqual(run.stdout.split(separator: " ").filter { !$0.isEmpty }.joined(separator: " "), "0 \(uid) 1\n")
        assertNothingLeftRootless(id)
    }

    /// No cgroup here (none delegated) and no PID namespace of its own: the container runs, with a
    /// warning (runc 1.2+: nothing could find and kill all its processes); with its own PID
    /// namespace, no warning. runc 1.1 and crun have no such warning.
    func testNoCgroupAndNoPidNamespaceWarns() throws {
        let version = runProgram(Runtime.binary, ["--version"]).stdout
        let warns =
            RootlessTests.isSwiftlet || (version.hasPrefix("runc version ") && !version.hasPrefix("runc version 1.1."))
        let warning = "no cgroup and no private pid namespace"
        for ownPid in [false, true] {
            try rootlessBundle(["true"]) { config in
                var linux = config[dict: "linux"]
                if !ownPid {
                    linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []).filter {
                        $0["type"] as? String != "pid"
                    }
                    // A new proc of the host's PID namespace cannot be mounted from the user
                    // namespace: the host's /proc is bound instead.
                    config["mounts"] = (config["mounts"] as? [[String: Any]] ?? []).map { m in
                        m["destination"] as? String != "/proc"
                            ? m
                            : [
                                "destination": "/proc", "type": "bind", "source": "/proc",
                                "options": ["rbind", "nosuid", "noexec", "nodev"],
                            ]
                    }
                }
                config["linux"] = linux
            }
            let id = "rl\(UInt32.random(in: 0...UInt32.max))"
            let run = rl(["run", "--bundle", bundleDir, id])
            XCTAssertEqual(run.status, 0, "run (own pid namespace: \(ownPid)): \(run)")
            XCTAssertEqual(
                run.stderr.lowercased().contains(warning), warns && !ownPid,
                "own pid namespace: \(ownPid): \(run.stderr)")
            assertNothingLeftRootless(id)
        }
    }

    /// runc's rule: no additional groups in a rootless container, from the config or from exec.
    func testAdditionalGroupsAreRefused() throws {
        try rootlessBundle(["sleep", "1000"]) { config in
            var process = config[dict: "process"]
            var user = process[dict: "user"]
            user["additionalGids"] = [5]
            process["user"] = user
            config["process"] = process
        }
        let id = "rl\(UInt32.random(in: 0...UInt32.max))"
        let run = rl(["run", "-d", "--bundle", bundleDir, id])
        XCTAssertNotEqual(run.status, 0, "ran with additionalGids: \(run)")
        XCTAssertTrue(run.stderr.contains("cannot set any additional groups in a rootless container"), run.stderr)
        assertNothingLeftRootless(id)

        try rootlessBundle(["sleep", "1000"])
        XCTAssertEqual(rl(["run", "-d", "--bundle", bundleDir, id]).status, 0)
        defer { rl(["delete", "--force", id]) }
        let exec = rl(["exec", "--additional-gids", "5", id, "true"])
        XCTAssertEqual(exec.status, 255, exec.description)
        XCTAssertTrue(exec.stderr.contains("cannot set any additional groups in a rootless container"), exec.stderr)
    }
}
