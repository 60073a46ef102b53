import Foundation
import TestSupport
import XCTest

/// Forensic checkpoint archives through the monitor's control API, and restore from one with
/// `swiftlet-monitor --restore ARCHIVE.tar`. Needs the criu from Scripts/install-criu.sh ($SWIFTLET_CRIU).
final class MonitorCheckpointTests: MonitorTestCase {
    var criu: String = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        criu = ProcessInfo.processInfo.environment["SWIFTLET_CRIU"] ?? ""
        try XCTSkipIf(criu.isEmpty, "SWIFTLET_CRIU is not set (Scripts/test.sh sets it from Scripts/install-criu.sh)")
    }

    func counter() throws -> MonitoredContainer {
        let c = try launch(
            ["sh", "-c", "i=0; while true; do echo count-$i; i=$((i+1)); sleep 0.1; done"],
            monitorArgs: ["--runtime-arg", "--criu=" + criu])
        start(c)
        XCTAssertTrue(waitUntil(timeout: 10) { c.logText().contains("count-5") })
        return c
    }

    func lastCount(_ text: String) -> Int {
        text.split(separator: "\n").compactMap {
            $0.split(separator: " ").last.flatMap { Int($0.dropFirst("count-".count)) }
        }.last ?? -1
    }

    func testArchiveWhileRunningAndRestoreIntoANewContainer() throws {
        let c = try counter()
        let api = try ControlClient(c.bundle + "/monitor.sock")
        let out = try makeTempDir(prefix: "swiftlet-archive.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: out) }
        let archive = out + "/ck.tar"
        let reply = api.call("checkpoint", ["archive": archive], timeout: 120)
        let result = try XCTUnwrap(reply["result"] as? [String: Any], "\(reply)")
        XCTAssertGreaterThan(result["size"] as? Int ?? 0, 0)
        XCTAssertEqual(result["rootfsDiff"] as? Bool, false, "the test rootfs is a plain directory")
        XCTAssertFalse(FileManager.default.fileExists(atPath: archive + ".work"), "the work dir is removed")
        var st = stat()
        XCTAssertEqual(stat(archive, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "the archive is readable by root only")
        // The container keeps running and counting.
        let counted = lastCount(c.logText())
        XCTAssertTrue(waitUntil(timeout: 10) { self.lastCount(c.logText()) > counted + 3 })
        XCTAssertEqual((api.call("state")["result"] as? [String: Any])?["status"] as? String, "running")

        let list = runProgram("/bin/tar", ["-tf", archive])
        for entry in ["./checkpoint/", "./config.dump", "./spec.dump", "./dump.log"] {
            XCTAssertTrue(list.stdout.split(separator: "\n").contains(Substring(entry)), "\(entry) in \(list.stdout)")
        }
        let x = try makeTempDir(prefix: "swiftlet-archive-x.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: x) }
        XCTAssertEqual(runProgram("/bin/tar", ["-xf", archive, "-C", x, "./config.dump"]).status, 0)
        let config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: x + "/config.dump")))
            as? [String: Any]
        XCTAssertEqual(config?["id"] as? String, c.id)
        XCTAssertEqual(config?["runtime"] as? String, "swiftlet")
        XCTAssertNotNil(config?["checkpointedTime"] as? String)

        // Restore elsewhere: a new id, a bundle without config.json (spec.dump is used).
        let dir = try makeTempDir(prefix: "swiftlet-monitor-test.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/bundle", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/exits", withIntermediateDirectories: true)
        let id = c.id + "-restored"
        let (_, line) = runMonitor(
            [
                "--api-version", "1", "-c", id, "-u", id, "-r", Runtime.binary, "-b", dir + "/bundle",
                "-p", dir + "/ctr.pid", "-P", dir + "/mon.pid", "--exit-dir", dir + "/exits",
                "-l", "k8s-file:" + dir + "/ctr.log", "--runtime-arg", "--root=" + root.path,
                "--runtime-arg", "--criu=" + criu, "--restore", archive,
            ], dir: dir)
        let restored = MonitoredContainer(
            id: id, dir: dir, runtime: .swiftlet, runtimeRoot: root.path,
            sync: RunResult(status: 0, stdout: "", stderr: ""), syncLine: line)
        launched.append(restored)
        XCTAssertGreaterThan(restored.syncJSON["data"] as? Int ?? -1, 0, line)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: dir + "/bundle/config.json"), "spec.dump became config.json")
        XCTAssertTrue(
            waitUntil(timeout: 15) { self.lastCount(restored.logText()) > counted },
            "the restored copy counts on from the checkpoint: \(restored.logText().suffix(200))")
        XCTAssertFalse(restored.logText().contains("count-0\n"), "it did not start again from 0")
        XCTAssertEqual(sl(["kill", id, "KILL"]).status, 0)
        XCTAssertEqual(restored.exitCode(), "137", "the restored process's exit is reported")
    }

    /// An overlay root (lower: the test rootfs) whose changes travel in rootfs-diff.tar / deleted.files.
    func overlayRoot(_ base: String) throws -> String {
        for d in ["upper", "work", "merged"] {
            try FileManager.default.createDirectory(atPath: base + "/" + d, withIntermediateDirectories: true)
        }
        let r = runProgram(
            "/bin/mount",
            [
                "-t", "overlay", "overlay", "-o",
                "lowerdir=\(Runtime.rootfs),upperdir=\(base)/upper,workdir=\(base)/work", base + "/merged",
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        addTeardownBlock { _ = runProgram("/bin/umount", ["-l", base + "/merged"]) }
        return base + "/merged"
    }

    func testRootfsChangesTravelInTheArchive() throws {
        let base = try makeTempDir(prefix: "swiftlet-overlay.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: base) }
        let merged = try overlayRoot(base + "/a")
        let c = try launch(
            [
                "sh", "-c",
                "echo changed > /new-file; rm /bin/cat; i=0; while true; do echo count-$i; i=$((i+1)); sleep 0.1; done",
            ],
            monitorArgs: ["--runtime-arg", "--criu=" + criu]
        ) { spec in spec["root"] = ["path": merged, "readonly": false] }
        start(c)
        XCTAssertTrue(waitUntil(timeout: 10) { c.logText().contains("count-3") })
        let api = try ControlClient(c.bundle + "/monitor.sock")
        let archive = base + "/ck.tar"
        let result = try XCTUnwrap(
            api.call("checkpoint", ["archive": archive], timeout: 120)["result"] as? [String: Any])
        XCTAssertEqual(result["rootfsDiff"] as? Bool, true)
        let x = base + "/x"
        try FileManager.default.createDirectory(atPath: x, withIntermediateDirectories: true)
        XCTAssertEqual(runProgram("/bin/tar", ["-xf", archive, "-C", x]).status, 0)
        XCTAssertTrue(runProgram("/bin/tar", ["-tf", x + "/rootfs-diff.tar"]).stdout.contains("./new-file"))
        XCTAssertEqual(try String(contentsOfFile: x + "/deleted.files", encoding: .utf8), "[\"bin/cat\"]")

        // Restore onto a fresh overlay of the same lower dir: the diff is applied first.
        let merged2 = try overlayRoot(base + "/b")
        let dir = base + "/r"
        try FileManager.default.createDirectory(atPath: dir + "/bundle", withIntermediateDirectories: true)
        var spec =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: c.bundle + "/config.json")))
            as? [String: Any] ?? [:]
        spec["root"] = ["path": merged2, "readonly": false]
        try writeConfigThrowing(spec, to: dir + "/bundle")
        let id = c.id + "-r"
        let (_, line) = runMonitor(
            [
                "--api-version", "1", "-c", id, "-u", id, "-r", Runtime.binary, "-b", dir + "/bundle",
                "-p", dir + "/ctr.pid", "-P", dir + "/mon.pid", "-l", "k8s-file:" + dir + "/ctr.log",
                "--runtime-arg", "--root=" + root.path, "--runtime-arg", "--criu=" + criu, "--restore", archive,
            ], dir: dir)
        launched.append(
            MonitoredContainer(
                id: id, dir: dir, runtime: .swiftlet, runtimeRoot: root.path,
                sync: RunResult(status: 0, stdout: "", stderr: ""), syncLine: line))
        XCTAssertTrue(line.hasPrefix("{\"data\":") && !line.contains("-1"), line)
        XCTAssertEqual(try String(contentsOfFile: merged2 + "/new-file", encoding: .utf8), "changed\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged2 + "/bin/cat"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: Runtime.rootfs + "/bin/cat"), "the lower dir is untouched")
        XCTAssertEqual(sl(["kill", id, "KILL"]).status, 0)
    }

    func testBadArchiveRequestsAndArchives() throws {
        let c = try counter()
        let api = try ControlClient(c.bundle + "/monitor.sock")
        XCTAssertTrue(
            (api.call("checkpoint", ["archive": "relative.tar"])["error"] as? String ?? "").contains("params.archive"))
        XCTAssertTrue(
            (api.call("checkpoint", ["archive": "/nonexistent-dir-\(UUID().uuidString)/x.tar"])["error"] as? String
                ?? "").contains("does not exist"))
        XCTAssertTrue(
            (api.call("checkpoint", ["archive": c.bundle + "/config.json.tar", "tcpEstablished": "yes"])["error"]
                as? String ?? "").contains("params.tcpEstablished"))
        // A tar that is not a checkpoint archive: a clear error on the sync pipe, nothing left.
        let dir = try makeTempDir(prefix: "swiftlet-monitor-test.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/bundle", withIntermediateDirectories: true)
        XCTAssertEqual(runProgram("/bin/tar", ["-cf", dir + "/junk.tar", "-C", c.bundle, "config.json"]).status, 0)
        let (_, line) = runMonitor(
            [
                "--api-version", "1", "-c", "junk", "-u", "junk", "-r", Runtime.binary, "-b", dir + "/bundle",
                "-p", dir + "/ctr.pid", "--runtime-arg", "--root=" + root.path, "--restore", dir + "/junk.tar",
            ], dir: dir)
        XCTAssertTrue(line.contains("\"data\":-1") && line.contains("not a checkpoint archive"), line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/junk"), "no state left")
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: dir + "/bundle/checkpoint-archive"),
            "the unpacked archive is removed")
        // The first container was not disturbed.
        XCTAssertEqual((api.call("state")["result"] as? [String: Any])?["status"] as? String, "running")
    }
}
