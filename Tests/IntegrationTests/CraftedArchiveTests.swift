import Foundation
import TestSupport
import XCTest

/// Issue 13.6: `swiftlet-monitor --restore ARCHIVE.tar` with a crafted archive. rootfs-diff.tar and
/// deleted.files are applied before the runtime restores anything, so the archives here hold an
/// empty checkpoint/ (the restore fails later, without CRIU) and the attack is in the rootfs changes.
/// The rootfs is a private copy with `evil -> <host dir>` planted in it.
final class CraftedArchiveTests: MonitorTestCase {
    struct Setup {
        let base: String
        let host: String
        let rootfs: String
        let victim: Victim
    }

    func setup() throws -> Setup {
        let base = try makeTempDir(prefix: "swiftlet-crafted.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }
        let host = base + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        let rootfs = try privateRootfs()
        plantSymlink(rootfs + "/evil", to: host)
        return Setup(base: base, host: host, rootfs: rootfs, victim: try Victim(in: host))
    }

    /// An archive whose rootfs-diff.tar is made by `diffScript` (run by sh in an empty dir, writing
    /// ../rootfs-diff.tar) plus the given deleted.files.
    func craft(_ s: Setup, diffScript: String, deleted: String = "[]") throws -> String {
        let stage = s.base + "/stage"
        let work = s.base + "/diff"
        for d in [stage + "/checkpoint", work] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        let r = runProgram("/bin/sh", ["-c", "cd \(work) && " + diffScript + " && mv ../rootfs-diff.tar \(stage)/"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try deleted.write(toFile: stage + "/deleted.files", atomically: true, encoding: .utf8)
        let archive = s.base + "/ck.tar"
        XCTAssertEqual(runProgram("/bin/tar", ["-cf", archive, "-C", stage, "."]).status, 0)
        return archive
    }

    /// Runs the monitor's restore of `archive` into a bundle whose root is the planted rootfs;
    /// returns the sync pipe line.
    func restore(_ s: Setup, _ archive: String) throws -> String {
        let dir = s.base + "/r"
        try FileManager.default.createDirectory(atPath: dir + "/bundle", withIntermediateDirectories: true)
        try writeConfigThrowing(defaultConfig(rootfs: s.rootfs), to: dir + "/bundle")
        let id = "crafted\(UInt32.random(in: 0...UInt32.max))"
        let (_, line) = runMonitor(
            [
                "--api-version", "1", "-c", id, "-u", id, "-r", Runtime.binary, "-b", dir + "/bundle",
                "-p", dir + "/ctr.pid", "--runtime-arg", "--root=" + root.path, "--restore", archive,
            ], dir: dir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/" + id), "no state left")
        return line
    }

    func testMemberThroughASymlinkOfTheRootfsIsRefused() throws {
        let s = try setup()
        let archive = try craft(
            s, diffScript: "mkdir evil && echo pwned > evil/victim && tar -cf ../rootfs-diff.tar evil/victim")
        let line = try restore(s, archive)
        XCTAssertTrue(s.victim.intact, "the host file was written through the rootfs symlink")
        XCTAssertTrue(
            line.contains("\"data\":-1") && line.contains("goes through the symlink /evil of the rootfs"), line)
    }

    func testSymlinkMemberThenAFileThroughItIsRefused() throws {
        let s = try setup()
        // a -> evil (relative, so host tar creates it at once), then a/victim through it.
        let archive = try craft(
            s,
            diffScript: "ln -s evil a && tar -cf ../rootfs-diff.tar a && rm a && mkdir a && "
                + "echo pwned > a/victim && tar -rf ../rootfs-diff.tar a/victim")
        let line = try restore(s, archive)
        XCTAssertTrue(s.victim.intact, "the host file was written through a symlink member")
        XCTAssertTrue(line.contains("\"data\":-1") && line.contains("goes through the symlink member \\\"a\\\""), line)
        XCTAssertFalse(isSymlink(s.rootfs + "/a"), "nothing was extracted")
    }

    func testAbsoluteAndDotDotMembersAreRefused() throws {
        let s = try setup()
        let archive = try craft(s, diffScript: "echo x > f && tar -cf ../rootfs-diff.tar --transform 's,^f,../../f,' f")
        let line = try restore(s, archive)
        XCTAssertTrue(line.contains("\"data\":-1") && line.contains("\\\"..\\\" is not allowed"), line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.rootfs + "/f"))
    }

    func testDeletedFilesWithDotDotAreRefused() throws {
        let s = try setup()
        let rel = String(repeating: "../", count: 12) + s.victim.path.dropFirst()
        let archive = try craft(
            s, diffScript: "echo new > new-file && tar -cf ../rootfs-diff.tar new-file", deleted: "[\"\(rel)\"]")
        let line = try restore(s, archive)
        XCTAssertTrue(s.victim.intact)
        XCTAssertTrue(line.contains("\"data\":-1") && line.contains("deleted.files: entry"), line)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: s.rootfs + "/new-file"), "nothing applied before the check")
    }

    /// A deletion through `evil -> <host dir>` resolves inside the rootfs (where there is no such
    /// file): the host file stays; a plain entry is still deleted.
    func testDeletedFilesResolveSymlinksInsideTheRootfs() throws {
        let s = try setup()
        let archive = try craft(
            s, diffScript: "echo new > new-file && tar -cf ../rootfs-diff.tar new-file",
            deleted: "[\"evil/victim\", \"bin/cat\"]")
        _ = try restore(s, archive)
        XCTAssertTrue(s.victim.intact, "a host file was deleted through the rootfs symlink")
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.rootfs + "/bin/cat"), "deleted.files was applied")
        XCTAssertEqual(try String(contentsOfFile: s.rootfs + "/new-file", encoding: .utf8), "new\n")
    }
}
