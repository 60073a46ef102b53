import LinuxSystem
import XCTest

/// The one mountinfo parser (LinuxSystem.MountInfo), used by the cgroup layout, the rootfs and resctrl.
final class MountInfoTests: XCTestCase {
    func testFieldsAndEscapes() throws {
        let text = """
            36 35 98:0 /mnt\\0401 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
            41 30 0:38 / /sys/fs/resctrl rw,relatime shared:20 - resctrl resctrl rw
            garbage
            """
        let mounts = MountInfo.parse(text)
        XCTAssertEqual(mounts.count, 2)
        XCTAssertEqual(mounts[0].root, "/mnt 1")
        XCTAssertEqual(mounts[0].mountPoint, "/mnt 2")
        XCTAssertEqual(mounts[0].mountOptions, "rw,noatime")
        XCTAssertEqual(mounts[0].fsType, "ext3")
        XCTAssertEqual(mounts[0].source, "/dev/root")
        XCTAssertEqual(mounts[0].superOptions, "rw,errors=continue")
        XCTAssertEqual(mounts.first { $0.fsType == "resctrl" }?.mountPoint, "/sys/fs/resctrl")
    }

    func testOptionalFieldsAndABackslashThatIsNoEscape() {
        let m = MountInfo("100 1 0:5 / /a\\b rw shared:1 master:2 propagate_from:3 - tmpfs none rw")
        XCTAssertEqual(m?.mountPoint, "/a\\b")
        XCTAssertEqual(m?.fsType, "tmpfs")
        XCTAssertNil(MountInfo("1 2 3 - x"))
    }

    func testThisProcessHasARoot() {
        XCTAssertTrue(MountInfo.read().contains { $0.mountPoint == "/" })
    }
}

/// The one /etc/passwd reader (LinuxSystem.PasswdEntry): HOME for the container's user, the owner name.
final class PasswdTests: XCTestCase {
    func testEntriesAndMalformedLines() {
        let entries = PasswdEntry.parse(
            "root:x:0:0:root:/root:/bin/sh\nbroken\ntester:x:1000:100::/home/tester:/bin/sh\nbad:x:u:0::/:/bin/sh\n")
        XCTAssertEqual(
            entries,
            [
                PasswdEntry(name: "root", uid: 0, gid: 0, home: "/root"),
                PasswdEntry(name: "tester", uid: 1000, gid: 100, home: "/home/tester"),
            ])
    }

    func testLookupInAFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("passwd-\(UUID().uuidString)").path
        try "a:x:5:5::/h5:/bin/sh\na:x:5:6::/second:/bin/sh\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(PasswdEntry.lookup(uid: 5, path: path)?.home, "/h5", "the first entry wins")
        XCTAssertNil(PasswdEntry.lookup(uid: 6, path: path))
        XCTAssertNil(PasswdEntry.lookup(uid: 0, path: path + ".missing"))
    }
}

/// The one /proc/PID/cgroup parser (LinuxSystem.ProcCgroup).
final class ProcCgroupTests: XCTestCase {
    func testV1HierarchiesAndTheCgroup2Line() {
        let lines = ProcCgroup.parse("12:cpu,cpuacct:/a/b\n1:name=systemd:/user.slice\n0::/unified/x\nbroken\n")
        XCTAssertEqual(
            lines,
            [
                ProcCgroup(hierarchyID: "12", controllers: ["cpu", "cpuacct"], path: "/a/b"),
                ProcCgroup(hierarchyID: "1", controllers: ["name=systemd"], path: "/user.slice"),
                ProcCgroup(hierarchyID: "0", controllers: [], path: "/unified/x"),
            ])
        XCTAssertEqual(ProcCgroup.parse("0::/path:with:colons").first?.path, "/path:with:colons")
    }
}
