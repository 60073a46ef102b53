import Foundation
import OCI
import XCTest

@testable import Cgroups

final class V1FixtureTests: XCTestCase {
    var f = Fixture()
    var m = CgroupManager(layout: .v1(hierarchies: [:]), path: "/")
    let log = WriteLog()
    let mem = "/sys/fs/cgroup/memory/swiftlet/test/"
    let cpu = "/sys/fs/cgroup/cpu,cpuacct/swiftlet/test/"

    override func setUp() {
        let (fixture, layout) = Fixture.v1()
        f = fixture
        m = CgroupManager(layout: layout, path: "/swiftlet/test", fsRoot: f.root).logging(log)
    }

    override func tearDown() { f.remove() }

    func testCreateCopiesCpusetFromParentAtEveryLevel() throws {
        // A fresh tree: the fixture's container directories are replaced by empty cpuset files.
        f.delete("/sys/fs/cgroup/cpuset/swiftlet")
        f.write("/sys/fs/cgroup/cpuset/swiftlet/cpuset.cpus", "\n")
        f.write("/sys/fs/cgroup/cpuset/swiftlet/cpuset.mems", "\n")
        f.write("/sys/fs/cgroup/cpuset/swiftlet/test/cpuset.cpus", "\n")
        f.write("/sys/fs/cgroup/cpuset/swiftlet/test/cpuset.mems", "1\n")
        f.delete("/sys/fs/cgroup/pids/swiftlet")
        try m.create()
        XCTAssertEqual(f.read("/sys/fs/cgroup/cpuset/swiftlet/cpuset.cpus"), "0-1")
        XCTAssertEqual(f.read("/sys/fs/cgroup/cpuset/swiftlet/cpuset.mems"), "0")
        XCTAssertEqual(f.read("/sys/fs/cgroup/cpuset/swiftlet/test/cpuset.cpus"), "0-1")
        XCTAssertEqual(f.read("/sys/fs/cgroup/cpuset/swiftlet/test/cpuset.mems"), "1", "a non-empty value is kept")
        XCTAssertTrue(f.exists("/sys/fs/cgroup/pids/swiftlet/test"))
        XCTAssertTrue(m.exists())
    }

    func testCreateRefusesHierarchyRoot() {
        let root = CgroupManager(layout: m.layout, path: "/", fsRoot: f.root)
        XCTAssertTrue(cgroupError { try root.create() }?.message.hasSuffix("is the root of its hierarchy") ?? false)
        XCTAssertEqual(
            cgroupError { try CgroupManager(layout: .v1(hierarchies: [:]), path: "/x").create() }?.message,
            "no cgroup hierarchy is mounted")
    }

    func testAddWritesEveryHierarchyOnce() throws {
        try m.add(pid: 4242)
        XCTAssertEqual(f.read(mem + "cgroup.procs"), "4242")
        XCTAssertEqual(f.read("/sys/fs/cgroup/systemd/swiftlet/test/cgroup.procs"), "4242")
        XCTAssertEqual(
            log.writes(to: "cgroup.procs").count, Fixture.v1Controllers.count - 1, "cpu,cpuacct written once")
    }

    func testAddSelfWritesZeroToEveryV1TasksFileOnce() throws {
        try m.addSelfToV1()
        XCTAssertEqual(f.read(mem + "tasks"), "0")
        XCTAssertEqual(f.read("/sys/fs/cgroup/systemd/swiftlet/test/tasks"), "0")
        XCTAssertEqual(log.writes(to: "tasks").count, Fixture.v1Controllers.count - 1, "cpu,cpuacct written once")
        XCTAssertTrue(log.writes(to: "cgroup.procs").isEmpty)
    }

    func testSetAllV1() throws {
        let r = resources(
            """
            {"memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "kernel": 1, "kernelTCP": 65536,
                        "swappiness": 10, "disableOOMKiller": true},
             "cpu": {"shares": 512, "quota": 50000, "period": 200000, "burst": 1000, "realtimeRuntime": 950,
                     "realtimePeriod": 1000, "cpus": "1", "mems": "0", "idle": 1},
             "pids": {"limit": 32},
             "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                         "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                         "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
             "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
             "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                         {"allow": true, "type": "c", "major": 136, "access": "rw"}]}
            """)
        try m.set(r, initial: true)
        XCTAssertEqual(f.read(mem + "memory.limit_in_bytes"), "67108864")
        XCTAssertEqual(f.read(mem + "memory.memsw.limit_in_bytes"), "134217728")
        XCTAssertEqual(f.read(mem + "memory.soft_limit_in_bytes"), "33554432")
        XCTAssertEqual(f.read(mem + "memory.kmem.tcp.limit_in_bytes"), "65536")
        XCTAssertEqual(f.read(mem + "memory.kmem.limit_in_bytes"), "9223372036854771712", "memory.kernel is ignored")
        XCTAssertEqual(f.read(mem + "memory.swappiness"), "10")
        XCTAssertEqual(f.read(mem + "memory.oom_control"), "1")
        XCTAssertEqual(f.read(cpu + "cpu.shares"), "512")
        XCTAssertEqual(f.read(cpu + "cpu.cfs_quota_us"), "50000")
        XCTAssertEqual(f.read(cpu + "cpu.cfs_period_us"), "200000")
        XCTAssertEqual(f.read(cpu + "cpu.cfs_burst_us"), "1000")
        XCTAssertEqual(f.read(cpu + "cpu.idle"), "1")
        XCTAssertEqual(f.read(cpu + "cpu.rt_runtime_us"), "950")
        XCTAssertEqual(f.read(cpu + "cpu.rt_period_us"), "1000")
        XCTAssertEqual(f.read("/sys/fs/cgroup/cpuset/swiftlet/test/cpuset.cpus"), "1")
        XCTAssertEqual(f.read("/sys/fs/cgroup/cpuset/swiftlet/test/cpuset.mems"), "0")
        XCTAssertEqual(f.read("/sys/fs/cgroup/pids/swiftlet/test/pids.max"), "32")
        let blk = "/sys/fs/cgroup/blkio/swiftlet/test/"
        XCTAssertEqual(f.read(blk + "blkio.bfq.weight"), "300", "no blkio.weight: BFQ file")
        XCTAssertEqual(f.read(blk + "blkio.bfq.weight_device"), "8:0 200")
        XCTAssertEqual(f.read(blk + "blkio.throttle.read_bps_device"), "8:0 1048576")
        XCTAssertEqual(f.read(blk + "blkio.throttle.write_iops_device"), "8:16 100")
        XCTAssertEqual(f.read("/sys/fs/cgroup/hugetlb/swiftlet/test/hugetlb.2MB.limit_in_bytes"), "4194304")
        XCTAssertEqual(log.writes(to: "devices.deny"), ["a *:* rwm"])
        XCTAssertEqual(log.writes(to: "devices.allow"), ["c 1:3 rwm", "c 136:* rw"])
        // runc's controller order: cpuset, devices, memory, cpu, pids, blkio, hugetlb.
        let order = log.files().map { String($0.prefix { $0 != "." }) }
        var seen: [String] = []
        for c in order where seen.last != c { seen.append(c) }
        XCTAssertEqual(seen, ["cpuset", "devices", "memory", "cpu", "pids", "blkio", "hugetlb"])
    }

    func testMemoryAndSwapOrder() throws {
        // From unlimited: memory first (memsw stays above it), then swap.
        try m.set(resources(#"{"memory": {"limit": 100000000, "swap": 200000000}}"#), initial: true)
        XCTAssertEqual(log.files(prefix: "memory."), ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"])
        // Growing beyond the current limit: swap first, then memory.
        log.clear()
        try m.set(resources(#"{"memory": {"limit": 300000000, "swap": 400000000}}"#), initial: false)
        XCTAssertEqual(log.files(prefix: "memory."), ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"])
        // Shrinking below the current limit: memory first.
        log.clear()
        try m.set(resources(#"{"memory": {"limit": 50000000, "swap": 60000000}}"#), initial: false)
        XCTAssertEqual(log.files(prefix: "memory."), ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"])
        // Unlimited memory with swap unset: swap unlimited too (before memory).
        log.clear()
        try m.set(resources(#"{"memory": {"limit": -1}}"#), initial: false)
        XCTAssertEqual(log.writes(to: "memory.memsw.limit_in_bytes"), ["-1"])
        XCTAssertEqual(f.read(mem + "memory.limit_in_bytes"), "-1")
    }

    func testSwapWithoutSwapAccounting() throws {
        f.delete(mem + "memory.memsw.limit_in_bytes")
        try m.set(resources(#"{"memory": {"limit": 1000000, "swap": 1000000}}"#), initial: true)
        try m.set(resources(#"{"memory": {"limit": 1000000, "swap": -1}}"#), initial: true)
        XCTAssertEqual(f.read(mem + "memory.limit_in_bytes"), "1000000")
        let e = cgroupError { try m.set(resources(#"{"memory": {"limit": 1000000, "swap": 2000000}}"#), initial: true) }
        XCTAssertEqual(
            e?.message,
            "linux.resources.memory.swap: swap accounting is disabled in this kernel "
                + "(\(f.root + mem)memory.memsw.limit_in_bytes is missing)"
        )
    }

    func testPidsLimitSemantics() throws {
        let pids = "/sys/fs/cgroup/pids/swiftlet/test/pids.max"
        try m.set(resources(#"{"pids": {"limit": -1}}"#), initial: true)
        XCTAssertEqual(f.read(pids), "max")
        try m.set(resources(#"{"pids": {"limit": 7}}"#), initial: true)
        try m.set(resources(#"{"pids": {}}"#), initial: true)
        XCTAssertEqual(f.read(pids), "7", "no limit given: untouched")
        try m.set(resources(#"{"pids": {"limit": 0}}"#), initial: true)
        XCTAssertEqual(f.read(pids), "0", "runtime-spec 1.3: 0 is a limit")
    }

    func testErrors() {
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"unified": {"memory.high": "1"}}"#), initial: true) }?.message,
            "linux.resources.unified: requires cgroup v2")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"memory": {"limit": 200, "swap": 100}}"#), initial: true) }?.message,
            "linux.resources.memory.swap: must be at least memory.limit (swap 100, limit 200)")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"memory": {"swappiness": 101}}"#), initial: true) }?.message,
            "linux.resources.memory.swappiness: 101 is out of range 0-100")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"network": {"classID": 1}}"#), initial: true) }?.message,
            "linux.resources.network.classID: the \"net_cls\" cgroup controller is not mounted")
        XCTAssertEqual(
            cgroupError {
                try m.set(resources(#"{"devices": [{"allow": true, "type": "x", "access": "r"}]}"#), initial: true)
            }?.message,
            "linux.resources.devices[0].type: invalid device type \"x\" (a, b or c)")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"devices": [{"allow": true, "access": ""}]}"#), initial: true) }?
                .message,
            "linux.resources.devices[0].access: invalid access \"\" (a combination of r, w, m)")
        XCTAssertEqual(
            cgroupError {
                try m.set(resources(#"{"hugepageLimits": [{"pageSize": "../x", "limit": 1}]}"#), initial: true)
            }?.message,
            "linux.resources.hugepageLimits[0].pageSize: invalid page size \"../x\"")
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"rdma": {"mlx5_0": {}}}"#), initial: true) }?.message,
            "linux.resources.rdma[\"mlx5_0\"]: needs hcaHandles or hcaObjects")
        // A missing file names the file, the value and errno.
        f.delete("/sys/fs/cgroup/pids/swiftlet/test/pids.max")
        let e = cgroupError { try m.set(resources(#"{"pids": {"limit": 5}}"#), initial: true) }
        XCTAssertEqual(
            e?.message, "write \(f.root)/sys/fs/cgroup/pids/swiftlet/test/pids.max: \"5\": No such file or directory")
        XCTAssertEqual(e?.errno, ENOENT)
        // Unknown huge page size.
        let h = cgroupError {
            try m.set(resources(#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#), initial: true)
        }
        XCTAssertEqual(
            h?.message,
            "linux.resources.hugepageLimits: page size \"3MB\" is not available "
                + "(\(f.root)/sys/fs/cgroup/hugetlb/swiftlet/test/hugetlb.3MB.limit_in_bytes is missing; sizes: 2MB)"
        )
    }

    func testUpdateRollsBackOnFailure() throws {
        try m.set(
            resources(
                #"{"memory": {"limit": 100000000, "swap": 200000000}, "cpu": {"shares": 256}, "pids": {"limit": 10}}"#),
            initial: true)
        f.delete("/sys/fs/cgroup/pids/swiftlet/test/pids.max")
        let e = cgroupError {
            try m.set(
                resources(
                    #"{"memory": {"limit": 300000000, "swap": 400000000}, "cpu": {"shares": 1024, "quota": 20000}, "pids": {"limit": 20}}"#
                ),
                initial: false)
        }
        XCTAssertEqual(e?.errno, ENOENT)
        XCTAssertEqual(
            e?.message, "write \(f.root)/sys/fs/cgroup/pids/swiftlet/test/pids.max: \"20\": No such file or directory")
        XCTAssertEqual(f.read(mem + "memory.limit_in_bytes"), "100000000")
        XCTAssertEqual(f.read(mem + "memory.memsw.limit_in_bytes"), "200000000")
        XCTAssertEqual(f.read(cpu + "cpu.shares"), "256")
        XCTAssertEqual(f.read(cpu + "cpu.cfs_quota_us"), "-1")
        // Restored newest first: cpu before memory, and memory before swap (swap was raised first).
        let restore = log.files().suffix(4)
        XCTAssertEqual(
            Array(restore), ["cpu.cfs_quota_us", "cpu.shares", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"])
        // memory.oom_control reads as "oom_kill_disable 0 ..." but takes a number.
        log.clear()
        _ = cgroupError {
            try m.set(resources(#"{"memory": {"disableOOMKiller": true}, "pids": {"limit": 3}}"#), initial: false)
        }
        XCTAssertEqual(log.writes(to: "memory.oom_control"), ["1", "0"])
        // No rollback for the initial set.
        log.clear()
        _ = cgroupError { try m.set(resources(#"{"cpu": {"shares": 2048}, "pids": {"limit": 20}}"#), initial: true) }
        XCTAssertEqual(f.read(cpu + "cpu.shares"), "2048")
    }

    func testUpdateSkipsDevices() throws {
        try m.set(resources(#"{"devices": [{"allow": false, "access": "rwm"}]}"#), initial: false)
        XCTAssertEqual(log.writes(to: "devices.deny"), [])
    }

    func testStatsV1() throws {
        let stats = try m.stats()
        XCTAssertEqual(stats.cpu.usage.total, 90_000_000)
        XCTAssertEqual(stats.cpu.usage.user, 30_000_000, "3 ticks at 100 Hz")
        XCTAssertEqual(stats.cpu.usage.kernel, 60_000_000)
        XCTAssertEqual(stats.cpu.usage.percpu, [40_000_000, 50_000_000])
        XCTAssertEqual(stats.cpu.usage.percpuUser, [10_000_000, 20_000_000])
        XCTAssertEqual(stats.cpu.usage.percpuKernel, [30_000_000, 30_000_000])
        XCTAssertEqual(stats.cpu.throttling.periods, 7)
        XCTAssertEqual(stats.cpu.throttling.throttledPeriods, 2)
        XCTAssertEqual(stats.cpu.throttling.throttledTime, 5000)
        XCTAssertEqual(stats.memory.cache, 12288)
        XCTAssertEqual(stats.memory.usage.usage, 4096)
        XCTAssertEqual(stats.memory.usage.max, 8192)
        XCTAssertEqual(stats.memory.usage.limit, 9_223_372_036_854_771_712)
        XCTAssertEqual(stats.memory.kernel.usage, 1024)
        XCTAssertEqual(stats.memory.raw["rss"], 4096)
        XCTAssertEqual(stats.pids.current, 1)
        XCTAssertEqual(stats.pids.limit, 0, "max reads as 0")
        XCTAssertEqual(
            stats.blkio.ioServiceBytesRecursive.count, 3, "BFQ files only have Total lines: throttle files used")
        XCTAssertEqual(stats.blkio.ioServicedRecursive.first, BlkioEntry(major: 8, minor: 0, op: "Read", value: 3))
        XCTAssertEqual(stats.hugetlb["2MB"], HugetlbStats())
        XCTAssertEqual(stats.cpuset.cpus, [])
        XCTAssertEqual(stats.cpuset.schedLoadBalance, 1)
        XCTAssertEqual(stats.cpuset.schedRelaxDomainLevel, -1)
        XCTAssertNil(stats.cpu.psi, "no unified tree in pure v1")
        let json = encodeJSON(stats)
        XCTAssertTrue(
            json.hasPrefix(
                #"{"cpu":{"usage":{"total":90000000,"percpu":[40000000,50000000],"percpu_kernel":[30000000,30000000],"percpu_user":[10000000,20000000],"kernel":60000000,"user":30000000},"throttling":{"periods":7,"throttledPeriods":2,"throttledTime":5000}},"cpuset":{"cpu_exclusive":0,"mem_hardwall":0,"#
            ), json)
        XCTAssertTrue(
            json.contains(
                #""pids":{"current":1},"blkio":{"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":4096},"#),
            json)
        XCTAssertTrue(
            json.hasSuffix(#""hugetlb":{"2MB":{"failcnt":0}},"intel_rdt":{},"network_interfaces":null}"#), json)
    }

    func testFreezeThawV1() throws {
        XCTAssertFalse(m.isFrozen())
        try m.freeze()
        XCTAssertEqual(f.read("/sys/fs/cgroup/freezer/swiftlet/test/freezer.state"), "FROZEN")
        XCTAssertTrue(m.isFrozen())
        f.write("/sys/fs/cgroup/freezer/swiftlet/test/freezer.self_freezing", "0\n")
        XCTAssertFalse(m.isFrozen(), "frozen only through an ancestor")
        try m.thaw()
        XCTAssertEqual(f.read("/sys/fs/cgroup/freezer/swiftlet/test/freezer.state"), "THAWED")
    }

    func testPidsRecursive() throws {
        f.write("/sys/fs/cgroup/pids/swiftlet/test/cgroup.procs", "30\n10\n")
        f.write("/sys/fs/cgroup/pids/swiftlet/test/sub/cgroup.procs", "20\n")
        f.write("/sys/fs/cgroup/pids/swiftlet/test/sub/deeper/cgroup.procs", "")
        XCTAssertEqual(try m.pids(), [10, 20, 30])
    }

    func testDestroyRemovesLeafAndChildrenOnly() throws {
        // A real cgroupfs lets rmdir remove a directory full of control files; a fixture does not:
        // leave bare directories.
        for dir in Set(m.paths.values) {
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(
                atPath: dir + "/child/grandchild", withIntermediateDirectories: true)
        }
        try m.destroy()
        XCTAssertFalse(m.exists())
        for dir in Set(m.paths.values) {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir))
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: (dir as NSString).deletingLastPathComponent), "parent stays")
        }
        try m.destroy()  // idempotent
        // A directory that cannot be removed is reported.
        f.write("/sys/fs/cgroup/pids/swiftlet/test/file", "")
        let e = cgroupError { try m.destroy() }
        XCTAssertEqual(e?.message, "rmdir \(f.root)/sys/fs/cgroup/pids/swiftlet/test: Directory not empty")
    }
}
