import Foundation
import TestSupport
import XCTest

/// `swiftlet create` killed (SIGKILL) at each stage (issue 7): the test hook SWIFTLET_TEST_STOP_AT
/// makes create SIGSTOP itself at a named stage (Spec/reliability.md); the test then SIGKILLs it.
/// Afterwards `state`/`list` report it sensibly and `delete --force` removes everything: state
/// directory, cgroups in every hierarchy, mounts, processes.
final class FaultTests: ContainerTestCase {
    /// Runs `create` until it stops at `stage`, SIGKILLs it, checks state/list, returns the status
    /// `state` reported.
    func killCreate(
        at stage: String, id: String, bundle b: String,
        file: StaticString = #filePath, line: UInt = #line
    ) -> String? {
        guard
            let pid = spawnSwiftlet(
                ["create", "--bundle", b, id],
                environment: taggedEnvironment(["SWIFTLET_TEST_STOP_AT": stage]))
        else {
            XCTFail("cannot spawn swiftlet", file: file, line: line)
            return nil
        }
        let stopped = waitUntil(timeout: 20) { processState(pid) == "T" || processState(pid) == "Z" }
        XCTAssertEqual(processState(pid), "T", "\(stage): create never stopped there", file: file, line: line)
        _ = stopped
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        let shown = stateStatus(id)
        XCTAssertEqual(
            listedStatus(id, file: file, line: line), shown, "\(stage): list and state agree", file: file, line: line)
        return shown
    }

    func check(stage: String, userns: Bool, expect: String) throws {
        let id = "fault-\(stage)\(userns ? "-userns" : "")"
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "1000"])(&spec)
            if userns { ContainerTestCase.userNamespace()(&spec) }
        }
        XCTAssertEqual(killCreate(at: stage, id: id, bundle: b), expect, stage)
        // A container whose create died half-way cannot be started or signalled, only force-deleted;
        // one whose create died after writing the final state is complete and starts.
        let start = sl(["start", id], timeout: 10)
        if expect == "created" {
            XCTAssertEqual(start.status, 0, "\(stage): start: \(start)")
            XCTAssertEqual(stateStatus(id), "running")
        } else {
            XCTAssertEqual(start.status, 1, "\(stage): start: \(start)")
            XCTAssertTrue(start.stderr.contains("still being created"), "\(stage): \(start.stderr)")
            XCTAssertEqual(sl(["kill", id, "KILL"]).status, 1, stage)
            XCTAssertEqual(sl(["delete", id]).status, 1, "\(stage): delete without --force refuses")
        }
        let del = sl(["delete", "--force", id])
        XCTAssertEqual(del.status, 0, "\(stage): \(del.stderr)")
        assertNothingLeft(id, bundle: b)
        XCTAssertNil(listedStatus(id), stage)
        try? FileManager.default.removeItem(atPath: b)
    }

    func testKilledBeforeClone() throws { try check(stage: "before-clone", userns: false, expect: "creating") }
    func testKilledAfterClone() throws { try check(stage: "after-clone", userns: false, expect: "creating") }
    func testKilledAfterCloneWithUserNamespace() throws {
        try check(stage: "after-clone", userns: true, expect: "creating")
    }
    func testKilledBeforeIDMaps() throws { try check(stage: "before-idmap", userns: true, expect: "creating") }
    func testKilledAfterIDMaps() throws { try check(stage: "after-idmap", userns: true, expect: "creating") }
    func testKilledAfterCgroup() throws { try check(stage: "after-cgroup", userns: false, expect: "creating") }
    func testKilledAfterCgroupWithUserNamespace() throws {
        try check(stage: "after-cgroup", userns: true, expect: "creating")
    }
    func testKilledBeforeFifoWait() throws { try check(stage: "before-fifo-wait", userns: false, expect: "creating") }
    func testKilledBeforeFifoWaitWithUserNamespace() throws {
        try check(stage: "before-fifo-wait", userns: true, expect: "creating")
    }
    func testKilledAfterState() throws { try check(stage: "after-state", userns: false, expect: "created") }

    /// A create killed while it was making its cgroup: delete --force still removes every directory
    /// that exists.
    func testPartialCgroupIsRemoved() throws {
        let id = "fault-partial-cgroup"
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        XCTAssertEqual(killCreate(at: "before-clone", id: id, bundle: b), "creating")
        // v1/hybrid: some hierarchies but not the primary (pids); pure v2 has one directory, made
        // before the first child (clone3 into it), so there a cgroup without any process.
        var made = ["blkio", "memory", "unified"].filter {
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\($0)")
        }
        .map { "/sys/fs/cgroup/\($0)/swiftlet/\(id)" }
        if made.isEmpty { made = ["/sys/fs/cgroup/swiftlet/\(id)"] }
        for dir in made {
            XCTAssertNoThrow(try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true))
        }
        addTeardownBlock { for d in made { rmdir(d) } }
        let del = sl(["delete", "--force", id])
        XCTAssertEqual(del.status, 0, del.stderr)
        assertNothingLeft(id, bundle: b)
    }
}

/// `start` and `delete` killed half-way (stages of the same test hook).
extension FaultTests {
    /// Runs `swiftlet ARGS` until it stops at `stage`, then SIGKILLs it.
    func killCommand(_ args: [String], at stage: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let pid = spawnSwiftlet(args, environment: taggedEnvironment(["SWIFTLET_TEST_STOP_AT": stage])) else {
            return XCTFail("cannot spawn swiftlet", file: file, line: line)
        }
        XCTAssertTrue(
            waitUntil(timeout: 20) { processState(pid) == "T" || processState(pid) == "Z" }, file: file, line: line)
        XCTAssertEqual(processState(pid), "T", "\(stage): never stopped there", file: file, line: line)
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    /// start killed right after init was let go: the container runs and says so; another start
    /// refuses at once (it used to find the exec fifo still there, report `created` and wait forever).
    func testStartKilledAfterLettingInitGo() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        XCTAssertEqual(sl(["create", "--bundle", b, "start-killed"]).status, 0)
        killCommand(["start", "start-killed"], at: "start-after-go")
        XCTAssertTrue(
            waitUntil(timeout: 5) { self.stateStatus("start-killed") == "running" },
            "state: \(String(describing: stateStatus("start-killed")))")
        XCTAssertEqual(listedStatus("start-killed"), "running")
        let again = sl(["start", "start-killed"], timeout: 10)
        XCTAssertFalse(again.timedOut, "a second start hangs")
        XCTAssertEqual(again.status, 1, again.description)
        XCTAssertEqual(sl(["delete", "--force", "start-killed"]).status, 0)
        assertNothingLeft("start-killed", bundle: b)
    }

    /// delete killed after killing the processes, or after removing the cgroup: the container shows
    /// as stopped and a second delete finishes the job.
    func testDeleteKilledHalfway() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        for stage in ["delete-after-kill", "delete-before-remove"] {
            let id = "del-\(stage)"
            XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
            killCommand(["delete", "--force", id], at: stage)
            XCTAssertEqual(stateStatus(id), "stopped", stage)
            XCTAssertEqual(listedStatus(id), "stopped", stage)
            let d = sl(["delete", id])
            XCTAssertEqual(d.status, 0, "\(stage): \(d.stderr)")
            assertNothingLeft(id, bundle: b)
        }
    }

    /// restore killed once the rootfs is bind-mounted for criu (`<root>/<id>/criu-root`, criu not
    /// started yet): `delete --force` detaches that mount and leaves the rootfs alone. Removing the
    /// state directory used to recurse through the bind and delete the container's rootfs.
    func testRestoreKilledWithCriuRootMountedSparesRootfs() throws {
        let rootfs = try privateRootfs()
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "1000"])(&spec)
            spec["root"] = ["path": rootfs, "readonly": true]
        }
        let images = b + "/images"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: images + "/inventory.img", contents: Data())
        func criuRootMounted() -> Bool {
            !mountsContaining("/restore-killed/criu-root ").isEmpty
        }
        killCommand(
            ["--criu", "/bin/false", "restore", "-d", "--image-path", images, "--bundle", b, "restore-killed"],
            at: "restore-criu-root")
        XCTAssertTrue(criuRootMounted(), "the killed restore left its criu root mounted")
        XCTAssertEqual(stateStatus("restore-killed"), "creating")
        let d = sl(["delete", "--force", "restore-killed"])
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertFalse(criuRootMounted())
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: rootfs + "/bin/sh"),
            "delete removed the rootfs through the criu root")
        assertNothingLeft("restore-killed", bundle: b)
    }

    /// Whatever is mounted inside a container's state directory (by a killed step or by hand),
    /// `delete --force` never removes files through it: the mount point stops the removal with
    /// EBUSY, and the mounted files survive.
    func testDeleteNeverRemovesThroughAMountInTheStateDirectory() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        let r = sl(["create", "--bundle", b, "planted-mount"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let outside = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        FileManager.default.createFile(atPath: outside + "/sentinel", contents: Data("keep".utf8))
        let target = root.path + "/planted-mount/planted"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let m = runProgram("/bin/mount", ["--bind", outside, target])
        XCTAssertEqual(m.status, 0, m.stderr)
        let d = sl(["delete", "--force", "planted-mount"])
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: outside + "/sentinel"), "delete removed files through a mount")
        XCTAssertNotEqual(d.status, 0)
        XCTAssertTrue(d.stderr.contains("planted") && d.stderr.contains("busy"), d.stderr)
        _ = runProgram("/bin/umount", [target])
        let again = sl(["delete", "--force", "planted-mount"])
        XCTAssertEqual(again.status, 0, again.stderr)
        assertNothingLeft("planted-mount", bundle: b)
    }
}
