import Foundation
import TestSupport
import XCTest

final class LifecycleTests: ContainerTestCase {
    func testRunPrintsOutputAndCleansUp() throws {
        let r = try run(["sh", "-c", "echo hello from $(hostname)"], id: "run1")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "hello from swiftlet-test\n")
        assertNothingLeft("run1")
    }

    func testExitCodeAndSignalStatus() throws {
        XCTAssertEqual(try run(["sh", "-c", "exit 7"]).status, 7)
        // A process killed by a signal: the shell reports 128+n and so does the runtime.
        XCTAssertEqual(try run(["sh", "-c", "sh -c 'kill -9 $$'; exit $?"]).status, 128 + 9)
    }

    func testCreateStartStateKillDelete() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let pidFile = b + "/pid"
        XCTAssertEqual(sl(["create", "--bundle", b, "--pid-file", pidFile, "c1"]).status, 0)
        let created = try state("c1")
        XCTAssertEqual(created["status"] as? String, "created")
        let pid = created["pid"] as? Int ?? 0
        XCTAssertGreaterThan(pid, 0)
        XCTAssertEqual(try String(contentsOfFile: pidFile, encoding: .utf8), String(pid))
        XCTAssertEqual(created["bundle"] as? String, b)
        XCTAssertEqual(created["ociVersion"] as? String, "1.3.0")
        // init is blocked on the fifo: the user process has not started yet.
        XCTAssertFalse(try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8).contains("sleep"))

        XCTAssertEqual(sl(["start", "c1"]).status, 0)
        XCTAssertEqual(try state("c1")["status"] as? String, "running")
        XCTAssertTrue(
            waitUntil(timeout: 5) {
                ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("sleep")
            })
        let again = sl(["start", "c1"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("cannot start an already running container"), again.stderr)

        let del = sl(["delete", "c1"])
        XCTAssertNotEqual(del.status, 0)
        XCTAssertTrue(del.stderr.contains("cannot delete container c1 that is not stopped: running"), del.stderr)

        XCTAssertEqual(sl(["kill", "c1", "KILL"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.state("c1")["status"] as? String) == "stopped" })
        XCTAssertEqual(try state("c1")["pid"] as? Int, 0)
        let startStopped = sl(["start", "c1"])
        XCTAssertTrue(startStopped.stderr.contains("cannot start a container that has stopped"), startStopped.stderr)
        XCTAssertEqual(sl(["kill", "c1"]).stderr.trimmingCharacters(in: .newlines), "container not running")
        XCTAssertEqual(sl(["delete", "c1"]).status, 0)
        let gone = sl(["state", "c1"])
        XCTAssertEqual(gone.status, 1)
        XCTAssertTrue(gone.stderr.contains("container does not exist"), gone.stderr)
        assertNothingLeft("c1")
    }

    func testCreateTwiceAndDeleteCreated() throws {
        let b = try bundle(ContainerTestCase.args(["true"]))
        XCTAssertEqual(sl(["create", "--bundle", b, "dup"]).status, 0)
        let again = sl(["create", "--bundle", b, "dup"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("container with given ID already exists"), again.stderr)
        // Deleting a created container kills its init (runc behaviour).
        XCTAssertEqual(sl(["delete", "dup"]).status, 0)
        assertNothingLeft("dup")
    }

    func testKillSignalsByNameAndNumber() throws {
        let b = try bundle(ContainerTestCase.args(["sh", "-c", "trap 'exit 3' USR1; while :; do sleep 0.05; done"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "k1"]).status, 0)
        // busybox sh needs a moment to install its trap.
        Thread.sleep(forTimeInterval: 0.3)
        let bad = sl(["kill", "k1", "SIGNOPE"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("unknown signal \"SIGNOPE\""), bad.stderr)
        XCTAssertEqual(sl(["kill", "k1", "SIGUSR1"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.state("k1")["status"] as? String) == "stopped" })
        XCTAssertEqual(sl(["delete", "k1"]).status, 0)

        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "k2"]).status, 0)
        XCTAssertEqual(sl(["kill", "--all", "k2", "9"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.state("k2")["status"] as? String) == "stopped" })
        XCTAssertEqual(sl(["delete", "k2"]).status, 0)
    }

    func testDeleteForceRunningAndMissing() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "--detach", "--bundle", b, "f1"]).status, 0)
        XCTAssertEqual(sl(["delete", "--force", "f1"]).status, 0)
        assertNothingLeft("f1")
        XCTAssertEqual(sl(["delete", "--force", "never-existed"]).status, 0)
        let plain = sl(["delete", "never-existed"])
        XCTAssertEqual(plain.status, 1)
        XCTAssertTrue(plain.stderr.contains("container does not exist"))
    }

    func testListTableJSONQuiet() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["create", "--bundle", b, "l1"]).status, 0)
        let table = sl(["list"])
        XCTAssertEqual(table.status, 0)
        let lines = table.stdout.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("ID") ?? false, table.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("l1 ") && $0.contains("created") && $0.contains(b) }, table.stdout)
        let json = sl(["list", "--format", "json"])
        let arr = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(arr?.first?["id"] as? String, "l1")
        XCTAssertEqual(arr?.first?["status"] as? String, "created")
        XCTAssertEqual(sl(["list", "-q"]).stdout, "l1\n")
        XCTAssertEqual(sl(["delete", "--force", "l1"]).status, 0)
    }

    func testSpecFeaturesAndVersion() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(sl(["spec", "--bundle", dir]).status, 0)
        let spec =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json")))
            as? [String: Any]
        XCTAssertEqual((spec?["root"] as? [String: Any])?["path"] as? String, "rootfs")
        let again = sl(["spec", "--bundle", dir])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("exists"), again.stderr)
        let rootless = sl(["spec", "--rootless", "--bundle", dir + "/x"])
        XCTAssertNotEqual(rootless.status, 0, "no such directory")

        let f = sl(["features"])
        XCTAssertEqual(f.status, 0)
        let features = try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(features?["ociVersionMax"] as? String, "1.3.0")
        XCTAssertEqual((features?["mountOptions"] as? [String])?.contains("rbind"), true)
        let linux = features?["linux"] as? [String: Any]
        let cgroup = linux?["cgroup"] as? [String: Any]
        XCTAssertEqual(cgroup?["v1"] as? Bool, true)
        XCTAssertEqual(cgroup?["v2"] as? Bool, true)
        XCTAssertEqual((linux?["seccomp"] as? [String: Any])?["enabled"] as? Bool, true)
        XCTAssertEqual(
            ((linux?["mountExtensions"] as? [String: Any])?["idmap"] as? [String: Any])?["enabled"] as? Bool, true)
        XCTAssertEqual(
            (linux?["namespaces"] as? [String])?.sorted(),
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"])
        XCTAssertTrue(sl(["--version"]).stdout.contains("spec: 1.3.0"))
    }

    func testLogFileGetsJSONErrorLine() throws {
        let log = root.path + "/log.json"
        let r = sl(["--log", log, "--log-format", "json", "state", "nope"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("container does not exist"))
        let line = try String(contentsOfFile: log, encoding: .utf8)
        let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["level"] as? String, "error")
        XCTAssertEqual(obj?["msg"] as? String, "container does not exist")
        XCTAssertNotNil(obj?["time"])
    }

    func testDebugLinesGoToTheLog() throws {
        let log = root.path + "/debug.json"
        XCTAssertEqual(sl(["--debug", "--log", log, "--log-format", "json", "list"]).status, 0)
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines.allSatisfy { $0.contains("\"level\":\"debug\"") }, "\(lines)")
        XCTAssertEqual(sl(["--log", log + ".2", "list"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: log + ".2"), "no debug lines without --debug")
    }

    func testBadLogFormat() {
        let r = sl(["--log-format", "xml", "list"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("invalid log-format: xml"), r.stderr)
    }

    func state(_ id: String) throws -> [String: Any] {
        let r = sl(["state", id])
        guard r.status == 0 else {
            throw NSError(domain: "state", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.stderr])
        }
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
    }
}

extension LifecycleTests {
    /// runtime.md: create works without `process`; start then fails; delete cleans up.
    func testCreateWithoutProcess() throws {
        let b = try bundle { spec in spec.removeValue(forKey: "process") }
        let c = sl(["create", "--bundle", b, "np1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertEqual(try state("np1")["status"] as? String, "created")
        let s = sl(["start", "np1"])
        XCTAssertEqual(s.status, 1)
        XCTAssertTrue(s.stderr.contains("without a process"), s.stderr)
        XCTAssertEqual(sl(["delete", "np1"]).status, 0)
        assertNothingLeft("np1")
    }
}

extension LifecycleTests {
    /// issue 7 (faults): `create` killed with SIGKILL while a prestart hook runs. The container shows
    /// as `creating`, nothing kills pid 0's process group, and `delete --force` removes everything:
    /// state dir, cgroup, init and the hook (which dies with the runtime).
    func testCreateKilledHalfWayIsCleanedByDeleteForce() throws {
        let hookPid = root.path + "/hook.pid"
        let b = try bundle { spec in
            spec["hooks"] = [
                "prestart": [["path": "/bin/sh", "args": ["sh", "-c", "echo $$ > \(hookPid); exec sleep 30"]]]
            ]
        }
        let script =
            "\(Runtime.binary) --root \(root.path) create --bundle \(b) half & p=$!; "
            + "for i in $(seq 50); do [ -s \(hookPid) ] && break; sleep 0.1; done; kill -9 $p; wait $p; echo killed"
        let r = runProgram("/bin/sh", ["-c", script], timeout: 20)
        XCTAssertTrue(r.stdout.contains("killed"), r.stdout + r.stderr)
        XCTAssertTrue(try state("half")["status"] as? String == "creating")
        XCTAssertTrue(sl(["kill", "half", "KILL"]).stderr.contains("still being created"))
        XCTAssertTrue(sl(["delete", "half"]).stderr.contains("not stopped: creating"))
        XCTAssertEqual(sl(["delete", "--force", "half"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/half"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/swiftlet/half"))
        let pid =
            Int32(
                (try? String(contentsOfFile: hookPid, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                    ?? "") ?? 0
        XCTAssertGreaterThan(pid, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { !processAlive(pid) }, "the prestart hook died with the runtime")
        assertNothingLeft("half")
    }
}
