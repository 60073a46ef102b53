import Foundation
import OCI
import XCTest

@testable import Cgroups

final class V2FixtureTests: XCTestCase {
    var f = Fixture()
    var m = CgroupManager(layout: .v2(mountPoint: "/"), path: "/")
    let log = WriteLog()
    let dir = "/sys/fs/cgroup/swiftlet/test/"

    override func setUp() {
        let (fixture, layout) = Fixture.v2()
        f = fixture
        m = CgroupManager(layout: layout, path: "/swiftlet/test", fsRoot: f.root).logging(log)
    }

    override func tearDown() { f.remove() }

    func testCreateEnablesControllersInAncestors() throws {
        f.write("/sys/fs/cgroup/cgroup.subtree_control", "cpu memory\n")
        f.delete("/sys/fs/cgroup/swiftlet/test")
        try m.create()
        XCTAssertTrue(f.exists("/sys/fs/cgroup/swiftlet/test"))
        XCTAssertEqual(
            f.read("/sys/fs/cgroup/cgroup.subtree_control"), "+cpuset +io +hugetlb +pids +rdma +misc",
            "only the controllers not enabled yet")
        XCTAssertEqual(
            f.read("/sys/fs/cgroup/swiftlet/cgroup.subtree_control"),
            "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc")
        XCTAssertEqual(log.writes(to: "cgroup.subtree_control").count, 2, "the leaf's subtree_control is not touched")
    }

    func testCreateRemovesWhatItMadeOnFailure() {
        f.delete("/sys/fs/cgroup/swiftlet")
        let long = CgroupManager(
            layout: m.layout, path: "/swiftlet/" + String(repeating: "x", count: 300), fsRoot: f.root)
        XCTAssertEqual(cgroupError { try long.create() }?.errno, ENAMETOOLONG)
        XCTAssertFalse(f.exists("/sys/fs/cgroup/swiftlet"), "the level created before the failure is removed")
    }

    func testSetAllV2() throws {
        let r = resources(
            """
            {"memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10, "disableOOMKiller": true},
             "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 1000, "realtimeRuntime": 5, "cpus": "0-1", "mems": "0", "idle": 0},
             "pids": {"limit": 32},
             "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                         "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
             "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
             "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 10000}},
             "devices": [{"allow": false, "access": "rwm"}],
             "unified": {"memory.oom.group": "1", "memory.high": "60000000"}}
            """)
        f.write(dir + "memory.oom.group", "0\n")
        f.write(dir + "memory.high", "max\n")
        try m.set(r, initial: true)
        XCTAssertEqual(f.read(dir + "memory.max"), "67108864")
        XCTAssertEqual(f.read(dir + "memory.swap.max"), "67108864", "swap - limit")
        XCTAssertEqual(f.read(dir + "memory.low"), "33554432")
        XCTAssertEqual(f.read(dir + "cpu.weight"), "100")
        XCTAssertEqual(f.read(dir + "cpu.max"), "50000 200000")
        XCTAssertEqual(f.read(dir + "cpu.max.burst"), "1000")
        XCTAssertEqual(f.read(dir + "cpu.idle"), "0")
        XCTAssertEqual(f.read(dir + "cpuset.cpus"), "0-1")
        XCTAssertEqual(f.read(dir + "pids.max"), "32")
        XCTAssertEqual(f.read(dir + "io.weight"), "4950")
        XCTAssertEqual(log.writes(to: "io.max"), ["8:0 rbps=1048576", "8:16 wiops=100"])
        XCTAssertEqual(f.read(dir + "hugetlb.2MB.max"), "4194304")
        XCTAssertEqual(f.read(dir + "hugetlb.2MB.rsvd.max"), "4194304")
        XCTAssertEqual(f.read(dir + "rdma.max"), "mlx5_0 hca_handle=3 hca_object=10000")
        XCTAssertEqual(f.read(dir + "memory.oom.group"), "1")
        XCTAssertEqual(f.read(dir + "memory.high"), "60000000")
        // runc's order: pids, memory (swap first), io, cpu, cpuset, hugetlb, rdma, unified (sorted keys).
        XCTAssertEqual(
            log.files(),
            [
                "pids.max", "memory.swap.max", "memory.max", "memory.low", "io.weight", "io.max", "io.max",
                "cpu.idle", "cpu.weight", "cpu.max.burst", "cpu.max", "cpuset.cpus", "cpuset.mems",
                "hugetlb.2MB.max", "hugetlb.2MB.rsvd.max", "rdma.max", "memory.high", "memory.oom.group",
            ])
    }

    func testCPUMaxForms() throws {
        try m.set(resources(#"{"cpu": {"period": 50000}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "cpu.max"), "max 50000")
        try m.set(resources(#"{"cpu": {"quota": 25000}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "cpu.max"), "25000 100000")
        try m.set(resources(#"{"cpu": {"quota": -1, "period": 100000}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "cpu.max"), "max 100000")
        try m.set(resources(#"{"cpu": {"shares": 2}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "cpu.weight"), "1")
    }

    func testMemoryForms() throws {
        try m.set(resources(#"{"memory": {"limit": -1}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "memory.max"), "max")
        XCTAssertEqual(f.read(dir + "memory.swap.max"), "max")
        try m.set(resources(#"{"memory": {"limit": 1000, "swap": 1000}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "memory.swap.max"), "0", "swap equal to limit: no swap")
        // No swap accounting: "0" and "max" are skipped, a real swap limit is an error.
        f.delete(dir + "memory.swap.max")
        try m.set(resources(#"{"memory": {"limit": 2000, "swap": 2000}}"#), initial: true)
        XCTAssertEqual(f.read(dir + "memory.max"), "2000")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"memory": {"limit": 2000, "swap": 3000}}"#), initial: true) }?.errno,
            ENOENT)
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"memory": {"swap": 3000}}"#), initial: true) }?.message,
            "linux.resources.memory.swap: cannot be set without memory.limit on cgroup v2")
    }

    func testCheckBeforeUpdate() {
        let e = cgroupError {
            try m.set(resources(#"{"memory": {"limit": 1048576, "checkBeforeUpdate": true}}"#), initial: false)
        }
        XCTAssertEqual(
            e?.message,
            "linux.resources.memory.limit: rejecting memory limit 1048576 <= usage 1048576 (checkBeforeUpdate)")
        XCTAssertEqual(f.read(dir + "memory.max"), "max")
    }

    func testUnifiedErrors() {
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"unified": {"../memory.max": "1"}}"#), initial: true) }?.message,
            "linux.resources.unified[\"../memory.max\"]: must be a cgroup file name like \"memory.high\"")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"unified": {"nodot": "1"}}"#), initial: true) }?.message,
            "linux.resources.unified[\"nodot\"]: must be a cgroup file name like \"memory.high\"")
        f.write(dir + "cgroup.controllers", "cpu memory\n")
        f.delete(dir + "pids.max")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"unified": {"pids.max": "1"}}"#), initial: false) }?.message,
            "linux.resources.unified[\"pids.max\"]: controller \"pids\" is not available in "
                + "\(f.root)/sys/fs/cgroup/swiftlet/test"
        )
    }

    func testControllerErrors() {
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"network": {"classID": 7}}"#), initial: true) }?.message,
            "linux.resources.network: net_cls/net_prio do not exist on cgroup v2")
        f.write(dir + "cgroup.controllers", "cpu memory\n")
        f.delete(dir + "hugetlb.2MB.max")
        XCTAssertEqual(
            cgroupError {
                try m.set(resources(#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}"#), initial: true)
            }?.message,
            "linux.resources.hugepageLimits: the \"hugetlb\" controller is not available in "
                + "\(f.root)/sys/fs/cgroup/swiftlet/test"
        )
    }

    func testUpdateRollsBack() throws {
        try m.set(resources(#"{"memory": {"limit": 100000000}, "cpu": {"shares": 512}}"#), initial: true)
        f.delete(dir + "cpu.max")
        let e = cgroupError {
            try m.set(
                resources(
                    #"{"pids": {"limit": 9}, "memory": {"limit": 200000000, "swap": 300000000}, "cpu": {"shares": 2048, "quota": 1000}}"#
                ),
                initial: false)
        }
        XCTAssertEqual(e?.errno, ENOENT)
        XCTAssertEqual(f.read(dir + "pids.max"), "max")
        XCTAssertEqual(f.read(dir + "memory.max"), "100000000")
        XCTAssertEqual(f.read(dir + "memory.swap.max"), "max")
        XCTAssertEqual(f.read(dir + "cpu.weight"), String(CgroupManager.cpuWeight(shares: 512)))
    }

    func testStatsV2() throws {
        let s = try m.stats()
        XCTAssertEqual(s.cpu.usage.total, 1_500_000)
        XCTAssertEqual(s.cpu.usage.user, 1_000_000)
        XCTAssertEqual(s.cpu.usage.kernel, 500_000)
        XCTAssertEqual(s.cpu.throttling.throttledTime, 20_000)
        XCTAssertEqual(s.cpu.psi?.some.avg10, 0.5)
        XCTAssertEqual(s.cpu.psi?.some.total, 1234)
        XCTAssertEqual(s.memory.cache, 524_288)
        XCTAssertEqual(s.memory.usage.usage, 1_048_576)
        XCTAssertEqual(s.memory.usage.max, 2_097_152)
        XCTAssertEqual(s.memory.usage.limit, UInt64.max)
        XCTAssertEqual(s.memory.swap.usage, 1_048_576, "memory + swap")
        XCTAssertEqual(s.memory.swap.limit, UInt64.max)
        XCTAssertEqual(s.pids.current, 2)
        XCTAssertEqual(
            s.blkio.ioServiceBytesRecursive,
            [
                BlkioEntry(major: 8, minor: 0, op: "Read", value: 4096),
                BlkioEntry(major: 8, minor: 0, op: "Write", value: 8192),
            ])
        XCTAssertEqual(s.blkio.ioServicedRecursive.count, 2)
        XCTAssertEqual(s.blkio.psi?.full.total, 5)
        XCTAssertEqual(s.hugetlb["2MB"]?.failcnt, 3)
        let json = encodeJSON(s)
        XCTAssertTrue(
            json.hasPrefix(
                #"{"cpu":{"usage":{"total":1500000,"kernel":500000,"user":1000000},"throttling":{"periods":4,"throttledPeriods":1,"throttledTime":20000},"psi":{"some":{"avg10":0.5,"avg60":0.25,"avg300":0,"total":1234}}},"cpuset":{"cpu_exclusive":0,"#
            ), json)
        XCTAssertTrue(
            json.contains(
                #""memory":{"cache":524288,"usage":{"limit":18446744073709551615,"usage":1048576,"max":2097152,"failcnt":0},"swap":{"limit":18446744073709551615,"usage":1048576,"failcnt":0},"raw":{"anon":524288,"file":524288},"psi":{}}"#
            ), json)
        XCTAssertTrue(json.contains(#""pids":{"current":2}"#), json)
    }

    func testFreezeThawKillV2() throws {
        f.write(dir + "cgroup.events", "populated 1\nfrozen 1\n")
        try m.freeze()
        XCTAssertEqual(f.read(dir + "cgroup.freeze"), "1")
        XCTAssertTrue(m.isFrozen())
        try m.thaw()
        XCTAssertEqual(f.read(dir + "cgroup.freeze"), "0")
        XCTAssertFalse(m.isFrozen())
        // SIGKILL goes through cgroup.kill (no kill(2) on the fixture's fake pids).
        f.write(dir + "cgroup.procs", "999999\n")
        try m.killAll(signal: SIGKILL)
        XCTAssertEqual(f.read(dir + "cgroup.kill"), "1")
    }

    func testPidsStatsWithoutPidsController() throws {
        f.delete(dir + "pids.current")
        f.write(dir + "cgroup.procs", "1\n2\n3\n")
        XCTAssertEqual(
            try m.stats().pids,
            {
                var p = PidsStats()
                p.current = 3
                return p
            }())
    }
}

final class HybridFixtureTests: XCTestCase {
    func testHybridCreateAddAndHugetlbInUnifiedTree() throws {
        let (f, layout) = Fixture.hybrid()
        defer { f.remove() }
        let log = WriteLog()
        let m = CgroupManager(layout: layout, path: "/swiftlet/test", fsRoot: f.root).logging(log)
        let u = "/sys/fs/cgroup/unified"
        XCTAssertEqual(m.paths[""], f.root + u + "/swiftlet/test")
        f.delete(u + "/swiftlet/test")
        try m.create()
        XCTAssertTrue(f.exists(u + "/swiftlet/test"), "the unified directory is created like runc")
        XCTAssertEqual(log.writes(to: "cgroup.subtree_control"), [], "no controllers enabled at create")
        f.write(u + "/swiftlet/test/cgroup.procs", "")
        try m.add(pid: 77)
        XCTAssertEqual(f.read(u + "/swiftlet/test/cgroup.procs"), "77")

        f.write(u + "/swiftlet/test/hugetlb.2MB.max", "max\n")
        try m.set(
            resources(#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}], "memory": {"limit": 1000000}}"#),
            initial: true)
        XCTAssertEqual(f.read(u + "/swiftlet/test/hugetlb.2MB.max"), "2097152")
        XCTAssertEqual(f.read(u + "/cgroup.subtree_control"), "+hugetlb")
        XCTAssertEqual(f.read("/sys/fs/cgroup/memory/swiftlet/test/memory.limit_in_bytes"), "1000000")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"unified": {"hugetlb.2MB.max": "1"}}"#), initial: true) }?.message,
            "linux.resources.unified: requires cgroup v2")
    }

    /// The parts of a hybrid cgroup: init cloned into the unified tree joins the v1 hierarchies
    /// itself (`tasks`), or the runtime writes its pid to the v1 part or the unified part only.
    func testHybridPartsAndSelfAttach() throws {
        let (f, layout) = Fixture.hybrid()
        defer { f.remove() }
        let log = WriteLog()
        let m = CgroupManager(layout: layout, path: "/swiftlet/test", fsRoot: f.root).logging(log)
        let u = "/sys/fs/cgroup/unified/swiftlet/test/"
        XCTAssertEqual(
            m.v1TaskFiles.count, Fixture.v1Controllers.count - 2, "no hugetlb here; cpu,cpuacct once; no unified")
        XCTAssertFalse(m.v1TaskFiles.contains { $0.hasPrefix(f.root + "/sys/fs/cgroup/unified") })
        try m.addSelfToV1()
        XCTAssertEqual(log.writes(to: "tasks"), Array(repeating: "0", count: m.v1TaskFiles.count))
        XCTAssertFalse(f.exists(u + "tasks"))
        log.clear()
        try m.add(pid: 5, to: .v1Only)
        XCTAssertEqual(log.writes(to: "cgroup.procs").count, m.v1TaskFiles.count)
        XCTAssertEqual(f.read(u + "cgroup.procs"), "")
        log.clear()
        try m.add(pid: 6, to: .unifiedOnly)
        XCTAssertEqual(log.writes(to: "cgroup.procs"), ["6"])
        XCTAssertEqual(f.read(u + "cgroup.procs"), "6")
    }

    func testHybridStatsHavePSIAndFreezeUsesV1() throws {
        let (f, layout) = Fixture.hybrid()
        defer { f.remove() }
        let m = CgroupManager(layout: layout, path: "/swiftlet/test", fsRoot: f.root)
        let s = try m.stats()
        XCTAssertEqual(s.cpu.psi?.some.avg10, 1.0)
        XCTAssertNotNil(s.memory.psi)
        XCTAssertEqual(s.hugetlb["2MB"], HugetlbStats(), "hugetlb from the unified tree")
        try m.freeze()
        XCTAssertEqual(f.read("/sys/fs/cgroup/freezer/swiftlet/test/freezer.state"), "FROZEN")
        XCTAssertEqual(f.read("/sys/fs/cgroup/unified/swiftlet/test/cgroup.freeze"), "0")
        try m.thaw()
    }

    func testHybridWithoutV1FreezerUsesCgroupFreeze() throws {
        let (f, layout) = Fixture.hybrid()
        defer { f.remove() }
        var h = layout.hierarchies
        h["freezer"] = nil
        let m = CgroupManager(
            layout: .hybrid(hierarchies: h, unified: "/sys/fs/cgroup/unified"), path: "/swiftlet/test", fsRoot: f.root)
        f.write("/sys/fs/cgroup/unified/swiftlet/test/cgroup.events", "populated 1\nfrozen 1\n")
        try m.freeze()
        XCTAssertEqual(f.read("/sys/fs/cgroup/unified/swiftlet/test/cgroup.freeze"), "1")
        XCTAssertTrue(m.isFrozen())
    }
}
