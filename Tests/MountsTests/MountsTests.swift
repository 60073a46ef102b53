import CLinux
import Foundation
import Glibc
import LinuxSystem
import XCTest

@testable import Mounts

final class MountOptionsTests: XCTestCase {
    func testFlagsClearsPropagationAndData() {
        let o = MountOptions.parse(["nosuid", "ro", "rw", "noexec", "rbind", "rslave", "mode=755", "size=65536k"])
        XCTAssertEqual(o.flags & SL_MS_RDONLY, 0, "rw after ro clears it")
        XCTAssertNotEqual(o.flags & SL_MS_NOSUID, 0)
        XCTAssertNotEqual(o.flags & SL_MS_NOEXEC, 0)
        XCTAssertTrue(o.isBind)
        XCTAssertNotEqual(o.flags & SL_MS_REC, 0)
        XCTAssertEqual(o.propagation, [SL_MS_SLAVE | SL_MS_REC])
        XCTAssertEqual(o.dataString, "mode=755,size=65536k")
    }

    /// The atime modes are one value: the whole MOUNT_ATTR__ATIME field is cleared and one mode set,
    /// the last option winning; the clearing options mean relatime (as runc 1.3).
    func testRecursiveAtimeModesAreOneValue() {
        for (opts, mode) in [
            (["ratime"], SL_MOUNT_ATTR_RELATIME), (["rnostrictatime"], SL_MOUNT_ATTR_RELATIME),
            (["rnoatime", "rstrictatime"], SL_MOUNT_ATTR_STRICTATIME),
            (["rstrictatime", "rnoatime"], SL_MOUNT_ATTR_NOATIME),
            (["rnoatime", "rnorelatime", "rro"], SL_MOUNT_ATTR_RELATIME),
        ] {
            let o = MountOptions.parse(opts)
            XCTAssertEqual(o.recursiveClear & SL_MOUNT_ATTR__ATIME, SL_MOUNT_ATTR__ATIME, "\(opts)")
            XCTAssertEqual(o.recursiveSet & SL_MOUNT_ATTR__ATIME, mode, "\(opts)")
            XCTAssertTrue(o.hasRecursiveAttributes)
        }
        XCTAssertTrue(MountOptions.parse(["tmpcopyup", "size=1m"]).copyUp)
        XCTAssertEqual(MountOptions.parse(["tmpcopyup", "size=1m"]).dataString, "size=1m")
    }

    func testPropagationNames() {
        XCTAssertEqual(MountOptions.propagationFlag("rprivate"), SL_MS_PRIVATE | SL_MS_REC)
        XCTAssertEqual(MountOptions.propagationFlag("shared"), SL_MS_SHARED)
        XCTAssertNil(MountOptions.propagationFlag("bogus"))
    }

    /// `features` lists exactly the options the tables recognise: each listed name is consumed by
    /// `parse` (never passed to the filesystem as data) or is an id-mapping request, and every
    /// table entry is listed.
    func testKnownNamesAreExactlyTheRecognisedOptions() {
        let known = Set(MountOptions.knownNames)
        XCTAssertEqual(known.count, MountOptions.knownNames.count, "no duplicates")
        XCTAssertTrue(known.isSuperset(of: ["idmap", "ridmap"]))
        let tables = Set(MountOptions.table.keys).union(MountOptions.propagationTable.keys)
            .union(MountOptions.recursiveTable.keys).union(MountOptions.idmapNames).union(["tmpcopyup"])
        XCTAssertEqual(known, tables)
        for name in known where !MountOptions.idmapNames.contains(name) {
            XCTAssertEqual(MountOptions.parse([name]).data, [], "\(name) is recognised, not fs data")
        }
        XCTAssertEqual(MountOptions.parse(["mode=755"]).data, ["mode=755"], "unknown options stay data")
    }
}

final class SecureJoinTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sj-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/etc/sub", withIntermediateDirectories: true)
        symlink("/etc", root + "/abs")  // absolute link: stays inside root
        symlink("../../../../..", root + "/etc/up")  // climbs: clamped at root
        symlink("sub", root + "/etc/rel")  // relative link
        symlink("loop2", root + "/loop1")
        symlink("loop1", root + "/loop2")
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func testPlainAndDotDot() throws {
        XCTAssertEqual(try secureJoin(root: root, "/etc/sub"), root + "/etc/sub")
        XCTAssertEqual(try secureJoin(root: root, "/../../etc/./sub/.."), root + "/etc")
        XCTAssertEqual(try secureJoin(root: root, "missing/dir"), root + "/missing/dir")
    }

    func testSymlinksStayInsideRoot() throws {
        XCTAssertEqual(try secureJoin(root: root, "/abs/sub"), root + "/etc/sub")
        XCTAssertEqual(try secureJoin(root: root, "/etc/up/etc"), root + "/etc")
        XCTAssertEqual(try secureJoin(root: root, "/etc/rel"), root + "/etc/sub")
    }

    func testSymlinkLoopIsELOOP() {
        XCTAssertThrowsError(try secureJoin(root: root, "/loop1/x")) { e in
            XCTAssertEqual((e as? SysError)?.errno, ELOOP)
        }
    }
}

/// The locked-flag rules of a bind remount in a user namespace (runc 1.3's).
final class LockedFlagsTests: XCTestCase {
    func testStatvfsFlagsBecomeMountFlags() {
        var vfs = statvfs()
        vfs.f_flag = UInt(SL_MS_NODEV | SL_MS_RDONLY) | UInt(SL_ST_RELATIME)
        XCTAssertEqual(lockedFlags(vfs), SL_MS_NODEV | SL_MS_RDONLY | SL_MS_RELATIME, "ST_RELATIME is not MS_RELATIME")
        vfs.f_flag = UInt(SL_MS_NOSUID)
        XCTAssertEqual(lockedFlags(vfs), SL_MS_NOSUID | SL_MS_STRICTATIME, "no atime flag reported: strictatime")
    }

    func testClearingOrChangingLockedFlagsIsRefused() {
        let locked = SL_MS_NODEV | SL_MS_RELATIME
        XCTAssertNoThrow(
            try checkLockedFlags(locked, flags: SL_MS_BIND | SL_MS_RDONLY, cleared: SL_MS_NOSUID, name: "/v"))
        XCTAssertThrowsError(try checkLockedFlags(locked, flags: SL_MS_BIND, cleared: SL_MS_NODEV, name: "/v")) {
            XCTAssertTrue("\($0)".contains("cannot clear locked flags nodev"), "\($0)")
        }
        XCTAssertThrowsError(try checkLockedFlags(locked, flags: SL_MS_BIND | SL_MS_NOATIME, cleared: 0, name: "/v")) {
            XCTAssertTrue("\($0)".contains("cannot change locked atime flags relatime"), "\($0)")
        }
        XCTAssertNoThrow(try checkLockedFlags(locked, flags: SL_MS_BIND | SL_MS_RELATIME, cleared: 0, name: "/v"))
    }
}
