import Foundation
import TestSupport
import XCTest

/// The runtime out of disk, file descriptors and memory (issue 7): a clear error or success, never a
/// corrupted state file or a half-made container that `delete --force` cannot remove.
final class ResourceExhaustionTests: ContainerTestCase {
    /// Runs swiftlet with another --root (the tagged environment, as `sl`).
    func sl(root other: String, _ args: [String]) -> RunResult {
        runProgram(Runtime.binary, ["--root", other] + args, environment: taggedEnvironment())
    }

    /// A 64 KiB tmpfs for --root, unmounted at teardown.
    func tinyTmpfs() throws -> String {
        let dir = try makeTempDir(prefix: "swiftlet-full.")
        let r = runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir])
        XCTAssertEqual(r.status, 0, r.stderr)
        addTeardownBlock {
            _ = runProgram("/bin/umount", [dir])
            rmdir(dir)
        }
        return dir
    }

    /// Fills the filesystem of `dir` with a file until write fails.
    func fill(_ dir: String) {
        let fd = open(dir + "/filler", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let chunk = [UInt8](repeating: 0x41, count: 512)
        while write(fd, chunk, chunk.count) > 0 {}
        close(fd)
    }

    /// The state file parses as JSON and names the container.
    func stateFileIntact(_ dir: String, _ id: String, file: StaticString = #filePath, line: UInt = #line) {
        let data = FileManager.default.contents(atPath: "\(dir)/\(id)/state.json") ?? Data()
        let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        XCTAssertEqual(
            obj?["id"] as? String, id, "state.json corrupted: \(String(decoding: data, as: UTF8.self))", file: file,
            line: line)
        let temps = ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/\(id)")) ?? []).filter {
            $0.hasSuffix(".tmp")
        }
        XCTAssertEqual(temps, [], "temp state file left", file: file, line: line)
    }

    /// --root on a full filesystem: a new create fails naming ENOSPC and leaves nothing; an update
    /// whose state write fails leaves the old state file (and the old limit) in place.
    func testDiskFullWhileWritingState() throws {
        let full = try tinyTmpfs()
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        XCTAssertEqual(sl(root: full, ["create", "--bundle", b, "first"]).status, 0)
        defer { _ = sl(root: full, ["delete", "--force", "first"]) }
        fill(full)

        let r = sl(root: full, ["create", "--bundle", b, "second"])
        XCTAssertEqual(r.status, 1, r.description)
        XCTAssertTrue(r.stderr.contains("write state") && r.stderr.contains("No space left on device"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: full + "/second"))
        XCTAssertEqual(cgroupsLeft("second"), [])

        let pidsMax = cgroupsLeft("first").first { $0.contains("/pids/") }.map { $0 + "/pids.max" }
        let before = pidsMax.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
        let u = sl(root: full, ["update", "--pids-limit", "77", "first"])
        XCTAssertEqual(u.status, 1, u.description)
        XCTAssertTrue(u.stderr.contains("No space left on device"), u.stderr)
        stateFileIntact(full, "first")
        XCTAssertEqual(
            pidsMax.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }, before,
            "a failed update leaves the old limit")
        let st = sl(root: full, ["state", "first"])
        XCTAssertEqual(st.status, 0, st.stderr)
        XCTAssertTrue(st.stdout.contains("\"created\""), st.stdout)

        try FileManager.default.removeItem(atPath: full + "/filler")
        XCTAssertEqual(sl(root: full, ["delete", "--force", "first"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: full + "/first"))
        XCTAssertEqual(cgroupsLeft("first"), [])
        XCTAssertTrue(waitUntil(timeout: 5) { self.taggedProcesses().isEmpty })
    }

    /// create with RLIMIT_NOFILE from 4 up: each either works or fails with a clear error (EMFILE
    /// named) and leaves nothing behind.
    func testTooFewFileDescriptors() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "1000"])(&spec)
            var p = spec[dict: "process"]
            p.removeValue(forKey: "rlimits")  // raising NOFILE above our hard limit needs CAP_SYS_RESOURCE
            spec["process"] = p
        }
        var failed = 0
        var worked = 0
        for n in 4...12 {
            let id = "nofile\(n)"
            let r = runProgram(
                "/bin/sh",
                [
                    "-c", "ulimit -n \(n) && exec \"$0\" \"$@\"", Runtime.binary,
                    "--root", root.path, "create", "--bundle", b, id,
                ],
                environment: taggedEnvironment())
            if r.status == 0 {
                worked += 1
                XCTAssertEqual(stateStatus(id), "created", "limit \(n)")
                XCTAssertEqual(sl(["delete", "--force", id]).status, 0)
            } else {
                failed += 1
                XCTAssertEqual(r.status, 1, "limit \(n): \(r)")
                XCTAssertTrue(r.stderr.contains("Too many open files"), "limit \(n): \(r.stderr)")
            }
            assertNothingLeft(id, bundle: b)
        }
        XCTAssertGreaterThan(failed, 0, "some limit is too low")
        XCTAssertGreaterThan(worked, 0, "some limit is enough")
    }

    /// The runtime itself in a v1 memory cgroup with a small limit (its own child cgroup, removed
    /// afterwards; the container gets its own cgroup as usual). The kernel's OOM killer may SIGKILL
    /// create: then the container shows as `creating` (or not at all) and `delete --force` removes
    /// it. Never a half state that cannot be cleaned.
    func testLowMemoryCgroup() throws {
        let memory = "/sys/fs/cgroup/memory"
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: memory + "/memory.limit_in_bytes"),
            "needs the cgroup v1 memory controller (the VM run is pure v2)")
        let cg = memory + "/swiftlet-test-lowmem-\(getpid())"
        try FileManager.default.createDirectory(atPath: cg, withIntermediateDirectories: false)
        addTeardownBlock { _ = waitUntil(timeout: 5) { rmdir(cg) == 0 } }
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        var outcomes: [Int32] = []
        // 512 MiB: enough also for a sanitizer build of the runtime (Scripts/sanitize.sh).
        for limit in [512 << 10, 1 << 20, 3 << 19, 2 << 20, 4 << 20, 16 << 20, 512 << 20] {
            let id = "lowmem\(limit >> 10)k"
            try "\(limit)".write(toFile: cg + "/memory.limit_in_bytes", atomically: false, encoding: .utf8)
            let r = runProgram(
                "/bin/sh",
                [
                    "-c", "echo $$ > \(cg)/cgroup.procs && exec \"$0\" \"$@\"", Runtime.binary,
                    "--root", root.path, "create", "--bundle", b, id,
                ],
                environment: taggedEnvironment())
            outcomes.append(r.status)
            switch r.status {
            case 0: XCTAssertEqual(stateStatus(id), "created", "limit \(limit)")
            case 128 + SIGKILL:
                // Killed before the state was final ("creating"), after it ("created"; init may have
                // been killed too: "stopped"), or before anything was written (nil).
                let status = stateStatus(id)
                let settled: [String?] = [nil, "creating", "created", "stopped"]
                XCTAssertTrue(settled.contains(status), "limit \(limit): \(status ?? "nil")")
            default:
                XCTAssertEqual(r.status, 1, "limit \(limit): \(r)")
                XCTAssertFalse(r.stderr.isEmpty, "limit \(limit): an error message")
            }
            let d = sl(["delete", "--force", id])
            XCTAssertEqual(d.status, 0, "limit \(limit): \(d.stderr)")
            assertNothingLeft(id, bundle: b)
        }
        XCTAssertTrue(outcomes.contains { $0 != 0 }, "the smallest limit makes create fail: \(outcomes)")
        XCTAssertTrue(outcomes.contains(0), "the largest limit is enough: \(outcomes)")
    }
}
