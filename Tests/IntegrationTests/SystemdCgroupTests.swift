import Foundation
import TestSupport
import XCTest

/// What the systemd driver's tests share: systemd's view (`systemctl show`) and the cgroup files.
class SystemdTestCase: ContainerTestCase {
    static var systemdIsInit: Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: "/run/systemd/system", isDirectory: &isDir) && isDir.boolValue
    }

    func newID() -> String { "sd\(UInt32.random(in: 0...UInt32.max))" }

    func sd(_ args: [String], timeout: Double = 60) -> RunResult { sl(["--systemd-cgroup"] + args, timeout: timeout) }

    /// `systemctl show UNIT -p ...` as a dictionary.
    func show(_ unit: String, _ props: [String]) -> [String: String] {
        let r = runProgram("/usr/bin/systemctl", ["show", unit] + props.flatMap { ["-p", $0] })
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }

    func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? "<missing \(path)>"
    }

    func unitGone(_ unit: String) -> Bool {
        waitUntil(timeout: 10) { self.show(unit, ["LoadState"])["LoadState"] == "not-found" }
    }

    /// A bundle running `args` (`sleep 1000`) with cgroupsPath and resources; `edit` changes the rest.
    func sleeper(
        _ cgroupsPath: String, resources: [String: Any] = [:], args: [String] = ["sleep", "1000"],
        edit: (inout [String: Any]) -> Void = { _ in }
    ) throws -> String {
        try bundle { spec in
            ContainerTestCase.args(args)(&spec)
            var linux = spec[dict: "linux"]
            linux["cgroupsPath"] = cgroupsPath
            if !resources.isEmpty { linux["resources"] = resources }
            spec["linux"] = linux
            edit(&spec)
        }
    }

    func initPid(_ id: String) -> Int32? {
        let r = sl(["state", id])
        guard let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            return nil
        }
        return (obj["pid"] as? NSNumber)?.int32Value
    }

    /// Every `KEY=` line of `systemctl show UNIT -p KEY` (DeviceAllow has one line per entry).
    func showAll(_ unit: String, _ key: String) -> [String] {
        runProgram("/usr/bin/systemctl", ["show", unit, "-p", key]).stdout.split(separator: "\n")
            .filter { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    func assertNoUnitOrCgroupLeft(_ unit: String, cgroup: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(
            unitGone(unit), "\(unit) left: \(show(unit, ["LoadState", "ActiveState"]))", file: file, line: line)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup" + cgroup), "cgroup \(cgroup) left", file: file,
            line: line)
    }
}

/// The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: run where systemd is
/// PID 1 on pure cgroup v2 (`Scripts/vm-test.sh --systemd`, a lane of Scripts/test.sh); skipped
/// elsewhere. Every check reads both `systemctl show` and the cgroup files.
final class SystemdCgroupTests: SystemdTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        // These two run everywhere; the others need systemd.
        if name.contains("testFeatures") || name.contains("testUnreachableBus") { return }
        try XCTSkipUnless(Self.systemdIsInit, "systemd is not PID 1 here (run them with Scripts/vm-test.sh --systemd)")
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers"),
            "the systemd driver's resources are tested on pure cgroup v2")
    }

    func testScopeWithResourcesAndEveryVerbThenDelete() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let b = try sleeper(
            "system.slice:swiftlet:\(id)",
            resources: [
                "memory": ["limit": 64 << 20], "pids": ["limit": 40],
                "cpu": ["shares": 512, "quota": 50_000, "period": 100_000],
            ])
        let run = sd(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(run.status, 0, run.stderr)
        defer { sd(["delete", "-f", id]) }
        let props = show(
            unit,
            [
                "ActiveState", "Delegate", "MemoryMax", "TasksMax", "CPUWeight", "CPUQuotaPerSecUSec", "ControlGroup",
                "Slice",
            ])
        XCTAssertEqual(props["ActiveState"], "active")
        XCTAssertEqual(props["Delegate"], "yes")
        XCTAssertEqual(props["Slice"], "system.slice")
        XCTAssertEqual(props["MemoryMax"], "\(64 << 20)")
        XCTAssertEqual(props["TasksMax"], "40")
        XCTAssertEqual(props["CPUQuotaPerSecUSec"], "500ms")
        XCTAssertEqual(props["ControlGroup"], "/system.slice/\(unit)")
        let dir = "/sys/fs/cgroup/system.slice/\(unit)"
        XCTAssertEqual(read(dir + "/memory.max"), "\(64 << 20)")
        XCTAssertEqual(read(dir + "/pids.max"), "40")
        XCTAssertEqual(read(dir + "/cpu.max"), "50000 100000")
        // systemd's CPUWeight is what the cgroup file holds (the shares conversion, runc's in both).
        XCTAssertEqual(props["CPUWeight"], read(dir + "/cpu.weight"))
        XCTAssertNotEqual(props["CPUWeight"], "[not set]")
        guard let pid = initPid(id) else { return XCTFail("no init pid") }
        XCTAssertEqual(read("/proc/\(pid)/cgroup"), "0::/system.slice/\(unit)")

        // The other verbs work on the scope's directory.
        let exec = sl(["exec", id, "true"])
        XCTAssertEqual(exec.status, 0, exec.stderr)
        let ps = sl(["ps", id])
        XCTAssertEqual(ps.status, 0, ps.stderr)
        XCTAssertTrue(ps.stdout.contains("sleep"), ps.stdout)
        XCTAssertEqual(sd(["pause", id]).status, 0)
        XCTAssertEqual(read(dir + "/cgroup.freeze"), "1")
        XCTAssertEqual(sd(["resume", id]).status, 0)
        XCTAssertEqual(read(dir + "/cgroup.freeze"), "0")
        let stats = sd(["events", "--stats", id])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        XCTAssertTrue(stats.stdout.contains("\"pids\""), stats.stdout)

        // update: systemd's properties (SetUnitProperties, runtime) and the files.
        let update = sd(["update", "--memory", "\(128 << 20)", "--pids-limit", "50", id])
        XCTAssertEqual(update.status, 0, update.stderr)
        let after = show(unit, ["MemoryMax", "TasksMax"])
        XCTAssertEqual(after["MemoryMax"], "\(128 << 20)")
        XCTAssertEqual(after["TasksMax"], "50")
        XCTAssertEqual(read(dir + "/memory.max"), "\(128 << 20)")
        XCTAssertEqual(read(dir + "/pids.max"), "50")

        // kill --all, then delete: the scope and its cgroup are gone.
        XCTAssertEqual(sd(["kill", "--all", id, "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.sl(["state", id]).stdout.contains("\"stopped\"") })
        let del = sd(["delete", id])
        XCTAssertEqual(del.status, 0, del.stderr)
        XCTAssertTrue(unitGone(unit), "\(unit) is still loaded: \(show(unit, ["LoadState", "ActiveState"]))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir))
    }

    /// kubelet's layout: the pod slice's parents are made by systemd from its name.
    func testKubeletNestedSlice() throws {
        let id = newID()
        let pod = "kubepods-burstable-pod\(id).slice"
        let unit = "cri-containerd-\(id).scope"
        defer { _ = runProgram("/usr/bin/systemctl", ["stop", pod]) }
        let b = try sleeper("\(pod):cri-containerd:\(id)", resources: ["memory": ["limit": 32 << 20]])
        let run = sd(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(run.status, 0, run.stderr)
        let cgroup = "/kubepods.slice/kubepods-burstable.slice/\(pod)/\(unit)"
        let props = show(unit, ["ActiveState", "ControlGroup", "Slice", "MemoryMax"])
        XCTAssertEqual(props["ActiveState"], "active")
        XCTAssertEqual(props["ControlGroup"], cgroup)
        XCTAssertEqual(props["Slice"], pod)
        XCTAssertEqual(props["MemoryMax"], "\(32 << 20)")
        XCTAssertEqual(read("/sys/fs/cgroup\(cgroup)/memory.max"), "\(32 << 20)")
        if let pid = initPid(id) {
            XCTAssertEqual(read("/proc/\(pid)/cgroup"), "0::\(cgroup)")
        } else {
            XCTFail("no init pid")
        }
        XCTAssertEqual(sd(["delete", "-f", id]).status, 0)
        XCTAssertTrue(unitGone(unit))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup\(cgroup)"))
    }

    /// A systemd re-exec keeps the unit; the container is still managed and deleted normally.
    func testDaemonReexecLosesNothing() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let b = try sleeper("system.slice:swiftlet:\(id)", resources: ["pids": ["limit": 30]])
        XCTAssertEqual(sd(["run", "-d", "--bundle", b, id]).status, 0)
        let reexec = runProgram("/usr/bin/systemctl", ["daemon-reexec"], timeout: 120)
        XCTAssertEqual(reexec.status, 0, reexec.stderr)
        let props = show(unit, ["ActiveState", "TasksMax"])
        XCTAssertEqual(props["ActiveState"], "active")
        XCTAssertEqual(props["TasksMax"], "30")
        XCTAssertEqual(sd(["update", "--pids-limit", "31", id]).status, 0)
        XCTAssertEqual(show(unit, ["TasksMax"])["TasksMax"], "31")
        XCTAssertEqual(sd(["delete", "-f", id]).status, 0)
        XCTAssertTrue(unitGone(unit))
    }

    /// linux.resources.devices as DevicePolicy=strict + DeviceAllow (runc's conversion), the
    /// default devices included; systemd's eBPF program and ours both enforce them in the scope.
    func testDeviceRulesBecomeDevicePolicyAndDeviceAllow() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let devices: [[String: Any]] = [
            ["allow": false, "access": "rwm"], ["allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"],
        ]
        let b = try sleeper("system.slice:swiftlet:\(id)", resources: ["devices": devices]) { spec in
            // A device the rules do not allow (c 1:11), bound in from the host: not readable.
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]])
            spec["mounts"] = mounts
        }
        let run = sd(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(run.status, 0, run.stderr)
        defer { sd(["delete", "-f", id]) }
        XCTAssertEqual(show(unit, ["DevicePolicy"])["DevicePolicy"], "strict")
        let allow = Set(showAll(unit, "DeviceAllow"))
        for entry in ["/dev/char/1:3 rwm", "/dev/char/1:5 rwm", "/dev/char/5:2 rwm"] {
            XCTAssertTrue(allow.contains(entry), "DeviceAllow lacks \(entry): \(allow)")
        }
        // The config's own rule (runc 1.1.5 leaves it out of DeviceAllow; runc 1.3 sends it).
        if !runProgram(Runtime.binary, ["--version"]).stdout.contains("runc version 1.1.") {
            XCTAssertTrue(allow.contains("/dev/char/10:229 rw"), "DeviceAllow lacks /dev/char/10:229 rw: \(allow)")
        }
        // c 136:* (pts): its /proc/devices group (swiftlet, runc 1.1) or its number (runc 1.3).
        XCTAssertTrue(allow.contains("char-pts rwm") || allow.contains("char-136 rwm"), "\(allow)")
        XCTAssertFalse(allow.contains { $0.hasPrefix("/dev/char/1:11 ") }, "\(allow)")
        // In the scope: an allowed device reads, the other one does not.
        let ok = sl(["exec", id, "head", "-c", "1", "/dev/zero"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let denied = sl(["exec", id, "head", "-c", "1", "/kmsg"])
        XCTAssertNotEqual(denied.status, 0, "/kmsg (c 1:11) was readable")
        XCTAssertTrue(denied.stderr.contains("Operation not permitted"), denied.stderr)
        // update sends the list again: it replaces the unit's list, it does not grow it.
        XCTAssertEqual(sd(["update", "--pids-limit", "60", id]).status, 0)
        XCTAssertEqual(Set(showAll(unit, "DeviceAllow")), allow)
        XCTAssertEqual(showAll(unit, "DeviceAllow").count, allow.count)
        XCTAssertEqual(read("/sys/fs/cgroup/system.slice/\(unit)/pids.max"), "60")
    }

    /// `org.systemd.property.NAME` annotations become unit properties (as runc); a resource one
    /// (MemoryHigh) shows in the cgroup file too. A bad one is refused naming it, nothing left.
    func testSystemdPropertyAnnotations() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let b = try sleeper("system.slice:swiftlet:\(id)") { spec in
            spec["annotations"] = [
                "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
                "org.systemd.property.CollectMode": "'inactive-or-failed'",
                "org.systemd.property.MemoryHigh": "uint64 50331648",
            ]
        }
        let run = sd(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(run.status, 0, run.stderr)
        defer { sd(["delete", "-f", id]) }
        let props = show(unit, ["TimeoutStopUSec", "CollectMode", "MemoryHigh"])
        XCTAssertEqual(props["TimeoutStopUSec"], "2min 3.456789s")
        XCTAssertEqual(props["CollectMode"], "inactive-or-failed")
        XCTAssertEqual(props["MemoryHigh"], "50331648")
        XCTAssertEqual(read("/sys/fs/cgroup/system.slice/\(unit)/memory.high"), "50331648")
        XCTAssertEqual(sd(["delete", "-f", id]).status, 0)
        XCTAssertTrue(unitGone(unit))

        for (key, value) in [
            ("org.systemd.property.Bad-Name", "1"), ("org.systemd.property.CollectMode", "'unterminated"),
        ] {
            let bad = newID()
            let badUnit = "swiftlet-\(bad).scope"
            let bb = try sleeper("system.slice:swiftlet:\(bad)") { $0["annotations"] = [key: value] }
            let r = sd(["run", "-d", "--bundle", bb, bad])
            XCTAssertNotEqual(r.status, 0, "\(key)=\(value) accepted")
            XCTAssertTrue(r.stderr.contains(key), "the error names \(key): \(r.stderr)")
            assertNothingLeft(bad)
            assertNoUnitOrCgroupLeft(badUnit, cgroup: "/system.slice/\(badUnit)")
        }
    }

    /// checkpoint stops the unit with the container; `restore` with the global --systemd-cgroup
    /// starts a new unit (criu in it, so the restored processes are too), with its resources.
    func testCheckpointAndRestoreIntoANewUnit() throws {
        guard let criu = ProcessInfo.processInfo.environment["SWIFTLET_CRIU"], !criu.isEmpty else {
            throw XCTSkip("SWIFTLET_CRIU is not set: Scripts/install-criu.sh prints the criu to use")
        }
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let cgroup = "/system.slice/\(unit)"
        let b = try sleeper(
            "system.slice:swiftlet:\(id)", resources: ["pids": ["limit": 42]],
            args: ["sh", "-c", "exec </dev/null >/dev/null 2>&1; exec sleep 1000"])
        XCTAssertEqual(sd(["run", "-d", "--bundle", b, id]).status, 0)
        let img = try makeTempDir(prefix: "swiftlet-criu-img.")
        let c = sl(["--criu", criu, "--systemd-cgroup", "checkpoint", "--image-path", img, id], timeout: 120)
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(unitGone(unit), "\(unit) left after checkpoint")

        let r = sl(
            ["--criu", criu, "--systemd-cgroup", "restore", "-d", "--image-path", img, "--bundle", b, id], timeout: 120)
        XCTAssertEqual(r.status, 0, r.stderr)
        defer { sd(["delete", "-f", id]) }
        let props = show(unit, ["ActiveState", "ControlGroup", "TasksMax"])
        XCTAssertEqual(props["ActiveState"], "active")
        XCTAssertEqual(props["ControlGroup"], cgroup)
        XCTAssertEqual(props["TasksMax"], "42")
        XCTAssertEqual(read("/sys/fs/cgroup\(cgroup)/pids.max"), "42")
        guard let pid = initPid(id) else { return XCTFail("no init pid after restore") }
        XCTAssertEqual(read("/proc/\(pid)/cgroup"), "0::\(cgroup)")
        XCTAssertEqual(sd(["delete", "-f", id]).status, 0)
        assertNothingLeft(id)
        assertNoUnitOrCgroupLeft(unit, cgroup: cgroup)
    }

    // MARK: - Failure paths: a clear error, nothing left

    func testCgroupsPathNotSliceColonPrefixColonNameIsRefused() throws {
        for path in ["/swiftlet/abc", "system.slice:abc", "a.slice:b:c:d"] {
            let id = newID()
            let b = try sleeper(path)
            let r = sd(["run", "-d", "--bundle", b, id])
            XCTAssertNotEqual(r.status, 0, "\(path) accepted")
            XCTAssertTrue(r.stderr.contains(path), "the error names \(path): \(r.stderr)")
            assertNothingLeft(id)
        }
    }

    func testSliceNamesRejected() throws {
        // Ours (as runc's ExpandSlice) and systemd's own (a character unit names cannot have).
        for slice in ["bad--name.slice", "nodot", "bad%name.slice"] {
            let id = newID()
            let unit = "swiftlet-\(id).scope"
            let b = try sleeper("\(slice):swiftlet:\(id)")
            let r = sd(["run", "-d", "--bundle", b, id])
            XCTAssertNotEqual(r.status, 0, "\(slice) accepted")
            if isSwiftlet {
                XCTAssertTrue(
                    r.stderr.contains(slice) || r.stderr.contains(unit),
                    "the error names the slice or unit: \(r.stderr)")
            }
            assertNothingLeft(id)
            XCTAssertTrue(unitGone(unit), "\(unit) left")
        }
    }

    /// A unit of that name exists already (another container's): a clear error, the other unit
    /// and container untouched. (runc 1.1 joins the existing unit instead; runc 1.3 refuses.)
    func testUnitThatExistsAlreadyIsAnError() throws {
        let first = newID()
        let second = newID()
        let unit = "swiftlet-shared\(first).scope"
        let path = "system.slice:swiftlet:shared\(first)"
        XCTAssertEqual(sd(["run", "-d", "--bundle", try sleeper(path), first]).status, 0)
        defer { sd(["delete", "-f", first]) }
        let r = sd(["run", "-d", "--bundle", try sleeper(path), second])
        guard isSwiftlet || r.status != 0 else {
            // runc 1.1 puts the second container into the first one's unit, and deleting either
            // stops that unit: a deliberate difference (Spec/cli.md). runc 1.3 refuses (its cgroup
            // is not empty).
            sd(["delete", "-f", second])
            return
        }
        XCTAssertNotEqual(r.status, 0, "a second container joined \(unit)")
        if isSwiftlet {
            XCTAssertTrue(r.stderr.contains(unit) && r.stderr.contains("org.freedesktop.systemd1.UnitExists"), r.stderr)
        }
        assertNothingLeft(second)
        XCTAssertEqual(show(unit, ["ActiveState"])["ActiveState"], "active")
        XCTAssertTrue(sl(["state", first]).stdout.contains("\"running\""))
        XCTAssertEqual(sd(["delete", "-f", first]).status, 0)
        XCTAssertTrue(unitGone(unit))
    }

    /// init dies before the unit is made (a hook fails after it): the unit is stopped again.
    func testFailureAfterTheUnitStartedLeavesNoUnit() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let b = try sleeper("system.slice:swiftlet:\(id)") { $0["hooks"] = ["createRuntime": [["path": "/bin/false"]]] }
        let r = sd(["run", "-d", "--bundle", b, id])
        XCTAssertNotEqual(r.status, 0)
        assertNothingLeft(id)
        assertNoUnitOrCgroupLeft(unit, cgroup: "/system.slice/\(unit)")
    }

    /// Without systemd or its bus (this build host; in the systemd VM, /run/systemd and /run/dbus
    /// hidden in a mount namespace): a clear error naming the unit and the socket, nothing left.
    func testUnreachableBusIsAClearErrorAndLeavesNothing() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let args = [
            "--root", root.path, "--systemd-cgroup", "run", "-d", "--bundle",
            try sleeper("system.slice:swiftlet:\(id)"), id,
        ]
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        let r =
            Self.systemdIsInit
            ? runProgram(
                "/usr/bin/unshare",
                [
                    "-m", "--propagation", "private", "/bin/sh", "-c",
                    "mount -t tmpfs none /run/systemd && mount -t tmpfs none /run/dbus && exec \"$@\"",
                    "sh", Runtime.binary,
                ] + args, environment: env)
            : runProgram(Runtime.binary, args, environment: env)
        XCTAssertNotEqual(r.status, 0)
        if isSwiftlet {
            XCTAssertTrue(r.stderr.contains(unit) && r.stderr.contains("/run/dbus/system_bus_socket"), r.stderr)
        }
        assertNothingLeft(id)
        for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(base)/system.slice/\(unit)"))
        }
        if Self.systemdIsInit { XCTAssertTrue(unitGone(unit)) }
    }

    /// The unit is made, then writing linux.resources to its files fails (CPUs this machine has
    /// not; a blockIO weight out of range): init killed, cgroup removed, unit stopped.
    func testResourceErrorAfterTheUnitStartedLeavesNothing() throws {
        var cases: [[String: Any]] = [["cpu": ["cpus": "0-200"]]]
        if isSwiftlet { cases.append(["blockIO": ["weight": 5]]) }
        for resources in cases {
            let id = newID()
            let unit = "swiftlet-\(id).scope"
            let r = sd(["run", "-d", "--bundle", try sleeper("system.slice:swiftlet:\(id)", resources: resources), id])
            XCTAssertNotEqual(r.status, 0, "\(resources) accepted")
            if isSwiftlet {
                let field = resources.keys.first == "cpu" ? "cpuset.cpus" : "blockIO.weight"
                XCTAssertTrue(r.stderr.contains(field), "the error names \(field): \(r.stderr)")
            }
            assertNothingLeft(id)
            assertNoUnitOrCgroupLeft(unit, cgroup: "/system.slice/\(unit)")
        }
    }

    /// `features`: cgroup.systemd is true only where systemd is PID 1 and answers.
    func testFeaturesReportSystemdOnlyWhereItWorks() throws {
        try XCTSkipUnless(isSwiftlet, "runc reports what it was built with")
        let r = sl(["features"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let cgroup = (obj?["linux"] as? [String: Any])?["cgroup"] as? [String: Any]
        XCTAssertEqual(cgroup?["systemd"] as? Bool, Self.systemdIsInit)
    }
}

/// The systemd driver on the hybrid layout systemd mounts with systemd.unified_cgroup_hierarchy=0
/// (`Scripts/vm-test.sh --systemd --hybrid`, a lane of Scripts/test.sh): systemd makes the scope in
/// the v1 hierarchies it manages, the resources go to the v1 files (as runc does there), the other
/// hierarchies are ours. Skipped unless systemd is PID 1 on a hybrid layout.
final class SystemdHybridTests: SystemdTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(
            Self.systemdIsInit, "systemd is not PID 1 here (run them with Scripts/vm-test.sh --systemd --hybrid)")
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/cgroup.procs")
                && FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/cgroup.procs"),
            "not a hybrid cgroup layout (run them with Scripts/vm-test.sh --systemd --hybrid)")
    }

    func testScopeOnHybridWithResourcesVerbsAndDelete() throws {
        let id = newID()
        let unit = "swiftlet-\(id).scope"
        let cg = "/system.slice/\(unit)"
        let b = try sleeper(
            "system.slice:swiftlet:\(id)",
            resources: [
                "memory": ["limit": 64 << 20], "pids": ["limit": 40], "cpu": ["shares": 512],
            ])
        let run = sd(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(run.status, 0, run.stderr)
        defer { sd(["delete", "-f", id]) }
        let props = show(unit, ["ActiveState", "Delegate", "ControlGroup"])
        XCTAssertEqual(props["ActiveState"], "active")
        XCTAssertEqual(props["Delegate"], "yes")
        XCTAssertEqual(props["ControlGroup"], cg)
        XCTAssertEqual(read("/sys/fs/cgroup/memory\(cg)/memory.limit_in_bytes"), "\(64 << 20)")
        XCTAssertEqual(read("/sys/fs/cgroup/pids\(cg)/pids.max"), "40")
        XCTAssertEqual(read("/sys/fs/cgroup/cpu,cpuacct\(cg)/cpu.shares"), "512")
        guard let pid = initPid(id) else { return XCTFail("no init pid") }
        let lines = read("/proc/\(pid)/cgroup").split(separator: "\n").map(String.init)
        for hierarchy in [":name=systemd:", ":memory:", ":pids:", ":freezer:", ":devices:"] {
            XCTAssertTrue(lines.contains { $0.contains(hierarchy) && $0.hasSuffix(":" + cg) }, "\(hierarchy) \(lines)")
        }
        XCTAssertTrue(lines.contains("0::\(cg)"), "the unified tree: \(lines)")

        XCTAssertEqual(sl(["exec", id, "true"]).status, 0)
        XCTAssertEqual(sd(["pause", id]).status, 0)
        XCTAssertEqual(read("/sys/fs/cgroup/freezer\(cg)/freezer.state"), "FROZEN")
        XCTAssertEqual(sd(["resume", id]).status, 0)
        XCTAssertEqual(read("/sys/fs/cgroup/freezer\(cg)/freezer.state"), "THAWED")
        let update = sd(["update", "--memory", "\(128 << 20)", "--pids-limit", "50", id])
        XCTAssertEqual(update.status, 0, update.stderr)
        XCTAssertEqual(read("/sys/fs/cgroup/memory\(cg)/memory.limit_in_bytes"), "\(128 << 20)")
        XCTAssertEqual(read("/sys/fs/cgroup/pids\(cg)/pids.max"), "50")

        let del = sd(["delete", "-f", id])
        XCTAssertEqual(del.status, 0, del.stderr)
        XCTAssertTrue(unitGone(unit), "\(unit) left")
        for h in ["systemd", "memory", "pids", "freezer", "cpu,cpuacct", "cpuset", "unified"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(h)\(cg)"), "\(h)\(cg) left")
        }
    }

    /// A unit that exists already, on hybrid: refused, and none of the v1 directories are left
    /// (nor taken from the other container).
    func testUnitThatExistsAlreadyOnHybridLeavesNothing() throws {
        let first = newID()
        let second = newID()
        let unit = "swiftlet-shared\(first).scope"
        let cg = "/system.slice/\(unit)"
        let path = "system.slice:swiftlet:shared\(first)"
        XCTAssertEqual(sd(["run", "-d", "--bundle", try sleeper(path), first]).status, 0)
        defer { sd(["delete", "-f", first]) }
        let r = sd(["run", "-d", "--bundle", try sleeper(path, resources: ["pids": ["limit": 20]]), second])
        guard isSwiftlet || r.status != 0 else {
            sd(["delete", "-f", second])
            return
        }  // runc 1.1 joins it (Spec/cli.md)
        XCTAssertNotEqual(r.status, 0)
        assertNothingLeft(second)
        XCTAssertEqual(show(unit, ["ActiveState"])["ActiveState"], "active")
        XCTAssertNotEqual(read("/sys/fs/cgroup/pids\(cg)/pids.max"), "20", "the other container's cgroup was changed")
        XCTAssertEqual(sd(["delete", "-f", first]).status, 0)
        XCTAssertTrue(unitGone(unit))
        for h in ["systemd", "memory", "pids", "freezer", "unified"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(h)\(cg)"), "\(h)\(cg) left")
        }
    }
}

/// swiftlet-monitor with `-s` (conmon's --systemd-cgroup, as podman passes it with
/// cgroup_manager = "systemd"): the runtime is asked for the systemd driver, so the container's
/// cgroup is the unit podman named in cgroupsPath.
final class SystemdMonitorTests: MonitorTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(
            SystemdCgroupTests.systemdIsInit, "systemd is not PID 1 here (run them with Scripts/vm-test.sh --systemd)")
    }

    func testMonitorPassesSystemdCgroupToTheRuntime() throws {
        let id = "sdm\(UInt32.random(in: 0...UInt32.max))"
        let unit = "libpod-\(id).scope"
        let c = try launch(["sleep", "1000"], id: id, monitorArgs: ["-s"]) { spec in
            var linux = spec[dict: "linux"]
            linux["cgroupsPath"] = "machine.slice:libpod:\(id)"
            spec["linux"] = linux
        }
        XCTAssertEqual(c.sync.status, 0, c.sync.stderr)
        let show = runProgram("/usr/bin/systemctl", ["show", unit, "-p", "ActiveState", "-p", "ControlGroup"])
        XCTAssertTrue(show.stdout.contains("ActiveState=active"), show.stdout)
        XCTAssertTrue(show.stdout.contains("ControlGroup=/machine.slice/\(unit)"), show.stdout)
        let pid = (try? String(contentsOfFile: c.dir + "/ctr.pid", encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let pid {
            let cgroup = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
            XCTAssertEqual(cgroup, "0::/machine.slice/\(unit)\n")
        } else {
            XCTFail("no container pid from the monitor")
        }
        XCTAssertEqual(runtime(.swiftlet, root: c.runtimeRoot, ["delete", "--force", id]).status, 0)
        XCTAssertTrue(
            waitUntil(timeout: 10) {
                runProgram("/usr/bin/systemctl", ["show", unit, "-p", "LoadState"]).stdout.contains(
                    "LoadState=not-found")
            }, "\(unit) left after delete")
    }
}
