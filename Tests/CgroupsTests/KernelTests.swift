import Foundation
import OCI
import XCTest

@testable import Cgroups

/// Against the real cgroupfs of this machine (root only). Every test works under
/// `/swiftlet-test-<random>` in each hierarchy and removes it, and kills what it started, in tearDown.
final class KernelTests: XCTestCase {
    var layout = CgroupLayout.v1(hierarchies: [:])
    var testRoot = ""
    var children: [Foundation.Process] = []

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "real cgroup tests need root")
        layout = CgroupLayout.detect()
        try XCTSkipIf(layout == .v1(hierarchies: [:]), "no cgroup hierarchy mounted")
        testRoot = "swiftlet-test-\(UInt32.random(in: 1...UInt32.max))"
    }

    override func tearDown() {
        var mounts = Set(layout.hierarchies.values)
        if let u = layout.unifiedMountPoint { mounts.insert(u) }
        let trees = testRoot.isEmpty ? [] : mounts.map { $0 + "/" + testRoot }
        // A frozen process dies only when thawed: thaw everything first, then kill, wait, remove.
        let dirs = trees.flatMap(directories)
        for dir in dirs {
            for (file, value) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")]
            where FileManager.default.fileExists(atPath: dir + "/" + file) {
                try? value.write(toFile: dir + "/" + file, atomically: false, encoding: .utf8)
            }
        }
        for p in children where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for dir in dirs {
            // Only processes this test put there.
            let procs = (try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? ""
            for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
        for p in children { p.waitUntilExit() }
        for dir in dirs.reversed() { waitUntil { rmdir(dir) == 0 || errno != EBUSY } }
    }

    /// `dir` and every directory below it, parents before children.
    private func directories(_ dir: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out = [dir]
        for n in names.sorted() {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + n, isDirectory: &isDir), isDir.boolValue {
                out += directories(dir + "/" + n)
            }
        }
        return out
    }

    /// Polls `condition` every 10 ms for up to 3 s.
    private func waitUntil(_ condition: () -> Bool) {
        for _ in 0..<300 {
            if condition() { return }
            usleep(10_000)
        }
    }

    private func spawn(_ args: [String]) throws -> Foundation.Process {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: args[0])
        p.arguments = Array(args.dropFirst())
        try p.run()
        children.append(p)
        return p
    }

    private func read(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing>").trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    func testLifecycleLimitsFreezeKillDestroy() throws {
        let m = CgroupManager(layout: layout, path: "/\(testRoot)/ctr")
        try m.create()
        XCTAssertTrue(m.exists())
        for dir in m.paths.values { XCTAssertTrue(FileManager.default.fileExists(atPath: dir), dir) }
        if let cpuset = m.paths["cpuset"] {
            let root = layout.hierarchies["cpuset"] ?? ""
            XCTAssertEqual(read(cpuset + "/cpuset.cpus"), read(root + "/cpuset.cpus"), "copied from the parent")
            XCTAssertEqual(read(cpuset + "/cpuset.mems"), read(root + "/cpuset.mems"))
        }

        let mib: Int64 = 1 << 20
        try m.set(
            resources(
                """
                {"memory": {"limit": \(64 * mib), "swap": \(128 * mib), "reservation": \(32 * mib)},
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000}, "pids": {"limit": 20}}
                """), initial: true)
        if m.isV2, let d = m.paths[""] {
            XCTAssertEqual(read(d + "/memory.max"), "\(64 * mib)")
            XCTAssertEqual(read(d + "/memory.low"), "\(32 * mib)")
            if FileManager.default.fileExists(atPath: d + "/memory.swap.max") {
                XCTAssertEqual(read(d + "/memory.swap.max"), "\(64 * mib)", "swap - limit")
            }
            XCTAssertEqual(read(d + "/cpu.weight"), "\(CgroupManager.cpuWeight(shares: 512))")
            XCTAssertEqual(read(d + "/cpu.max"), "50000 100000")
            XCTAssertEqual(read(d + "/pids.max"), "20")
        } else {
            let mem = try XCTUnwrap(m.paths["memory"])
            let cpu = try XCTUnwrap(m.paths["cpu"])
            XCTAssertEqual(read(mem + "/memory.limit_in_bytes"), "\(64 * mib)")
            if FileManager.default.fileExists(atPath: mem + "/memory.memsw.limit_in_bytes") {
                XCTAssertEqual(read(mem + "/memory.memsw.limit_in_bytes"), "\(128 * mib)")
            }
            XCTAssertEqual(read(mem + "/memory.soft_limit_in_bytes"), "\(32 * mib)")
            XCTAssertEqual(read(cpu + "/cpu.shares"), "512")
            XCTAssertEqual(read(cpu + "/cpu.cfs_quota_us"), "50000")
            XCTAssertEqual(read(cpu + "/cpu.cfs_period_us"), "100000")
            XCTAssertEqual(read(try XCTUnwrap(m.paths["pids"]) + "/pids.max"), "20")
        }

        // A failed update (a quota below the kernel's 1 ms minimum) leaves the previous memory limit.
        let e = cgroupError {
            try m.set(
                resources(#"{"memory": {"limit": \#(48 * mib), "swap": \#(96 * mib)}, "cpu": {"quota": 500}}"#),
                initial: false)
        }
        XCTAssertEqual(e?.errno, EINVAL, e?.message ?? "")
        let memoryFile =
            m.isV2 ? (m.paths[""] ?? "") + "/memory.max" : (m.paths["memory"] ?? "") + "/memory.limit_in_bytes"
        XCTAssertEqual(read(memoryFile), "\(64 * mib)")

        let sleeper = try spawn(["/bin/sleep", "60"])
        try m.add(pid: sleeper.processIdentifier)
        XCTAssertEqual(try m.pids(), [sleeper.processIdentifier])

        let stats = try m.stats()
        XCTAssertEqual(stats.pids.current, 1)
        XCTAssertEqual(stats.pids.limit, 20)
        XCTAssertEqual(stats.memory.usage.limit, UInt64(64 * mib))
        if layout.unifiedMountPoint != nil { XCTAssertNotNil(stats.cpu.psi, "PSI from the cgroup2 directory") }
        XCTAssertTrue(encodeJSON(stats).contains(#""pids":{"current":1,"limit":20}"#))

        try m.freeze()
        XCTAssertTrue(m.isFrozen())
        if let freezer = m.paths["freezer"] { XCTAssertEqual(read(freezer + "/freezer.state"), "FROZEN") }
        try m.thaw()
        XCTAssertFalse(m.isFrozen())
        XCTAssertTrue(sleeper.isRunning)

        // Not SIGKILL: freeze, signal each process, thaw.
        try m.killAll(signal: SIGTERM)
        sleeper.waitUntilExit()
        XCTAssertEqual(sleeper.terminationReason, .uncaughtSignal)
        XCTAssertEqual(sleeper.terminationStatus, SIGTERM)

        // SIGKILL: cgroup.kill where there is a cgroup2 directory (hybrid here), else the same loop.
        let second = try spawn(["/bin/sleep", "60"])
        try m.add(pid: second.processIdentifier)
        try m.killAll(signal: SIGKILL)
        second.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, SIGKILL)

        try m.destroy()
        XCTAssertFalse(m.exists())
        for dir in m.paths.values {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir), dir)
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: (dir as NSString).deletingLastPathComponent), "parent stays")
        }
        XCTAssertEqual(cgroupError { try m.killAll(signal: SIGKILL) }?.errno, ENOENT)
    }

    func testChildCgroupsArePartOfTheContainer() throws {
        let m = CgroupManager(layout: layout, path: "/\(testRoot)/nested")
        try m.create()
        let primary = try XCTUnwrap(m.primaryDir)
        let sub = CgroupManager(layout: layout, path: "/\(testRoot)/nested/sub")
        try sub.create()
        let p = try spawn(["/bin/sleep", "60"])
        try sub.add(pid: p.processIdentifier)
        XCTAssertTrue(FileManager.default.fileExists(atPath: primary + "/sub"))
        XCTAssertEqual(try m.pids(), [p.processIdentifier], "pids() includes child cgroups")
        try m.killAll(signal: SIGKILL)
        p.waitUntilExit()
        try m.destroy()
        XCTAssertFalse(FileManager.default.fileExists(atPath: primary))
    }

    /// The cgroup2 code paths (create, cgroup.freeze/cgroup.events, cgroup.kill, stats, destroy) on the
    /// real cgroup2 tree, rooted at a directory of our own so no existing cgroup is touched: on this
    /// hybrid host no controller is available there, on a v2 host whatever the root delegates.
    func testV2CorePathsOnRealCgroup2() throws {
        let mount = try XCTUnwrap(layout.unifiedMountPoint, "no cgroup2 mount")
        let base = mount + "/" + testRoot
        XCTAssertEqual(mkdir(base, 0o755), 0)
        let m = CgroupManager(layout: .v2(mountPoint: base), path: "/ctr")
        try m.create()
        XCTAssertTrue(m.exists())
        let dir = try XCTUnwrap(m.paths[""])
        XCTAssertEqual(dir, base + "/ctr")

        let sleeper = try spawn(["/bin/sleep", "60"])
        try m.add(pid: sleeper.processIdentifier)
        XCTAssertEqual(try m.pids(), [sleeper.processIdentifier])
        try m.freeze()
        XCTAssertTrue(m.isFrozen())
        XCTAssertTrue(read(dir + "/cgroup.events").contains("frozen 1"))
        try m.thaw()
        XCTAssertFalse(m.isFrozen())
        XCTAssertTrue(read(dir + "/cgroup.events").contains("frozen 0"))

        let stats = try m.stats()
        XCTAssertEqual(stats.pids.current, 1)
        XCTAssertNotNil(stats.cpu.psi)

        try m.killAll(signal: SIGTERM)
        sleeper.waitUntilExit()
        XCTAssertEqual(sleeper.terminationStatus, SIGTERM)
        let second = try spawn(["/bin/sleep", "60"])
        try m.add(pid: second.processIdentifier)
        try m.killAll(signal: SIGKILL)
        second.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, SIGKILL)
        waitUntil { (try? m.pids())?.isEmpty ?? true }
        try m.destroy()
        XCTAssertFalse(m.exists())
    }

    func testV2UnifiedHugetlbAndCheckBeforeUpdate() throws {
        guard case .v2 = layout else { throw XCTSkip("needs cgroup v2") }
        let m = CgroupManager(layout: layout, path: "/\(testRoot)/v2")
        try m.create()
        let d = try XCTUnwrap(m.paths[""])
        try m.set(resources(#"{"unified": {"memory.oom.group": "1", "memory.high": "50000000"}}"#), initial: true)
        XCTAssertEqual(read(d + "/memory.oom.group"), "1")
        XCTAssertEqual(read(d + "/memory.high"), "49999872", "the kernel rounds to pages")
        if let size = hugePageSizes(fsRoot: "").first,
            FileManager.default.fileExists(atPath: d + "/hugetlb.\(size).max")
        {
            try m.set(resources(#"{"hugepageLimits": [{"pageSize": "\#(size)", "limit": 0}]}"#), initial: true)
            XCTAssertEqual(read(d + "/hugetlb.\(size).max"), "0")
        }
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"unified": {"nosuch.knob": "1"}}"#), initial: true) }?.message,
            "linux.resources.unified[\"nosuch.knob\"]: controller \"nosuch\" is not available in \(d)")

        let hog = try spawn(["/bin/sh", "-c", "sleep 0.3; v=$(head -c 4000000 /dev/zero | tr '\\0' x); sleep 60"])
        try m.add(pid: hog.processIdentifier)
        waitUntil { (UInt64(read(d + "/memory.current")) ?? 0) >= 4_000_000 }
        let e = cgroupError {
            try m.set(resources(#"{"memory": {"limit": 1048576, "checkBeforeUpdate": true}}"#), initial: false)
        }
        XCTAssertTrue(
            e?.message.hasPrefix("linux.resources.memory.limit: rejecting memory limit 1048576 <= usage ") ?? false,
            e?.message ?? "")
        XCTAssertEqual(read(d + "/memory.max"), "max")
        try m.killAll(signal: SIGKILL)
        hog.waitUntilExit()
        waitUntil { (try? m.pids())?.isEmpty ?? true }
        try m.destroy()
    }

    func testV1KernelRefusals() throws {
        guard !layout.hierarchies.isEmpty, layout.hierarchies["memory"] != nil, layout.hierarchies["cpu"] != nil else {
            throw XCTSkip("needs v1 memory and cpu hierarchies")
        }
        let m = CgroupManager(layout: layout, path: "/\(testRoot)/refuse")
        try m.create()
        // The kernel clamps cpu.shares to [2, 262144]; the read-back catches it.
        XCTAssertEqual(
            cgroupError { try m.set(resources(#"{"cpu": {"shares": 1}}"#), initial: true) }?.message,
            "linux.resources.cpu.shares: 1 is below the minimum allowed cpu-shares 2")

        // A limit below what a member uses (anonymous memory, no swap here) is refused with EBUSY.
        let hog = try spawn(["/bin/sh", "-c", "sleep 0.3; v=$(head -c 4000000 /dev/zero | tr '\\0' x); sleep 60"])
        try m.add(pid: hog.processIdentifier)
        let usageFile = (m.paths["memory"] ?? "") + "/memory.usage_in_bytes"
        waitUntil { (UInt64(read(usageFile)) ?? 0) >= 4_000_000 }
        let e = cgroupError { try m.set(resources(#"{"memory": {"limit": 1048576}}"#), initial: false) }
        XCTAssertEqual(e?.errno, EBUSY)
        XCTAssertTrue(
            e?.message.contains("memory.limit_in_bytes: \"1048576\": Device or resource busy (current usage: ")
                ?? false,
            e?.message ?? "")
        try m.killAll(signal: SIGKILL)
        hog.waitUntilExit()
        try m.destroy()
    }
}
