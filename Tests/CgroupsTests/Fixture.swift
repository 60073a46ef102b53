import Foundation
import OCI
import XCTest

@testable import Cgroups

/// A directory tree that looks like cgroupfs: control files pre-created with kernel-like defaults.
/// Writes to a fixture simply replace the file's content, so tests assert the last value written
/// (and the order of writes through `CgroupManager.writeObserver`).
final class Fixture {
    let root: String

    init() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("cgfix-\(UUID().uuidString)").path
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    func write(_ path: String, _ content: String) {
        let full = root + path
        try? FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(content.utf8))
    }

    func mkdir(_ path: String) {
        try? FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
    }

    /// Trimmed content, or "<missing>".
    func read(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: root + path) else { return "<missing>" }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: root + path) }

    func delete(_ path: String) { try? FileManager.default.removeItem(atPath: root + path) }

    /// Files of one controller in one cgroup directory, as a fresh kernel cgroup has them.
    func populate(_ dir: String, controller: String, isRoot: Bool = false) {
        write(dir + "/cgroup.procs", "")
        write(dir + "/tasks", "")
        for (name, content) in Fixture.defaults(controller, isRoot: isRoot) { write(dir + "/" + name, content) }
    }

    static func defaults(_ controller: String, isRoot: Bool) -> [(String, String)] {
        let unlimited = "9223372036854771712\n"
        switch controller {
        case "memory":
            return [
                ("memory.limit_in_bytes", unlimited), ("memory.memsw.limit_in_bytes", unlimited),
                ("memory.soft_limit_in_bytes", unlimited), ("memory.swappiness", "60\n"),
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
                ("memory.usage_in_bytes", "4096\n"), ("memory.max_usage_in_bytes", "8192\n"), ("memory.failcnt", "0\n"),
                ("memory.memsw.usage_in_bytes", "4096\n"), ("memory.memsw.max_usage_in_bytes", "8192\n"),
                ("memory.memsw.failcnt", "0\n"),
                ("memory.kmem.usage_in_bytes", "1024\n"), ("memory.kmem.max_usage_in_bytes", "2048\n"),
                ("memory.kmem.failcnt", "0\n"), ("memory.kmem.limit_in_bytes", unlimited),
                ("memory.kmem.tcp.usage_in_bytes", "0\n"), ("memory.kmem.tcp.max_usage_in_bytes", "0\n"),
                ("memory.kmem.tcp.failcnt", "0\n"), ("memory.kmem.tcp.limit_in_bytes", unlimited),
                ("memory.stat", "cache 12288\nrss 4096\nswap 0\n"), ("memory.use_hierarchy", "1\n"),
            ]
        case "cpu":
            return [
                ("cpu.shares", "1024\n"), ("cpu.cfs_period_us", "100000\n"), ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_burst_us", "0\n"), ("cpu.idle", "0\n"), ("cpu.rt_period_us", "1000000\n"),
                ("cpu.rt_runtime_us", "0\n"), ("cpu.stat", "nr_periods 7\nnr_throttled 2\nthrottled_time 5000\n"),
            ]
        case "cpuacct":
            return [
                ("cpuacct.stat", "user 3\nsystem 6\n"), ("cpuacct.usage", "90000000\n"),
                ("cpuacct.usage_percpu", "40000000 50000000 \n"),
                ("cpuacct.usage_all", "cpu user system\n0 10000000 30000000\n1 20000000 30000000\n"),
            ]
        case "cpuset":
            return [
                ("cpuset.cpus", isRoot ? "0-1\n" : "\n"), ("cpuset.mems", isRoot ? "0\n" : "\n"),
                ("cpuset.cpu_exclusive", "0\n"), ("cpuset.mem_exclusive", "0\n"), ("cpuset.mem_hardwall", "0\n"),
                ("cpuset.memory_migrate", "0\n"), ("cpuset.memory_pressure", "0\n"),
                ("cpuset.memory_spread_page", "0\n"), ("cpuset.memory_spread_slab", "0\n"),
                ("cpuset.sched_load_balance", "1\n"), ("cpuset.sched_relax_domain_level", "-1\n"),
            ]
        case "pids":
            return isRoot ? [] : [("pids.max", "max\n"), ("pids.current", "1\n")]
        case "blkio":
            return [
                ("blkio.bfq.weight", "100\n"), ("blkio.bfq.weight_device", "\n"),
                ("blkio.bfq.io_serviced_recursive", "Total 0\n"), ("blkio.bfq.io_service_bytes_recursive", "Total 0\n"),
                ("blkio.throttle.read_bps_device", ""), ("blkio.throttle.write_bps_device", ""),
                ("blkio.throttle.read_iops_device", ""), ("blkio.throttle.write_iops_device", ""),
                ("blkio.throttle.io_serviced_recursive", "8:0 Read 3\n8:0 Write 4\n8:0 Total 7\nTotal 7\n"),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n"
                ),
            ]
        case "devices":
            return [("devices.allow", ""), ("devices.deny", ""), ("devices.list", "a *:* rwm\n")]
        case "freezer":
            return isRoot ? [] : [("freezer.state", "THAWED\n")]
        case "hugetlb":
            return [
                ("hugetlb.2MB.limit_in_bytes", unlimited), ("hugetlb.2MB.usage_in_bytes", "0\n"),
                ("hugetlb.2MB.max_usage_in_bytes", "0\n"), ("hugetlb.2MB.failcnt", "0\n"),
            ]
        default:
            return []
        }
    }

    static let v1Controllers = [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "hugetlb", "name=systemd",
    ]

    /// v1: cpu,cpuacct co-mounted; every other controller on its own; `/swiftlet/test` pre-populated.
    static func v1(hugetlb: Bool = true) -> (Fixture, CgroupLayout) {
        let f = Fixture()
        var h: [String: String] = [:]
        for c in v1Controllers where hugetlb || c != "hugetlb" {
            let mount: String
            switch c {
            case "cpu", "cpuacct": mount = "/sys/fs/cgroup/cpu,cpuacct"
            case "name=systemd": mount = "/sys/fs/cgroup/systemd"
            default: mount = "/sys/fs/cgroup/" + c
            }
            h[c] = mount
            f.populate(mount, controller: c, isRoot: true)
            f.populate(mount + "/swiftlet", controller: c)
            f.populate(mount + "/swiftlet/test", controller: c)
        }
        f.write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
        return (f, .v1(hierarchies: h))
    }

    /// v2 at /sys/fs/cgroup with `/swiftlet/test` pre-populated.
    static func v2() -> (Fixture, CgroupLayout) {
        let f = Fixture()
        let all = "cpuset cpu io memory hugetlb pids rdma misc\n"
        f.write("/sys/fs/cgroup/cgroup.controllers", all)
        f.write("/sys/fs/cgroup/cgroup.subtree_control", "\n")
        f.write("/sys/fs/cgroup/swiftlet/cgroup.controllers", all)
        f.write("/sys/fs/cgroup/swiftlet/cgroup.subtree_control", "\n")
        f.populateV2("/sys/fs/cgroup/swiftlet/test", controllers: all)
        f.write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "0\n")
        return (f, .v2(mountPoint: "/sys/fs/cgroup"))
    }

    func populateV2(_ d: String, controllers: String) {
        let files: [(String, String)] = [
            ("cgroup.controllers", controllers), ("cgroup.subtree_control", "\n"), ("cgroup.procs", ""),
            ("cgroup.freeze", "0\n"), ("cgroup.events", "populated 1\nfrozen 0\n"), ("cgroup.kill", ""),
            ("memory.max", "max\n"), ("memory.swap.max", "max\n"), ("memory.low", "0\n"),
            ("memory.current", "1048576\n"), ("memory.peak", "2097152\n"), ("memory.swap.current", "0\n"),
            ("memory.stat", "anon 524288\nfile 524288\n"),
            ("cpu.weight", "100\n"), ("cpu.max", "max 100000\n"), ("cpu.max.burst", "0\n"), ("cpu.idle", "0\n"),
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n"
            ),
            ("pids.max", "max\n"), ("pids.current", "2\n"),
            ("io.weight", "default 100\n"), ("io.max", ""),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.max", "max\n"), ("hugetlb.2MB.current", "0\n"), ("hugetlb.2MB.events", "max 3\n"),
            ("hugetlb.2MB.rsvd.max", "max\n"), ("hugetlb.2MB.rsvd.current", "0\n"),
            ("cpuset.cpus", "\n"), ("cpuset.mems", "\n"), ("rdma.max", ""),
            (
                "cpu.pressure",
                "some avg10=0.50 avg60=0.25 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
            (
                "io.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"
            ),
        ]
        for (name, content) in files { write(d + "/" + name, content) }
    }

    /// Hybrid: v1 controllers without hugetlb; cgroup2 at /sys/fs/cgroup/unified with only hugetlb
    /// available and not enabled anywhere (as on the build host).
    static func hybrid() -> (Fixture, CgroupLayout) {
        let (f, v1) = Fixture.v1(hugetlb: false)
        let u = "/sys/fs/cgroup/unified"
        f.write(u + "/cgroup.controllers", "hugetlb\n")
        f.write(u + "/cgroup.subtree_control", "\n")
        f.write(u + "/swiftlet/cgroup.controllers", "\n")
        f.write(u + "/swiftlet/cgroup.subtree_control", "\n")
        for (name, content) in [
            ("cgroup.controllers", "\n"), ("cgroup.procs", ""), ("cgroup.kill", ""), ("cgroup.freeze", "0\n"),
            ("cgroup.events", "populated 0\nfrozen 0\n"), ("hugetlb.2MB.max", "max\n"), ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.events", "max 0\n"),
            (
                "cpu.pressure",
                "some avg10=1.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
            (
                "io.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
        ] {
            f.write(u + "/swiftlet/test/" + name, content)
        }
        return (f, .hybrid(hierarchies: v1.hierarchies, unified: u))
    }
}

/// Collects (path, value) writes in order.
final class WriteLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(String, String)] = []

    func record(_ path: String, _ value: String) {
        lock.lock()
        entries.append((path, value))
        lock.unlock()
    }

    /// The file names (last path component) written, in order, optionally only those matching a prefix.
    func files(prefix: String = "") -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return entries.map { ($0.0 as NSString).lastPathComponent }.filter { $0.hasPrefix(prefix) }
    }

    func writes(to suffix: String) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return entries.filter { $0.0.hasSuffix(suffix) }.map(\.1)
    }

    func clear() {
        lock.lock()
        entries = []
        lock.unlock()
    }
}

extension CgroupManager {
    /// The manager with a write log attached.
    func logging(_ log: WriteLog) -> CgroupManager {
        var m = self
        m.writeObserver = { path, value in log.record(path, value) }
        return m
    }
}

/// The CgroupError thrown by `body`, or a test failure.
func cgroupError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> CgroupError? {
    do {
        try body()
        XCTFail("expected a CgroupError", file: file, line: line)
        return nil
    } catch let error as CgroupError {
        return error
    } catch {
        XCTFail("expected a CgroupError, got \(error)", file: file, line: line)
        return nil
    }
}

/// linux.resources from JSON text (the nested OCI types have no public memberwise initializers).
func resources(_ json: String, file: StaticString = #filePath, line: UInt = #line) -> Resources {
    do {
        return try decodeJSON(Resources.self, from: Array(json.utf8))
    } catch {
        XCTFail("bad resources JSON: \(error)", file: file, line: line)
        return Resources()
    }
}
