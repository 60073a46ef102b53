import XCTest
import LinuxSystem

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
