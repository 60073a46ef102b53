import Foundation
import LinuxSystem
import TestSupport
import XCTest

/// Fields of runtime-spec 1.3 checked from the kernel's side: process.scheduler (sched_setattr) and
/// linux.memoryPolicy (set_mempolicy), for init and exec, plus every invalid value.
/// These pass with crun 1.28 too (`SWIFTLET_BINARY` = the crun wrapper of Scripts/install-anchors.sh);
/// runc 1.3 has the scheduler but not memoryPolicy (runc 1.4 has it). Messages are checked for swiftlet only.
final class RuntimeSpec13Tests: ContainerTestCase {
    /// (policy, nice) of the process that reads /proc/self/stat: fields 41 and 19.
    static let statScript = "read -r l < /proc/self/stat; set -- ${l##*) }; shift 16; n=$1; shift 22; echo $1 $n"

    func scheduler(_ s: [String: Any]) -> (inout [String: Any]) -> Void {
        { spec in spec[path: "process.scheduler"] = s }
    }

    func memoryPolicy(_ m: [String: Any]) -> (inout [String: Any]) -> Void {
        { spec in spec[path: "linux.memoryPolicy"] = m }
    }

    func testSchedulerBatchWithNiceAppliesToInit() throws {
        let r = try run(["sh", "-c", Self.statScript], scheduler(["policy": "SCHED_BATCH", "nice": 5]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "3 5\n", "policy 3 (SCHED_BATCH), nice 5")
    }

    func testSchedulerIdleAppliesToInit() throws {
        let r = try run(["sh", "-c", Self.statScript], scheduler(["policy": "SCHED_IDLE"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: " ").first, "5", "policy 5 (SCHED_IDLE): \(r.stdout)")
    }

    func testSchedulerAppliesToExec() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let id = "sched\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let process: [String: Any] = [
            "args": ["sh", "-c", Self.statScript], "cwd": "/", "user": ["uid": 0, "gid": 0],
            "env": ["PATH=/bin"], "scheduler": ["policy": "SCHED_BATCH", "nice": 7],
        ]
        let p = root.path + "/process.json"
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: p))
        let r = sl(["exec", "-p", p, id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "3 7\n")
        // The container's init keeps the default policy.
        let initStat = sl([
            "exec", id, "sh", "-c", "read -r l < /proc/1/stat; set -- ${l##*) }; shift 16; n=$1; shift 22; echo $1 $n",
        ])
        XCTAssertEqual(initStat.stdout, "0 0\n", initStat.stderr)
    }

    func testInvalidSchedulersAreRefusedAndNothingIsLeft() throws {
        let cases: [([String: Any], String)] = [
            (["policy": "SCHED_BOGUS"], "process.scheduler.policy"),
            (["policy": "SCHED_OTHER", "nice": 40], "process.scheduler.nice"),
            (["policy": "SCHED_FIFO"], "process.scheduler.priority"),
            (["policy": "SCHED_OTHER", "priority": 5], "process.scheduler.priority"),
            (["policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_BOGUS"]], "process.scheduler.flags[0]"),
            (["policy": "SCHED_BATCH", "runtime": 1000], "process.scheduler"),
            (["policy": "SCHED_DEADLINE", "runtime": 2_000_000, "deadline": 1_000_000], "process.scheduler"),
        ]
        for (s, field) in cases {
            let id = "badsched\(UInt32.random(in: 0...UInt32.max))"
            let b = try bundle { spec in
                ContainerTestCase.args(["true"])(&spec)
                self.scheduler(s)(&spec)
            }
            let r = sl(["run", "--bundle", b, id])
            // crun 1.28 clamps nice and ignores runtime/deadline/period of other policies; runc refuses both.
            if (Runtime.binary as NSString).lastPathComponent.hasPrefix("crun")
                && (s["nice"] != nil || s["runtime"] != nil)
            {
                continue
            }
            XCTAssertNotEqual(r.status, 0, "\(s) must be refused")
            if isSwiftlet { XCTAssertTrue(r.stderr.contains(field), "\(s): error names \(field): \(r.stderr)") }
            sl(["delete", "-f", id])
            assertNothingLeft(id)
        }
    }

    func testMemoryPolicyBindAppliesToInitAndExec() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            self.memoryPolicy(["mode": "MPOL_BIND", "nodes": "0"])(&spec)
        }
        let id = "mpol\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        // numa_maps names the policy of every mapping: the process's own when the mapping has none.
        let initMaps = sl(["exec", id, "sh", "-c", "head -n 1 /proc/1/numa_maps"])
        XCTAssertTrue(initMaps.stdout.contains(" bind:0 "), "init: \(initMaps.stdout) \(initMaps.stderr)")
        // exec'd processes are the container's too (crun 1.28 sets the policy for init only: Spec/cli.md).
        let execMaps = sl(["exec", id, "sh", "-c", "head -n 1 /proc/self/numa_maps"])
        if isSwiftlet {
            XCTAssertTrue(execMaps.stdout.contains(" bind:0 "), "exec: \(execMaps.stdout) \(execMaps.stderr)")
        }
    }

    func testMemoryPolicyInterleaveWithStaticNodes() throws {
        let r = try run(
            ["sh", "-c", "head -n 1 /proc/self/numa_maps"],
            memoryPolicy(["mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(" interleave=static:0 "), r.stdout)
    }

    func testWithoutMemoryPolicyTheDefaultStays() throws {
        let r = try run(["sh", "-c", "head -n 1 /proc/self/numa_maps"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(" default "), r.stdout)
    }

    func testInvalidMemoryPoliciesAreRefusedAndNothingIsLeft() throws {
        let cases: [([String: Any], String)] = [
            (["mode": "MPOL_BOGUS"], "linux.memoryPolicy.mode"),
            (["mode": "MPOL_DEFAULT", "nodes": "0"], "linux.memoryPolicy.nodes"),
            (["mode": "MPOL_BIND"], "linux.memoryPolicy.nodes"),
            (["mode": "MPOL_BIND", "nodes": "3-1"], "linux.memoryPolicy.nodes"),
            (["mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_BOGUS"]], "linux.memoryPolicy.flags[0]"),
            (
                ["mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]],
                "linux.memoryPolicy.flags"
            ),
        ]
        for (m, field) in cases {
            let id = "badmpol\(UInt32.random(in: 0...UInt32.max))"
            let b = try bundle { spec in
                ContainerTestCase.args(["true"])(&spec)
                self.memoryPolicy(m)(&spec)
            }
            let r = sl(["run", "--bundle", b, id])
            XCTAssertNotEqual(r.status, 0, "\(m) must be refused")
            if isSwiftlet { XCTAssertTrue(r.stderr.contains(field), "\(m): error names \(field): \(r.stderr)") }
            sl(["delete", "-f", id])
            assertNothingLeft(id)
        }
    }
}

/// linux.netDevices (runtime-spec 1.3) with a veth pair standing in for a spare device (this kernel has no
/// `dummy` module). Addresses are from the documentation ranges (192.0.2.0/24, 2001:db8::/32); no traffic
/// is sent. Also: a new network namespace has its loopback up, as with runc and crun.
final class NetDeviceTests: ContainerTestCase {
    /// A veth pair on the host; the first name carries the addresses. Both ends are removed afterwards.
    func vethPair() throws -> (String, String) {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let a = "sla" + tag
        let b = "slb" + tag
        for cmd in [
            ["link", "add", a, "type", "veth", "peer", "name", b], ["addr", "add", "192.0.2.7/24", "dev", a],
            ["addr", "add", "2001:db8::7/64", "dev", a, "nodad"], ["addr", "add", "fe80::7/64", "dev", a, "nodad"],
        ] {
            let r = runProgram("/usr/sbin/ip", cmd)
            XCTAssertEqual(r.status, 0, "ip \(cmd): \(r.stderr)")
        }
        addTeardownBlock {
            _ = runProgram("/usr/sbin/ip", ["link", "del", a])
            _ = runProgram("/usr/sbin/ip", ["link", "del", b])
        }
        return (a, b)
    }

    func hostHasLink(_ name: String) -> Bool { runProgram("/usr/sbin/ip", ["link", "show", name]).status == 0 }

    func testLoopbackIsUpInANewNetworkNamespace() throws {
        let r = try run(["ip", "-o", "addr", "show", "lo"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("inet 127.0.0.1/8"), r.stdout)
    }

    func testDeviceIsMovedRenamedKeepsGlobalAddressesAndIsUp() throws {
        let (a, _) = try vethPair()
        let r = try run(["sh", "-c", "ip -o addr show ceth0; ip -o link show ceth0"]) { spec in
            spec[path: "linux.netDevices"] = [a: ["name": "ceth0"]]
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("inet 192.0.2.7/24"), r.stdout)
        XCTAssertTrue(r.stdout.contains("inet6 2001:db8::7/64"), r.stdout)
        XCTAssertFalse(r.stdout.contains("fe80::7"), "a link-local address is not global: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains(",UP"), r.stdout)
        XCTAssertFalse(hostHasLink(a), "the device left the host")
    }

    func testDeviceKeepsItsNameWithoutOne() throws {
        let (a, _) = try vethPair()
        let r = try run(["ip", "-o", "link", "show", a]) { spec in spec[path: "linux.netDevices"] = [a: [String: Any]()]
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(a + "@"), r.stdout)
    }

    func testRefusalsLeaveTheDeviceOnTheHostAndNothingElse() throws {
        let (a, _) = try vethPair()
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            (
                "linux.netDevices",
                { spec in
                    spec[path: "linux.netDevices"] = [a: [String: Any]()]
                    var linux = spec[dict: "linux"]
                    linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []).filter {
                        $0["type"] as? String != "network"
                    }
                    spec["linux"] = linux
                }
            ),
            (
                "linux.netDevices[\"nosuchdev0\"]",
                { spec in spec[path: "linux.netDevices"] = ["nosuchdev0": [String: Any]()] }
            ),
            ("linux.netDevices[\"\(a)\"].name", { spec in spec[path: "linux.netDevices"] = [a: ["name": "bad/name"]] }),
            // A name the container's namespace already has: the kernel refuses the move.
            ("linux.netDevices[\"\(a)\"]", { spec in spec[path: "linux.netDevices"] = [a: ["name": "lo"]] }),
        ]
        // crun 1.28 moves devices without a network namespace of its own, and does not check names first.
        for (field, edit) in cases where !isCrun || field.contains("nosuchdev0") {
            let id = "netdev\(UInt32.random(in: 0...UInt32.max))"
            let b = try bundle { spec in
                ContainerTestCase.args(["true"])(&spec)
                edit(&spec)
            }
            let r = sl(["run", "--bundle", b, id])
            XCTAssertNotEqual(r.status, 0, "\(field) must be refused")
            if isSwiftlet { XCTAssertTrue(r.stderr.contains(field), "error names \(field): \(r.stderr)") }
            sl(["delete", "-f", id])
            assertNothingLeft(id)
            XCTAssertTrue(hostHasLink(a), "\(field): the device stays on the host")
        }
    }
}

/// linux.resources.pids.limit as runtime-spec 1.3 clarified it: 0 is a real limit, -1 is "max", and
/// (as runc 1.1-1.3 do) `update --pids-limit 0` leaves the limit alone.
final class PidsLimitTests: ContainerTestCase {
    /// Runs `sleep` detached in a cgroup at a known path; returns the id and its pids.max file.
    func start(limit: Int64?) throws -> (String, String) {
        let id = "pids\(UInt32.random(in: 0...UInt32.max))"
        let path = "/swiftlet-test-\(id)"
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            spec[path: "linux.cgroupsPath"] = path
            if let limit { spec[path: "linux.resources"] = ["pids": ["limit": limit]] }
        }
        let r = sl(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(r.status, 0, r.stderr)
        addTeardownBlock { self.sl(["delete", "-f", id]) }
        let v2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
        return (id, (v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/pids") + path + "/pids.max")
    }

    func read(_ file: String) -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "missing" }

    func testPidsLimitZeroIsALimit() throws {
        let (_, file) = try start(limit: 0)
        // runc up to 1.3 and crun 1.28 still read 0 as "unset" (pids.max stays "max").
        if isSwiftlet { XCTAssertEqual(read(file), "0\n") }
    }

    func testNegativePidsLimitIsMax() throws {
        let (_, file) = try start(limit: -1)
        XCTAssertEqual(read(file), "max\n")
    }

    func testUpdateWithPidsLimitZeroKeepsTheLimit() throws {
        let (id, file) = try start(limit: 50)
        XCTAssertEqual(read(file), "50\n")
        XCTAssertEqual(sl(["update", "--pids-limit", "0", id]).status, 0)
        XCTAssertEqual(read(file), "50\n")
        XCTAssertEqual(sl(["update", "--pids-limit", "-1", id]).status, 0)
        XCTAssertEqual(read(file), "max\n")
    }
}

/// linux.intelRdt on a host without resctrl (this one): a clear error, nothing left (runtime-spec:
/// "If no mounted resctrl pseudo-filesystem is available ... the runtime MUST generate an error").
final class IntelRdtRefusalTests: ContainerTestCase {
    func testIntelRdtWithoutResctrlIsRefused() throws {
        try XCTSkipIf(
            !mountsContaining(" - resctrl ").isEmpty,
            "this host has resctrl mounted; IntelRdtTests cover the fixture")
        for rdt: [String: Any] in [["closID": "gold", "schemata": ["L3:0=7ff"]], ["enableMonitoring": true]] {
            let id = "rdt\(UInt32.random(in: 0...UInt32.max))"
            let b = try bundle { spec in
                ContainerTestCase.args(["true"])(&spec)
                spec[path: "linux.intelRdt"] = rdt
            }
            let r = sl(["run", "--bundle", b, id])
            // runc (1.1 to 1.3) ignores intelRdt without resctrl; swiftlet and crun follow the spec (Spec/cli.md).
            if !(Runtime.binary as NSString).lastPathComponent.hasPrefix("runc") {
                XCTAssertNotEqual(r.status, 0, "\(rdt) needs resctrl")
            }
            if (Runtime.binary as NSString).lastPathComponent.hasPrefix("swiftlet") {
                XCTAssertTrue(r.stderr.contains("linux.intelRdt"), r.stderr)
            }
            sl(["delete", "-f", id])
            assertNothingLeft(id)
        }
    }
}

/// runc 1.2+'s CLI additions: --pidfd-socket for run/create/exec, update --cpu-burst.
final class Runc12CLITests: ContainerTestCase {
    /// The pid a pidfd refers to, from /proc/self/fdinfo.
    func pid(ofPidfd fd: Int32) -> Int32? {
        guard let info = try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8) else { return nil }
        let line = info.split(separator: "\n").first { $0.hasPrefix("Pid:") }
        return line.flatMap { Int32($0.dropFirst(4).trimmingCharacters(in: .whitespaces)) }
    }

    func statePid(_ id: String) -> Int32? {
        let r = sl(["state", id])
        let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return (obj?["pid"] as? NSNumber)?.int32Value
    }

    func testRunSendsAPidfdOfInit() throws {
        let sock = try ConsoleSocket(path: root.path + "/pidfd.sock")
        let id = "pfd\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let r = sl(["run", "-d", "--pidfd-socket", sock.path, "--bundle", b, id])
        XCTAssertEqual(r.status, 0, r.stderr)
        defer { sl(["delete", "-f", id]) }
        let fd = try XCTUnwrap(sock.receive(), "a pidfd arrives")
        defer { close(fd) }
        XCTAssertEqual(pid(ofPidfd: fd), statePid(id))
    }

    func testExecSendsAPidfdOfTheExecdProcess() throws {
        let sock = try ConsoleSocket(path: root.path + "/pidfd.sock")
        let id = "pfd\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let pidFile = root.path + "/exec.pid"
        let r = sl(["exec", "-d", "--pid-file", pidFile, "--pidfd-socket", sock.path, id, "sleep", "50"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let fd = try XCTUnwrap(sock.receive(), "a pidfd arrives")
        defer { close(fd) }
        XCTAssertEqual(pid(ofPidfd: fd), Int32(try String(contentsOfFile: pidFile, encoding: .utf8)))
    }

    func testUnreachablePidfdSocketFailsAndLeavesNothing() throws {
        let id = "pfd\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let r = sl(["run", "-d", "--pidfd-socket", root.path + "/nobody-listens.sock", "--bundle", b, id])
        XCTAssertNotEqual(r.status, 0)
        if (Runtime.binary as NSString).lastPathComponent.hasPrefix("swiftlet") {
            XCTAssertTrue(r.stderr.contains("pidfd-socket"), r.stderr)
        }
        sl(["delete", "-f", id])
        assertNothingLeft(id)
    }

    func testUpdateCPUBurst() throws {
        let id = "burst\(UInt32.random(in: 0...UInt32.max))"
        let path = "/swiftlet-test-\(id)"
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            spec[path: "linux.cgroupsPath"] = path
            spec[path: "linux.resources"] = ["cpu": ["quota": 50000, "period": 100000]]
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let v2 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers")
        let file = v2 ? "/sys/fs/cgroup\(path)/cpu.max.burst" : "/sys/fs/cgroup/cpu\(path)/cpu.cfs_burst_us"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: file), "kernel without CFS burst (before 5.14)")
        let r = sl(["update", "--cpu-burst", "1000", id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "1000\n")
    }
}

/// `features` reports the runtime-spec 1.3 fields, each true only where it works on this host.
final class FeaturesSpec13Tests: ContainerTestCase {
    func testFeaturesReportTheSpec13Fields() throws {
        let f = sl(["features"])
        XCTAssertEqual(f.status, 0, f.stderr)
        let features = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any])
        let linux = try XCTUnwrap(features["linux"] as? [String: Any])
        XCTAssertEqual((linux["netDevices"] as? [String: Any])?["enabled"] as? Bool, true)
        let mpol = try XCTUnwrap(linux["memoryPolicy"] as? [String: Any])
        // What this kernel takes (FeaturesAuditTests.testListedMemoryPoliciesWork tries each): the
        // modes of Linux 5.15 (6.9 added MPOL_WEIGHTED_INTERLEAVE) and the three flags.
        let modes = Set(mpol["modes"] as? [String] ?? [])
        XCTAssertTrue(
            modes.isSuperset(of: [
                "MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_LOCAL",
                "MPOL_PREFERRED_MANY",
            ]), "\(modes)")
        XCTAssertEqual(modes.contains("MPOL_WEIGHTED_INTERLEAVE"), Kernel.atLeast(6, 9))
        XCTAssertEqual(
            Set(mpol["flags"] as? [String] ?? []),
            ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"])
        let resctrl = !mountsContaining(" - resctrl ").isEmpty
        let rdt = try XCTUnwrap(linux["intelRdt"] as? [String: Any])
        XCTAssertEqual(rdt["enabled"] as? Bool, resctrl)
        XCTAssertEqual(rdt["schemata"] as? Bool, resctrl)
        XCTAssertEqual(rdt["monitoring"] as? Bool, resctrl)
        XCTAssertEqual(features["potentiallyUnsafeConfigAnnotations"] as? [String], ["org.criu.config"])
    }
}

/// process.execCPUAffinity (runtime-spec 1.2.1): `initial` before the exec'd process joins the container's
/// cgroup, `final` after; not applied to init. Checked from /proc/self/status inside, with the runtime
/// started pinned to CPU 1 (a pinned shim must not pin the container either way).
final class ExecCPUAffinityTests: ContainerTestCase {
    func affinityOfExec(_ affinity: [String: Any]?) throws -> (RunResult, String) {
        let id = "aff\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        addTeardownBlock { self.sl(["delete", "-f", id]) }
        var process: [String: Any] = [
            "args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
            "user": ["uid": 0, "gid": 0], "env": ["PATH=/bin"],
        ]
        if let affinity { process["execCPUAffinity"] = affinity }
        let p = root.path + "/p-\(UInt32.random(in: 0...UInt32.max)).json"
        try JSONSerialization.data(withJSONObject: process).write(to: URL(fileURLWithPath: p))
        let r = runProgram("/usr/bin/taskset", ["-c", "1", Runtime.binary, "--root", root.path, "exec", "-p", p, id])
        return (
            r, r.stdout.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        )
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipIf(ProcessInfo.processInfo.activeProcessorCount < 2, "needs two CPUs")
    }

    func testFinalAffinityAppliesInTheContainer() throws {
        let (r, cpus) = try affinityOfExec(["initial": "0", "final": "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(cpus, "1")
    }

    func testInitialAffinityStaysWithoutFinal() throws {
        let (r, cpus) = try affinityOfExec(["initial": "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(cpus, "0")
    }

    func testWithoutExecCPUAffinityTheCallersPinIsDropped() throws {
        let (r, cpus) = try affinityOfExec(nil)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(cpus, "0-\(ProcessInfo.processInfo.activeProcessorCount - 1)")
    }

    func testInitIgnoresExecCPUAffinity() throws {
        let r = try run(["grep", "Cpus_allowed_list", "/proc/self/status"]) { spec in
            spec[path: "process.execCPUAffinity"] = ["initial": "0", "final": "0"]
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasSuffix("0-\(ProcessInfo.processInfo.activeProcessorCount - 1)\n"), r.stdout)
    }

    func testMalformedCPUListIsRefused() throws {
        let (r, _) = try affinityOfExec(["initial": "x"])
        XCTAssertNotEqual(r.status, 0)
        if (Runtime.binary as NSString).lastPathComponent.hasPrefix("swiftlet") {
            XCTAssertTrue(r.stderr.contains("execCPUAffinity.initial"), r.stderr)
        }
    }
}
