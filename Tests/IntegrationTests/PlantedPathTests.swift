import Foundation
import TestSupport
import XCTest

/// A root-owned 0600 file that a planted symlink points to: its content must survive.
struct Victim {
    let path: String
    static let content = "victim-secret\n"

    init(in dir: String, name: String = "victim") throws {
        path = dir + "/" + name
        try Victim.content.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
    }

    var intact: Bool { (try? String(contentsOfFile: path, encoding: .utf8)) == Victim.content }
}

func plantSymlink(_ link: String, to target: String) {
    XCTAssertEqual(symlink(target, link), 0, "symlink \(link)")
}

func isSymlink(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK
}

/// Issue 13.5: files root writes at a path it was given never follow a symlink planted there.
final class PlantedPidFileTests: ContainerTestCase {
    func hostDir() throws -> String {
        let d = try makeTempDir(prefix: "swiftlet-planted.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: d) }
        return d
    }

    /// The old writer opened `<pid file>.tmp` with O_CREAT|O_TRUNC: a symlink there truncated and
    /// overwrote its target. create and exec both write a pid file.
    func testSymlinkAtThePidFileTempNameIsNotFollowed() throws {
        let dir = try hostDir()
        let victim = try Victim(in: dir)
        for name in ["create.pid", "exec.pid"] { plantSymlink(dir + "/" + name + ".tmp", to: victim.path) }
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let id = "p\(UInt32.random(in: 0...UInt32.max))"
        defer { sl(["delete", "--force", id]) }
        let create = sl(["create", "--bundle", b, "--pid-file", dir + "/create.pid", id])
        XCTAssertEqual(create.status, 0, create.stderr)
        let exec = sl(["exec", "-d", "--pid-file", dir + "/exec.pid", id, "sleep", "50"])
        XCTAssertEqual(exec.status, 0, exec.stderr)
        XCTAssertTrue(victim.intact, "the victim was overwritten through <pid file>.tmp")
        for name in ["create.pid", "exec.pid"] {
            let text = (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? ""
            XCTAssertGreaterThan(Int32(text) ?? 0, 1, "\(name) holds a pid: \(text)")
            XCTAssertFalse(isSymlink(dir + "/" + name), name)
        }
    }

    /// A symlink AT the pid file path is replaced by the new file, not followed (runc writes its
    /// pid file through a temp file and rename too).
    func testSymlinkAtThePidFilePathIsReplaced() throws {
        let dir = try hostDir()
        let victim = try Victim(in: dir)
        plantSymlink(dir + "/ctr.pid", to: victim.path)
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let id = "p\(UInt32.random(in: 0...UInt32.max))"
        defer { sl(["delete", "--force", id]) }
        let create = sl(["create", "--bundle", b, "--pid-file", dir + "/ctr.pid", id])
        XCTAssertEqual(create.status, 0, create.stderr)
        XCTAssertTrue(victim.intact, "the victim was overwritten through the pid file symlink")
        XCTAssertFalse(isSymlink(dir + "/ctr.pid"), "the symlink was replaced by the pid file")
        XCTAssertGreaterThan(Int32((try? String(contentsOfFile: dir + "/ctr.pid", encoding: .utf8)) ?? "") ?? 0, 1)
    }
}

/// Issue 13.5 for the monitor: exit files, its own pid file, the k8s-file log's rotation and reopen.
final class MonitorPlantedPathTests: MonitorTestCase {
    func testExitFilesAndMonitorPidFileDoNotFollowSymlinks() throws {
        let host = try makeTempDir(prefix: "swiftlet-planted.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: host) }
        let victims = try (0..<3).map { try Victim(in: host, name: "victim\($0)") }
        let id = "m\(UInt32.random(in: 0...UInt32.max))"
        prepareDir = { dir in
            plantSymlink(dir + "/exits/" + id + ".tmp", to: victims[0].path)
            plantSymlink(dir + "/persist/exit.tmp", to: victims[1].path)
            plantSymlink(dir + "/mon.pid", to: victims[2].path)
        }
        let c = try launch(["true"], id: id)
        XCTAssertGreaterThan(c.syncJSON["data"] as? Int ?? -1, 0, c.syncLine)
        start(c)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertEqual(try String(contentsOfFile: c.persistDir + "/exit", encoding: .utf8), "0")
        for (i, v) in victims.enumerated() {
            XCTAssertTrue(v.intact, "victim\(i) was overwritten through a planted symlink")
        }
        XCTAssertFalse(isSymlink(c.exitFile))
        XCTAssertFalse(isSymlink(c.dir + "/mon.pid"), "the monitor pid file replaced the symlink")
        XCTAssertNotNil(c.monitorPid, "the monitor wrote its pid")
    }

    /// Over --log-size-max the log starts again as a new file: never through `<log>.tmp`.
    func testLogRotationDoesNotFollowASymlinkAtTheTempName() throws {
        let host = try makeTempDir(prefix: "swiftlet-planted.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: host) }
        let victim = try Victim(in: host)
        prepareDir = { dir in plantSymlink(dir + "/ctr.log.tmp", to: victim.path) }
        let c = try launch(
            ["sh", "-c", "for i in $(seq 1 200); do echo line-$i; done"], monitorArgs: ["--log-size-max", "2000"])
        start(c)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertTrue(victim.intact, "the victim was truncated through <log>.tmp")
        XCTAssertFalse(isSymlink(c.log))
        XCTAssertTrue(c.logText().hasSuffix("stdout F line-200\n"), c.logText())
    }

    /// A reopen (ctl message 2) finds a symlink where the log was: it is not followed (O_NOFOLLOW),
    /// the failure is reported as a log-error event and the old log file keeps the output.
    func testLogReopenDoesNotFollowASymlink() throws {
        let host = try makeTempDir(prefix: "swiftlet-planted.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: host) }
        let victim = try Victim(in: host)
        // /tmp: a mount point the shared test rootfs has.
        let c = try launch(["sh", "-c", "echo before; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after"]) {
            spec in
            spec["mounts"] =
                (spec["mounts"] as? [[String: Any]] ?? []) + [
                    ["destination": "/tmp", "type": "bind", "source": host, "options": ["rbind"]]
                ]
        }
        let api = try ControlClient(c.bundle + "/monitor.sock")
        _ = api.call("subscribe")
        start(c)
        XCTAssertTrue(waitUntil(timeout: 10) { c.logText().contains("before") })
        try FileManager.default.moveItem(atPath: c.log, toPath: c.log + ".1")
        plantSymlink(c.log, to: victim.path)
        let ctl = open(c.bundle + "/ctl", O_WRONLY)
        _ = "2 0 0\n".withCString { write(ctl, $0, 6) }
        close(ctl)
        let event = api.waitEvent(timeout: 10) { $0["event"] as? String == "log-error" }
        XCTAssertNotNil(event, "the failed reopen is reported")
        XCTAssertTrue(
            (event?["message"] as? String ?? "").contains("Too many levels of symbolic links"), "\(event ?? [:])")
        FileManager.default.createFile(atPath: host + "/go", contents: nil)
        XCTAssertEqual(c.exitCode(), "0")
        XCTAssertTrue(victim.intact, "the victim was written through the symlink at the log path")
        XCTAssertTrue(((try? String(contentsOfFile: c.log + ".1", encoding: .utf8)) ?? "").contains("stdout F after"))
    }
}
