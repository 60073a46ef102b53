import Foundation
import TestSupport
import XCTest

/// Cgroups on the host's real hierarchies (hybrid v1 here; the qemu VM runs the same tests on v2).
final class CgroupIntegrationTests: ContainerTestCase {
    /// The container's cgroup directory for a controller (v1) or the cgroup2 tree ("").
    func cgroupDir(_ id: String, _ controller: String) -> String? {
        let r = sl(["state", id])
        guard r.status == 0 else { return nil }
        let statePath = root.path + "/" + id + "/state.json"
        guard let data = FileManager.default.contents(atPath: statePath),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let paths = obj["cgroupPaths"] as? [String: String]
        else { return nil }
        return paths[controller] ?? paths[""]
    }

    var isV2: Bool { FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers") }

    func limits(_ resources: [String: Any]) -> (inout [String: Any]) -> Void {
        { spec in
            var linux = spec[dict: "linux"]
            linux["resources"] = resources
            spec["linux"] = linux
        }
    }

    func testLimitsVisibleInsideAndCgroupRemovedOnDelete() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            self.limits([
                "memory": ["limit": 64 << 20], "pids": ["limit": 40], "cpu": ["quota": 50000, "period": 100000],
            ])(&spec)
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append([
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            ])
            spec["mounts"] = mounts
            var linux = spec[dict: "linux"]
            var ns = linux["namespaces"] as? [[String: Any]] ?? []
            ns.append(["type": "cgroup"])
            linux["namespaces"] = ns
            spec["linux"] = linux
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "lim"]).status, 0)
        let memFile = isV2 ? "memory.max" : "memory.limit_in_bytes"
        let pidsFile = "pids.max"
        let r = sl([
            "exec", "lim", "sh", "-c",
            "cat /sys/fs/cgroup/\(isV2 ? "" : "memory/")\(memFile) /sys/fs/cgroup/\(isV2 ? "" : "pids/")\(pidsFile)",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(64 << 20)\n40\n")
        guard let memDir = cgroupDir("lim", "memory") else { return XCTFail("no cgroup recorded") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: memDir))
        XCTAssertEqual(sl(["delete", "-f", "lim"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: memDir), "cgroup removed by delete")
    }

    /// init is in the container's cgroup in every hierarchy: moved there by itself (v1 `tasks`,
    /// hybrid unified tree by clone3), or by the runtime when it is in a user namespace and
    /// cannot write the host's cgroup files.
    /// Each way init is made on this host (Spec/sync-protocol.md, cgroup placement): one clone
    /// (`cg-self`), a middle process after the v1 self-join (`cg-userns`, on v2: one clone with
    /// CLONE_NEWUSER), a middle process for namespace order (`cg-timens`: time offsets; only with a
    /// runtime whose `features` lists the time namespace: runc 1.1.5 does not know it).
    func testInitIsInItsCgroupInEveryHierarchy() throws {
        let features = sl(["features"]).stdout
        let timeNamespace = features.contains("\"time\"")
        for (id, userns, timens) in [("cg-self", false, false), ("cg-userns", true, false), ("cg-timens", false, true)]
        where timeNamespace || !timens {
            let b = try bundle { spec in
                ContainerTestCase.args(["sleep", "100"])(&spec)
                if userns { ContainerTestCase.userNamespace()(&spec) }
                if timens {
                    var linux = spec[dict: "linux"]
                    linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []) + [["type": "time"]]
                    linux["timeOffsets"] = ["monotonic": ["secs": 3600, "nanosecs": 0]]
                    spec["linux"] = linux
                }
            }
            let r = sl(["run", "-d", "--bundle", b, id])
            XCTAssertEqual(r.status, 0, r.stderr)
            let st = sl(["state", id])
            let pid =
                (try JSONSerialization.jsonObject(with: Data(st.stdout.utf8)) as? [String: Any])?["pid"] as? Int ?? 0
            let lines = (try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)).split(separator: "\n")
            XCTAssertFalse(lines.isEmpty)
            for line in lines {
                let path = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).last ?? ""
                XCTAssertTrue(path.hasSuffix("/\(id)"), "\(id): \(line)")
            }
            // An exec'd process joins the same way (and sees the host's paths: no cgroup namespace).
            let e = sl(["exec", id, "cat", "/proc/self/cgroup"])
            XCTAssertEqual(e.status, 0, e.stderr)
            XCTAssertEqual(e.stdout.split(separator: "\n").count, lines.count)
            for line in e.stdout.split(separator: "\n") {
                let path = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).last ?? ""
                XCTAssertTrue(path.hasSuffix("/\(id)"), "exec in \(id): \(line)")
            }
            XCTAssertEqual(sl(["delete", "-f", id]).status, 0)
        }
    }

    func testMemoryLimitEnforcedByOOMKill() throws {
        // A shell that grows a string past the limit is OOM-killed (SIGKILL: 137).
        let r = try run(
            ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"],
            limits(["memory": ["limit": 16 << 20, "swap": 16 << 20]]))
        XCTAssertEqual(r.status, 137, r.stderr)
    }

    func testPidsLimitRefusesFork() throws {
        let r = try run(
            ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; echo forked"],
            limits(["pids": ["limit": 4]]))
        XCTAssertTrue(
            r.stdout.contains("can't fork") || r.stdout.contains("Resource temporarily unavailable"),
            r.stdout + r.stderr)
    }

    func testPauseStopsProcessesAndResume() throws {
        let b = try bundle(
            ContainerTestCase.args(["sh", "-c", "while :; do echo x >> /dev/shm/ticks; sleep 0.05; done"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "frz"]).status, 0)
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertEqual(sl(["pause", "frz"]).status, 0)
        XCTAssertTrue(sl(["state", "frz"]).stdout.contains("\"paused\""))
        XCTAssertTrue(sl(["list"]).stdout.contains("paused"))
        let ticks = { () -> Int in
            // read the counter through the init's root (exec would be refused while paused)
            let st =
                try? JSONSerialization.jsonObject(with: Data(self.sl(["state", "frz"]).stdout.utf8)) as? [String: Any]
            let pid = st?["pid"] as? Int ?? 0
            return (try? String(contentsOfFile: "/proc/\(pid)/root/dev/shm/ticks", encoding: .utf8))?.split(
                separator: "\n"
            ).count ?? -1
        }
        let before = ticks()
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertEqual(ticks(), before, "no progress while frozen")
        let exec = sl(["exec", "frz", "true"])
        XCTAssertTrue(exec.stderr.contains("paused"), exec.stderr)
        XCTAssertEqual(sl(["resume", "frz"]).status, 0)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertGreaterThan(ticks(), before, "progress after resume")
        XCTAssertTrue(sl(["resume", "frz"]).stderr.contains("not paused"))
        XCTAssertEqual(sl(["delete", "-f", "frz"]).status, 0)
    }

    func testUpdateChangesLiveLimitAndBadValueKeepsOld() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            self.limits(["memory": ["limit": 64 << 20], "pids": ["limit": 40]])(&spec)
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "upd"]).status, 0)
        XCTAssertEqual(sl(["update", "--memory", "96m", "--pids-limit", "30", "upd"]).status, 0)
        guard let pidsDir = cgroupDir("upd", "pids") else { return XCTFail("no cgroup") }
        XCTAssertEqual(try String(contentsOfFile: pidsDir + "/pids.max", encoding: .utf8), "30\n")
        let res = root.path + "/res.json"
        try #"{"pids": {"limit": 25}}"#.write(toFile: res, atomically: true, encoding: .utf8)
        XCTAssertEqual(sl(["update", "-r", res, "upd"]).status, 0)
        XCTAssertEqual(try String(contentsOfFile: pidsDir + "/pids.max", encoding: .utf8), "25\n")
        let bad = sl(["update", "--memory", "lots", "upd"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--memory"), bad.stderr)
        // The kernel refuses a quota below 1 ms: the update fails, and the memory limit written just
        // before it (memory goes before cpu) is rolled back: the previous limits remain in force.
        guard let memDir = cgroupDir("upd", "memory") else { return XCTFail("no memory cgroup") }
        let memFile = memDir + (isV2 ? "/memory.max" : "/memory.limit_in_bytes")
        let before = try String(contentsOfFile: memFile, encoding: .utf8)
        let refused = sl(["update", "--memory", "200m", "--cpu-quota", "500", "upd"])
        XCTAssertEqual(refused.status, 1, refused.stdout)
        XCTAssertEqual(try String(contentsOfFile: memFile, encoding: .utf8), before, refused.stderr)
        XCTAssertEqual(sl(["delete", "-f", "upd"]).status, 0)
    }

    func testStatsMatchCgroupFilesWithPSI() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            self.limits(["memory": ["limit": 64 << 20], "pids": ["limit": 40]])(&spec)
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "st"]).status, 0)
        let r = sl(["events", "--stats", "st"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["type"] as? String, "stats")
        let data = obj?["data"] as? [String: Any]
        let pids = data?["pids"] as? [String: Any]
        XCTAssertEqual(pids?["current"] as? Int, 1)
        XCTAssertEqual(pids?["limit"] as? Int, 40)
        let mem = (data?["memory"] as? [String: Any])?["usage"] as? [String: Any]
        XCTAssertEqual(mem?["limit"] as? Int, 64 << 20)
        XCTAssertGreaterThan(mem?["usage"] as? Int ?? 0, 0)
        XCTAssertNotNil((data?["cpu"] as? [String: Any])?["usage"])
        // PSI where the kernel offers it (v2, or this host's hybrid unified tree).
        if FileManager.default.fileExists(atPath: "/proc/pressure/cpu") {
            XCTAssertNotNil((data?["cpu"] as? [String: Any])?["psi"], r.stdout)
        }
        XCTAssertEqual(sl(["delete", "-f", "st"]).status, 0)
    }

    func testPsAndKillAll() throws {
        let b = try bundle(ContainerTestCase.args(["sh", "-c", "sleep 100 & sleep 100 & wait"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "psk"]).status, 0)
        XCTAssertTrue(
            waitUntil(timeout: 5) {
                ((try? JSONSerialization.jsonObject(with: Data(self.sl(["ps", "--format", "json", "psk"]).stdout.utf8)))
                    as? [Int])?.count == 3
            })
        // Three processes can be there before both children have exec'd sleep (still "sh -c ..."): wait for it.
        var table = sl(["ps", "psk"])
        _ = waitUntil(timeout: 5) {
            table = self.sl(["ps", "psk"])
            return table.stdout.split(separator: "\n").filter { $0.hasSuffix(" sleep 100") }.count == 2
        }
        XCTAssertTrue(table.stdout.hasPrefix("UID") || table.stdout.contains("PID"), table.stdout)
        XCTAssertEqual(table.stdout.split(separator: "\n").filter { $0.hasSuffix(" sleep 100") }.count, 2, table.stdout)
        XCTAssertEqual(sl(["kill", "--all", "psk", "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.sl(["state", "psk"]).stdout.contains("stopped") })
        XCTAssertEqual(sl(["delete", "psk"]).status, 0)
    }

    /// linux.resources.devices enforced: v1 devices.allow/deny here, an eBPF program on v2 (the VM).
    /// With CAP_MKNOD, a device node outside the rules cannot be created; an allowed one can, and
    /// the runtime's default devices keep working under a deny-all rule.
    func testDeviceRulesEnforced() throws {
        let r = try run([
            "sh", "-c",
            "mknod /dev/blk b 7 0 2>&1 || true; mknod /dev/tun c 10 200 && echo tun-ok; echo x > /dev/null && echo "
                + "null-ok",
        ]) { spec in
            var p = spec[dict: "process"]
            var caps = p[dict: "capabilities"]
            for set in ["bounding", "effective", "permitted"] {
                caps[set] = (caps[set] as? [String] ?? []) + ["CAP_MKNOD"]
            }
            p["capabilities"] = caps
            spec["process"] = p
            self.limits([
                "devices": [
                    ["allow": false, "access": "rwm"],
                    ["allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"],
                ]
            ])(&spec)
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Operation not permitted"), r.stdout)
        XCTAssertTrue(r.stdout.contains("tun-ok"), r.stdout)
        XCTAssertTrue(r.stdout.hasSuffix("null-ok\n"), r.stdout)
    }

    func testBadResourceLeavesNoCgroup() throws {
        let b = try bundle(limits(["cpu": ["cpus": "0-999"]]))
        let r = sl(["create", "--bundle", b, "badcg"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("cpuset"), r.stderr)
        assertNothingLeft("badcg", bundle: b)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(isV2 ? "" : "memory/")swiftlet/badcg"))
    }
}

extension CgroupIntegrationTests {
    /// `events` streams an oom event when the kernel OOM-kills a process of the container.
    func testEventsReportOOMKill() throws {
        let hog = "sh -c 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done'"
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "sleep 1; while :; do \(hog); sleep 0.3; done"])(&spec)
            self.limits(["memory": ["limit": 16 << 20, "swap": 16 << 20]])(&spec)
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "oomev"]).status, 0)
        let r = sl(["events", "--interval", "1s", "oomev"], timeout: 5)
        XCTAssertTrue(r.stdout.contains("{\"type\":\"stats\",\"id\":\"oomev\""), r.stdout.prefix(300) + r.stderr)
        XCTAssertTrue(r.stdout.contains("{\"type\":\"oom\",\"id\":\"oomev\"}"), String(r.stdout.suffix(300)))
        XCTAssertEqual(sl(["delete", "-f", "oomev"]).status, 0)
    }
}
