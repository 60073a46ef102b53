import Foundation
import XCTest

@testable import Cgroups

final class LayoutTests: XCTestCase {
    /// This build host's /proc/self/mountinfo (hybrid).
    static let hybridMountinfo = """
        22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
        37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
        38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    func testDetectHybrid() {
        let layout = CgroupLayout.detect(mountinfo: Self.hybridMountinfo)
        guard case .hybrid(let h, let unified) = layout else { return XCTFail("\(layout)") }
        XCTAssertEqual(unified, "/sys/fs/cgroup/unified")
        XCTAssertEqual(h["memory"], "/sys/fs/cgroup/memory")
        XCTAssertEqual(h["name=systemd"], "/sys/fs/cgroup/systemd")
        XCTAssertEqual(
            Set(h.keys), ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "name=systemd"])
    }

    func testDetectV1CoMountedAndOptions() {
        let text = """
            25 20 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs ro,mode=755
            26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid shared:9 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/x,name=systemd
            29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 - cgroup cgroup rw,cpu,cpuacct
            30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
            31 25 0:28 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,clone_children
            90 22 0:26 / /tmp/elsewhere rw - cgroup cgroup rw,cpu,cpuacct
            """
        XCTAssertEqual(
            CgroupLayout.detect(mountinfo: text),
            .v1(hierarchies: [
                "name=systemd": "/sys/fs/cgroup/systemd",
                "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                "net_cls": "/sys/fs/cgroup/net_cls,net_prio", "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
                "cpuset": "/sys/fs/cgroup/cpuset",
            ]))
    }

    func testDetectV2() {
        let text = """
            22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
            27 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
            """
        XCTAssertEqual(CgroupLayout.detect(mountinfo: text), .v2(mountPoint: "/sys/fs/cgroup"))
        XCTAssertEqual(CgroupLayout.detect(mountinfo: ""), .v1(hierarchies: [:]))
    }

    func testDetectOtherRootAndEscapes() {
        let text = "40 31 0:37 / /run/cg\\040x rw - cgroup2 cgroup2 rw\n"
        XCTAssertEqual(CgroupLayout.detect(mountinfo: text, root: "/run/cg x"), .v2(mountPoint: "/run/cg x"))
    }

    func testDetectThisHost() {
        // Whatever this machine has, detect() must find something when cgroups are mounted.
        let layout = CgroupLayout.detect()
        if FileManagerExists("/sys/fs/cgroup/memory") || FileManagerExists("/sys/fs/cgroup/cgroup.controllers") {
            XCTAssertNotEqual(layout, .v1(hierarchies: [:]))
        }
    }

    func testResolvePath() {
        XCTAssertEqual(
            CgroupManager.resolvePath(cgroupsPath: nil, id: "abc", ownCgroup: "/user.slice"), "/swiftlet/abc")
        XCTAssertEqual(CgroupManager.resolvePath(cgroupsPath: "", id: "abc", ownCgroup: "/"), "/swiftlet/abc")
        XCTAssertEqual(CgroupManager.resolvePath(cgroupsPath: "/a//b/../c/", id: "x", ownCgroup: "/u"), "/a/c")
        XCTAssertEqual(
            CgroupManager.resolvePath(cgroupsPath: "rel/x", id: "x", ownCgroup: "/user.slice"), "/user.slice/rel/x")
        XCTAssertEqual(CgroupManager.resolvePath(cgroupsPath: "../../esc", id: "x", ownCgroup: "/u"), "/u/esc")
    }

    func testOwnCgroupsAndRelativePaths() {
        let text = "9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/init.scope\n"
        XCTAssertEqual(
            CgroupManager.ownCgroups(procSelfCgroup: text),
            ["name=systemd": "/", "memory": "/process_api/abc", "cpu": "/", "cpuacct": "/", "": "/init.scope"])
        let layout = CgroupLayout.hybrid(
            hierarchies: ["memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu"],
            unified: "/sys/fs/cgroup/unified")
        let m = CgroupManager(layout: layout, cgroupsPath: "ctr", id: "x", procSelfCgroup: text)
        XCTAssertEqual(
            m.paths,
            [
                "memory": "/sys/fs/cgroup/memory/process_api/abc/ctr",
                "cpu": "/sys/fs/cgroup/cpu/ctr",
                "": "/sys/fs/cgroup/unified/init.scope/ctr",
            ])
        // Pure v2: relative to the parent of the own cgroup (which holds this process).
        let v2 = CgroupManager(
            layout: .v2(mountPoint: "/sys/fs/cgroup"), cgroupsPath: "ctr", id: "x", procSelfCgroup: text)
        XCTAssertEqual(v2.paths, ["": "/sys/fs/cgroup/ctr"])
        let abs = CgroupManager(layout: .v2(mountPoint: "/sys/fs/cgroup"), cgroupsPath: nil, id: "x", fsRoot: "/fx")
        XCTAssertEqual(abs.paths, ["": "/fx/sys/fs/cgroup/swiftlet/x"])
    }

    func testPaths() {
        let (f, layout) = Fixture.v1()
        defer { f.remove() }
        let m = CgroupManager(layout: layout, path: "/swiftlet/test", fsRoot: f.root)
        XCTAssertEqual(m.paths["cpu"], f.root + "/sys/fs/cgroup/cpu,cpuacct/swiftlet/test")
        XCTAssertEqual(m.paths["cpuacct"], m.paths["cpu"])
        XCTAssertEqual(m.paths["name=systemd"], f.root + "/sys/fs/cgroup/systemd/swiftlet/test")
        XCTAssertNil(m.paths[""])
        XCTAssertEqual(m.uniqueDirs.count, Fixture.v1Controllers.count - 1)
        let h = CgroupManager(layout: .hybrid(hierarchies: [:], unified: "/sys/fs/cgroup/unified"), path: "/a")
        XCTAssertEqual(h.paths, ["": "/sys/fs/cgroup/unified/a"])
    }

    func testConversions() {
        // runc's table (opencontainers/cgroups utils_test.go).
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 0), 0)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 1), 1)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 2), 1)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 3), 2)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 1024), 100)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 262_143), 10_000)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 262_144), 10_000)
        XCTAssertEqual(CgroupManager.cpuWeight(shares: 262_145), 10_000)
        XCTAssertEqual(CgroupManager.ioWeight(blkioWeight: 10), 1)
        XCTAssertEqual(CgroupManager.ioWeight(blkioWeight: 500), 4950)
        XCTAssertEqual(CgroupManager.ioWeight(blkioWeight: 1000), 10_000)
        XCTAssertEqual(try CgroupManager.swapMax(swap: 0, limit: -1), -1)
        XCTAssertEqual(try CgroupManager.swapMax(swap: 0, limit: 100), 0)
        XCTAssertEqual(try CgroupManager.swapMax(swap: -1, limit: 100), -1)
        XCTAssertEqual(try CgroupManager.swapMax(swap: 300, limit: 100), 200)
        XCTAssertEqual(try CgroupManager.swapMax(swap: 300, limit: -1), 300)
        XCTAssertEqual(
            cgroupError { _ = try CgroupManager.swapMax(swap: 300, limit: 0) }?.message,
            "linux.resources.memory.swap: cannot be set without memory.limit on cgroup v2")
        XCTAssertEqual(
            cgroupError { _ = try CgroupManager.swapMax(swap: 50, limit: 100) }?.message,
            "linux.resources.memory.swap: must be at least memory.limit (swap 50, limit 100)")
    }

    func testParseCPUListAndPageSizes() throws {
        XCTAssertEqual(try parseCPUList("0-3,8,10-11", file: "f"), [0, 1, 2, 3, 8, 10, 11])
        XCTAssertEqual(try parseCPUList("", file: "f"), [])
        XCTAssertEqual(
            cgroupError { _ = try parseCPUList("3-1", file: "f") }?.message, "parse f: unexpected content \"3-1\"")
        let f = Fixture()
        defer { f.remove() }
        for name in ["hugepages-1048576kB", "hugepages-2048kB", "hugepages-64kB"] {
            f.mkdir("/sys/kernel/mm/hugepages/" + name)
        }
        XCTAssertEqual(hugePageSizes(fsRoot: f.root), ["64KB", "2MB", "1GB"])
    }
}

func FileManagerExists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
