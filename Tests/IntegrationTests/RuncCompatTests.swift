import Foundation
import TestSupport
import XCTest

/// runc behaviours as its clients (containerd's shim, CRI-O, kubelet probes) rely on them (issue 14).
/// Each test also passes with SWIFTLET_BINARY=/usr/sbin/runc (1.1.5) unless it says otherwise;
/// assertions on swiftlet's own wording are guarded with `isSwiftlet`.
final class RuncCompatTests: ContainerTestCase {
    private let cgroupRoot = "/sys/fs/cgroup"

    /// An absolute linux.cgroupsPath for this test (so the test can find it with any runtime), removed
    /// from every hierarchy afterwards, child cgroups first.
    private func cgroupPath(_ id: String) -> String {
        let path = "/swiftlet-compat-test-\(id)"
        addTeardownBlock { [cgroupRoot] in
            let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: cgroupRoot)) ?? []
            for h in hierarchies {
                let dir = "\(cgroupRoot)/\(h)\(path)"
                for sub in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []) where !sub.contains(".")
                {
                    rmdir(dir + "/" + sub)
                }
                rmdir(dir)
            }
        }
        return path
    }

    private func procs(_ hierarchy: String, _ path: String) -> [Int32] {
        let text =
            (try? String(contentsOfFile: "\(cgroupRoot)/\(hierarchy)\(path)/cgroup.procs", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { Int32($0) }
    }

    private func status(_ id: String) -> String? {
        let r = sl(["state", id])
        guard let data = r.stdout.data(using: .utf8),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return obj["status"] as? String
    }

    private func pid(_ id: String) -> Int32 {
        let r = sl(["state", id])
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
        return (obj?["pid"] as? NSNumber)?.int32Value ?? 0
    }

    private func runDetached(
        _ id: String, args: [String], cgroupsPath: String? = nil,
        _ edit: @escaping (inout [String: Any]) -> Void = { _ in }
    ) throws {
        let b = try bundle { spec in
            ContainerTestCase.args(args)(&spec)
            if let cgroupsPath {
                var linux = spec[dict: "linux"]
                linux["cgroupsPath"] = cgroupsPath
                spec["linux"] = linux
            }
            edit(&spec)
        }
        let r = sl(["run", "-d", "--bundle", b, id], stdin: "")
        XCTAssertEqual(r.status, 0, r.stderr)
        addTeardownBlock { [self] in _ = self.sl(["delete", "-f", id]) }
    }

    private static func pidNamespace(path: String?) -> (inout [String: Any]) -> Void {
        { spec in
            var linux = spec[dict: "linux"]
            var ns = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "pid" }
            if let path { ns.append(["type": "pid", "path": path]) }
            linux["namespaces"] = ns
            spec["linux"] = linux
        }
    }

    // MARK: - item 1: kill --all after init exited, signal 0, containers without a PID namespace

    /// As containerd's CRI does for a pod sharing its PID namespace: the app container joins the
    /// pause container's PID namespace by path; its main process leaves a child behind and exits.
    /// The shim's `kill --all <id> KILL` must kill that child (and succeed once nothing is left).
    func testKillAllOnStoppedContainerKillsWhatIsLeftInItsCgroup() throws {
        let pause = "pause\(UInt32.random(in: 0...UInt32.max))"
        let app = "app\(UInt32.random(in: 0...UInt32.max))"
        try runDetached(pause, args: ["sleep", "1000"], cgroupsPath: cgroupPath(pause))
        let pausePid = pid(pause)
        XCTAssertGreaterThan(pausePid, 0)
        let appCgroup = cgroupPath(app)
        try runDetached(
            app, args: ["sh", "-c", "sleep 1000 & exit 0"], cgroupsPath: appCgroup,
            Self.pidNamespace(path: "/proc/\(pausePid)/ns/pid"))
        XCTAssertTrue(waitUntil(timeout: 10) { self.status(app) == "stopped" }, "app's main process did not exit")
        let left = procs("pids", appCgroup)
        XCTAssertEqual(left.count, 1, "the background child should still run in the app's cgroup")

        let kill = sl(["kill", "--all", app, "KILL"])
        XCTAssertEqual(kill.status, 0, kill.stderr)
        XCTAssertTrue(
            waitUntil(timeout: 5) { self.procs("pids", appCgroup).isEmpty }, "left running: \(procs("pids", appCgroup))"
        )
        XCTAssertTrue(waitUntil(timeout: 5) { left.allSatisfy { processState($0) == nil || processState($0) == "Z" } })
        let again = sl(["kill", "--all", app, "KILL"])
        XCTAssertEqual(again.status, 0, "nothing left to signal is a success: \(again.stderr)")
        let plain = sl(["kill", app, "TERM"])
        XCTAssertNotEqual(plain.status, 0, "without --all a stopped container cannot be signalled")
        XCTAssertTrue(plain.stderr.contains("container not running"), plain.stderr)
        XCTAssertEqual(sl(["delete", app]).status, 0)
        XCTAssertTrue(processAlive(pausePid), "the pause container is untouched")
    }

    /// A created container can be paused (runc 1.1 and 1.3): its state says paused, `start` refuses
    /// at once (it waited forever for the frozen init before), `resume` makes it created again and
    /// `start` then runs it.
    func testPauseOfACreatedContainer() throws {
        let id = "pc\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        XCTAssertEqual(sl(["create", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        XCTAssertEqual(sl(["pause", id]).status, 0)
        XCTAssertEqual(status(id), "paused")
        let start = sl(["start", id], timeout: 20)
        XCTAssertEqual(start.status, 1, start.stderr)
        XCTAssertTrue(start.stderr.contains("cannot start a container in the paused state"), start.stderr)
        XCTAssertEqual(sl(["resume", id]).status, 0)
        XCTAssertEqual(status(id), "created")
        XCTAssertEqual(sl(["start", id], timeout: 20).status, 0)
        XCTAssertEqual(status(id), "running")
    }

    /// SIGKILL to a paused container's init kills it: runc 1.1 and 1.3 thaw the cgroup after the
    /// signal (a frozen v1 task cannot die); it stayed paused before. Another signal leaves it paused,
    /// and exec says how to override.
    func testKillOfAPausedContainer() throws {
        let id = "kp\(UInt32.random(in: 0...UInt32.max))"
        try runDetached(id, args: ["sleep", "1000"])
        defer { sl(["delete", "-f", id]) }
        XCTAssertEqual(sl(["pause", id]).status, 0)
        XCTAssertEqual(sl(["kill", id, "TERM"]).status, 0)
        XCTAssertEqual(status(id), "paused", "a signal other than KILL does not thaw")
        let exec = sl(["exec", id, "true"])
        XCTAssertEqual(exec.status, 255)
        XCTAssertTrue(
            exec.stderr.contains("exec failed: cannot exec in a paused container (use --ignore-paused to override)"),
            exec.stderr)
        XCTAssertEqual(sl(["kill", id, "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.status(id) == "stopped" }, "\(self.status(id) ?? "nil")")
        let again = sl(["kill", id, "KILL"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("container not running"), again.stderr)
    }

    func testSignalZeroProbesInit() throws {
        let id = "probe\(UInt32.random(in: 0...UInt32.max))"
        try runDetached(id, args: ["sleep", "1000"])
        let probe = sl(["kill", id, "0"])
        XCTAssertEqual(probe.status, 0, probe.stderr)
        XCTAssertEqual(status(id), "running", "signal 0 must not harm init")
        XCTAssertEqual(sl(["kill", "--all", id, "0"]).status, 0)
        XCTAssertEqual(sl(["kill", id, "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.status(id) == "stopped" })
        let stopped = sl(["kill", id, "0"])
        XCTAssertNotEqual(stopped.status, 0, "signal 0 to a stopped container reports it")
        XCTAssertTrue(stopped.stderr.contains("container not running"), stopped.stderr)
    }

    /// A container without a PID namespace of its own: `delete --force` kills every process of its
    /// cgroup, not only init (runc's destroy).
    func testDeleteForceOfContainerWithoutPidNamespaceKillsAllItsProcesses() throws {
        let id = "nopid\(UInt32.random(in: 0...UInt32.max))"
        let path = cgroupPath(id)
        try runDetached(
            id, args: ["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"], cgroupsPath: path,
            Self.pidNamespace(path: nil))
        XCTAssertTrue(waitUntil(timeout: 10) { self.procs("pids", path).count == 3 }, "\(procs("pids", path))")
        let pids = procs("pids", path)
        let r = sl(["delete", "--force", id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(
            waitUntil(timeout: 5) { pids.allSatisfy { processState($0) == nil || processState($0) == "Z" } },
            "left running: \(pids.filter { processState($0) != nil && processState($0) != "Z" })")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(cgroupRoot)/pids\(path)"))
    }

    /// runc 1.2+ (anchor: runc 1.3.6): SIGKILL to a container without a PID namespace of its own kills
    /// every process of its cgroup, also once init has gone. runc 1.1.5 killed init alone.
    func testKillKILLOfContainerWithoutPidNamespaceKillsAllItsProcesses() throws {
        try XCTSkipIf(Runtime.binary == "/usr/sbin/runc", "runc 1.1.5 kills only init here; runc 1.2+ behaviour")
        let id = "nopid\(UInt32.random(in: 0...UInt32.max))"
        let path = cgroupPath(id)
        try runDetached(
            id, args: ["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"], cgroupsPath: path,
            Self.pidNamespace(path: nil))
        XCTAssertTrue(waitUntil(timeout: 10) { self.procs("pids", path).count == 3 }, "\(procs("pids", path))")
        let r = sl(["kill", id, "KILL"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(
            waitUntil(timeout: 5) { self.procs("pids", path).isEmpty }, "left running: \(procs("pids", path))")
    }

    // MARK: - item 2: a frozen cgroup fails create at once

    func testCreateInFrozenCgroupFailsAtOnceAndLeavesNothing() throws {
        let id = "frozen\(UInt32.random(in: 0...UInt32.max))"
        let path = cgroupPath(id)
        let freezer = "\(cgroupRoot)/freezer\(path)"
        try FileManager.default.createDirectory(atPath: freezer, withIntermediateDirectories: false)
        addTeardownBlock { try? "THAWED".write(toFile: freezer + "/freezer.state", atomically: false, encoding: .utf8) }
        try "FROZEN".write(toFile: freezer + "/freezer.state", atomically: false, encoding: .utf8)
        XCTAssertTrue(
            waitUntil(timeout: 5) {
                (try? String(contentsOfFile: freezer + "/freezer.state", encoding: .utf8)) == "FROZEN\n"
            })
        let b = try bundle { spec in
            ContainerTestCase.args(["true"])(&spec)
            var linux = spec[dict: "linux"]
            linux["cgroupsPath"] = path
            spec["linux"] = linux
        }
        for verb in ["create", "run"] {
            let started = Date()
            let r = sl([verb, "--bundle", b, id], stdin: "", timeout: 30)
            XCTAssertNotEqual(r.status, 0, "\(verb) in a frozen cgroup must fail")
            XCTAssertLessThan(Date().timeIntervalSince(started), 25, "\(verb) waited instead of failing")
            XCTAssertTrue(r.stderr.contains("container's cgroup unexpectedly frozen"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/" + id), "state dir left")
            XCTAssertEqual(procs("freezer", path), [], "process left in the frozen cgroup")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(cgroupRoot)/pids\(path)"), "cgroup made anyway")
        }
    }

    // MARK: - item 4: exec's own errors exit 255; process.json without user

    func testExecOwnErrorsExit255() throws {
        let id = "ex\(UInt32.random(in: 0...UInt32.max))"
        try runDetached(id, args: ["sleep", "1000"])
        XCTAssertEqual(sl(["exec", id, "sh", "-c", "exit 3"]).status, 3, "the process's own status")
        XCTAssertEqual(sl(["exec", "no-such-\(id)", "true"]).status, 255)
        XCTAssertEqual(sl(["exec", id]).status, 255, "no command")
        XCTAssertEqual(sl(["exec", "--user", "abc", id, "true"]).status, 255)
        XCTAssertEqual(sl(["exec", "-p", root.path + "/missing.json", id]).status, 255)
        XCTAssertEqual(sl(["pause", id]).status, 0)
        let paused = sl(["exec", id, "true"])
        XCTAssertEqual(paused.status, 255, paused.stderr)
        XCTAssertTrue(paused.stderr.contains("paused"), paused.stderr)
        XCTAssertEqual(sl(["resume", id]).status, 0)
        XCTAssertEqual(sl(["kill", id, "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.status(id) == "stopped" })
        XCTAssertEqual(sl(["exec", id, "true"]).status, 255, "stopped container")
    }

    func testExecProcessJSONWithoutUserRunsAsRoot() throws {
        let id = "ex\(UInt32.random(in: 0...UInt32.max))"
        try runDetached(id, args: ["sleep", "1000"])
        let process: [String: Any] = ["args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]]
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: root.path + "/p.json"))
        let r = sl(["exec", "-p", root.path + "/p.json", id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "0\n0\n")
    }

    // MARK: - item 5: exec --cgroup, run --no-subreaper, --rootless

    func testExecCgroupJoinsSubCgroupsPerController() throws {
        let id = "excg\(UInt32.random(in: 0...UInt32.max))"
        let path = cgroupPath(id)
        try runDetached(id, args: ["sleep", "1000"], cgroupsPath: path)
        for (h, sub) in [("memory", "sub1"), ("cpu", "sub2"), ("cpuacct", "sub2")] {
            try FileManager.default.createDirectory(
                atPath: "\(cgroupRoot)/\(h)\(path)/\(sub)", withIntermediateDirectories: false)
        }
        let r = sl(["exec", "--cgroup", "memory:sub1", "--cgroup", "cpu,cpuacct:sub2", id, "cat", "/proc/self/cgroup"])
        XCTAssertEqual(r.status, 0, r.stderr)
        func line(_ controller: String) -> String {
            r.stdout.split(separator: "\n").map(String.init).first {
                $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains(Substring(controller))
                    ?? false
            } ?? ""
        }
        XCTAssertTrue(line("memory").hasSuffix("\(path)/sub1"), r.stdout)
        XCTAssertTrue(line("cpu").hasSuffix("\(path)/sub2"), r.stdout)
        XCTAssertTrue(line("cpuacct").hasSuffix("\(path)/sub2"), r.stdout)
        XCTAssertTrue(line("pids").hasSuffix(path), r.stdout)

        for bad in [
            ["--cgroup", "memory:missing"], ["--cgroup", "../x"], ["--cgroup", "memory:../../x"],
            ["--cgroup", "bogus:sub1"], ["--cgroup", "a:b:c"], ["--cgroup", "x", "--cgroup", "y"],
            ["--cgroup", ":sub1"],
        ] {
            let f = sl(["exec"] + bad + [id, "true"])
            XCTAssertEqual(f.status, 255, "exec \(bad) must fail: \(f.stderr)")
        }
        if isSwiftlet {
            XCTAssertTrue(
                sl(["exec", "--cgroup", "memory:../../x", id, "true"]).stderr.contains("not a sub cgroup path"))
            XCTAssertTrue(sl(["exec", "--cgroup", "bogus:sub1", id, "true"]).stderr.contains("unknown controller"))
        }
    }

    func testExecCgroupWithoutControllerUsesTheSubCgroupEverywhere() throws {
        let id = "excg\(UInt32.random(in: 0...UInt32.max))"
        let path = cgroupPath(id)
        try runDetached(id, args: ["sleep", "1000"], cgroupsPath: path)
        let hierarchies = ((try? FileManager.default.contentsOfDirectory(atPath: cgroupRoot)) ?? []).filter {
            FileManager.default.fileExists(atPath: "\(cgroupRoot)/\($0)\(path)")
        }
        XCTAssertFalse(hierarchies.isEmpty)
        for h in hierarchies {
            let dir = "\(cgroupRoot)/\(h)\(path)"
            try FileManager.default.createDirectory(atPath: dir + "/all", withIntermediateDirectories: false)
            for knob in ["cpuset.cpus", "cpuset.mems"] where h == "cpuset" {  // an empty cpuset takes no tasks
                try String(contentsOfFile: dir + "/" + knob, encoding: .utf8).write(
                    toFile: dir + "/all/" + knob, atomically: false, encoding: .utf8)
            }
        }
        let r = sl(["exec", "--cgroup", "all", id, "cat", "/proc/self/cgroup"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for l in r.stdout.split(separator: "\n")
        where l.contains("memory") || l.contains("pids") || l.contains("freezer") {
            XCTAssertTrue(l.hasSuffix("\(path)/all"), "\(l) in \(r.stdout)")
        }
    }

    func testRunNoSubreaperAndRootlessFlags() throws {
        let r = try run(["sh", "-c", "exit 3"], id: "ns\(UInt32.random(in: 0...UInt32.max))")
        XCTAssertEqual(r.status, 3, r.stderr)
        let b = try bundle(ContainerTestCase.args(["sh", "-c", "exit 4"]))
        let noSub = sl(["run", "--no-subreaper", "--bundle", b, "ns\(UInt32.random(in: 0...UInt32.max))"], stdin: "")
        XCTAssertEqual(noSub.status, 4, noSub.stderr)
        for value in ["true", "false", "auto"] {
            let ok = sl(["--rootless", value, "list"])
            XCTAssertEqual(ok.status, 0, "--rootless \(value): \(ok.stderr)")
        }
        let bogusID = "ns\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertNotEqual(sl(["--rootless", "bogus", "run", "--bundle", b, bogusID], stdin: "").status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/" + bogusID))
        if isSwiftlet {
            // A user namespace on this v1 host needs a middle process, whose child only a subreaper can wait for.
            let userns = try bundle { spec in
                ContainerTestCase.args(["true"])(&spec)
                ContainerTestCase.userNamespace()(&spec)
            }
            let refused = sl(
                ["run", "--no-subreaper", "--bundle", userns, "ns\(UInt32.random(in: 0...UInt32.max))"], stdin: "")
            XCTAssertNotEqual(refused.status, 0)
            XCTAssertTrue(refused.stderr.contains("--no-subreaper"), refused.stderr)
        }
    }

    // MARK: - item 10: update ordering on cgroup v1

    func testUpdateMemoryUnlimitedLiftsSwapLimit() throws {
        let id = "upd\(UInt32.random(in: 0...UInt32.max))"
        let path = cgroupPath(id)
        let memory = "\(cgroupRoot)/memory\(path)"
        try runDetached(id, args: ["sleep", "1000"], cgroupsPath: path) { spec in
            var linux = spec[dict: "linux"]
            linux["resources"] = ["memory": ["limit": 64 << 20, "swap": 128 << 20]]
            spec["linux"] = linux
        }
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: memory + "/memory.memsw.limit_in_bytes"),
            "no swap accounting on this kernel")
        func read(_ f: String) -> UInt64 {
            UInt64(
                ((try? String(contentsOfFile: memory + "/" + f, encoding: .utf8)) ?? "").trimmingCharacters(
                    in: .whitespacesAndNewlines)) ?? 0
        }
        XCTAssertEqual(read("memory.memsw.limit_in_bytes"), 128 << 20)
        let r = sl(["update", "--memory", "-1", id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertGreaterThan(read("memory.limit_in_bytes"), 1 << 60)
        XCTAssertGreaterThan(read("memory.memsw.limit_in_bytes"), 1 << 60)
        // And back down: memory first would fail (above memsw); runc's order writes swap first.
        let down = sl(["update", "--memory", "32m", "--memory-swap", "48m", id])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(read("memory.limit_in_bytes"), 32 << 20)
        XCTAssertEqual(read("memory.memsw.limit_in_bytes"), 48 << 20)
        // Obsolete kernel memory flags: accepted with a warning, as runc 1.1+.
        let kmem = sl(["update", "--kernel-memory", "100m", "--kernel-memory-tcp", "100m", id])
        XCTAssertEqual(kmem.status, 0, kmem.stderr)
        XCTAssertTrue(kmem.stderr.lowercased().contains("kernel memory settings are ignored"), kmem.stderr)
        let up = sl(["update", "--memory", "256m", "--memory-swap", "512m", id])
        XCTAssertEqual(up.status, 0, up.stderr)
        XCTAssertEqual(read("memory.limit_in_bytes"), 256 << 20)
        XCTAssertEqual(read("memory.memsw.limit_in_bytes"), 512 << 20)
    }
}
