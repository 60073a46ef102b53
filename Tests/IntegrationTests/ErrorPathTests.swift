import Foundation
import TestSupport
import XCTest

/// Every failure of create names the field or path, exits 1 and leaves nothing behind.
final class ErrorPathTests: ContainerTestCase {
    /// The id is random: the cgroup /swiftlet/<id> is shared by every --root on the machine, so a fixed
    /// id made another checkout's concurrent run look like a cgroup this test left behind.
    func expectCreateFailure(
        _ want: String, id: String = "bad\(UInt32.random(in: 0...UInt32.max))", file: StaticString = #filePath,
        line: UInt = #line,
        _ edit: @escaping (inout [String: Any]) -> Void
    ) throws {
        let b = try bundle(edit)
        let r = sl(["create", "--bundle", b, id])
        XCTAssertEqual(r.status, 1, "should fail: \(r.stdout)", file: file, line: line)
        XCTAssertTrue(
            r.stderr.contains(want), "stderr \(r.stderr.debugDescription) lacks \(want.debugDescription)", file: file,
            line: line)
        assertNothingLeft(id, bundle: b, file: file, line: line)
    }

    /// runc makes --root absolute before use; a relative one names a directory under the caller's cwd.
    func testRelativeRootIsMadeAbsolute() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cwd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = runProgram("/bin/sh", ["-c", "cd \"$0\" && exec \"$1\" --debug --root rel list", dir, Runtime.binary])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(dir)/rel"), "debug log names the absolute root: \(r.stderr)")
    }

    func testMissingConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("empty-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = sl(["create", "--bundle", dir, "nocfg"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("config.json not found"), r.stderr)
        assertNothingLeft("nocfg")
    }

    func testMalformedJSON() throws {
        let b = try bundle()
        try "{\"ociVersion\": \"1.2.0\", \"process\": ".write(
            toFile: b + "/config.json", atomically: true, encoding: .utf8)
        let id = "badjson\(UInt32.random(in: 0...UInt32.max))"
        let r = sl(["create", "--bundle", b, id])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("config.json"), r.stderr)
        assertNothingLeft(id, bundle: b)
    }

    func testUnknownNamespaceType() throws {
        try expectCreateFailure("linux.namespaces[1].type: unknown namespace \"foo\"") { spec in
            var linux = spec[dict: "linux"]
            linux["namespaces"] = [["type": "mount"], ["type": "foo"]]
            spec["linux"] = linux
        }
    }

    func testWrongTypeNamesPath() throws {
        try expectCreateFailure("process.user.uid") { spec in
            var p = spec[dict: "process"]
            p["user"] = ["uid": "root", "gid": 0]
            spec["process"] = p
        }
    }

    func testMissingRootfs() throws {
        try expectCreateFailure("root.path") { spec in spec["root"] = ["path": "/nonexistent/rootfs"] }
    }

    func testBadNamespacePath() throws {
        try expectCreateFailure("/proc/999999/ns/net") { spec in
            var linux = spec[dict: "linux"]
            linux["namespaces"] = [
                ["type": "mount"], ["type": "pid"], ["type": "network", "path": "/proc/999999/ns/net"],
            ]
            spec["linux"] = linux
            spec.removeValue(forKey: "hostname")
        }
    }

    func testExecutableNotFound() throws {
        try expectCreateFailure(
            "exec: \"does-not-exist\": executable file not found in $PATH", ContainerTestCase.args(["does-not-exist"]))
    }

    func testCwdThatIsAFile() throws {
        try expectCreateFailure("/etc/passwd") { spec in
            var p = spec[dict: "process"]
            p["cwd"] = "/etc/passwd"
            spec["process"] = p
        }
    }

    func testBadBindSource() throws {
        try expectCreateFailure("/no/such/source") { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/x", "type": "bind", "source": "/no/such/source", "options": ["rbind"]])
            spec["mounts"] = mounts
        }
    }

    func testBadMountType() throws {
        try expectCreateFailure("/weird") { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/weird", "type": "nosuchfs", "source": "none"])
            spec["mounts"] = mounts
        }
    }

    /// Issue 17: the container init's errno reaches the runtime as a number, not only folded into
    /// text: init fails to mount an unknown filesystem type (ENODEV) and swiftlet's `--debug` names
    /// the errno its error chain carries. Every runtime says "no such device"; the errno line is
    /// swiftlet's own.
    func testInitErrnoReachesTheCaller() throws {
        let id = "bad\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/weird", "type": "nosuchfs", "source": "none"])
            spec["mounts"] = mounts
        }
        let r = sl(["--debug", "create", "--bundle", b, id])
        XCTAssertEqual(r.status, 1, "should fail: \(r.stdout)")
        XCTAssertTrue(r.stderr.lowercased().contains("no such device"), r.stderr)
        if !Runtime.binary.hasSuffix("/runc") && !Runtime.binary.hasSuffix("/crun") {
            XCTAssertTrue(
                r.stderr.contains(
                    "unable to start container process: mount \"none\" (nosuchfs) to /weird: No such device"),
                r.stderr)
            XCTAssertTrue(r.stderr.contains("create: errno \(ENODEV) (No such device)"), r.stderr)
        }
        assertNothingLeft(id, bundle: b)
    }

    func testBadSysctl() throws {
        try expectCreateFailure("net/ipv4/no_such_knob") { spec in
            var linux = spec[dict: "linux"]
            linux["sysctl"] = ["net.ipv4.no_such_knob": "1"]
            spec["linux"] = linux
        }
    }

    func testEmptyArgs() throws {
        try expectCreateFailure("process.args", ContainerTestCase.args([]))
    }

    func testInvalidIdAndArgCount() throws {
        let b = try bundle()
        let r = sl(["create", "--bundle", b, "../escape"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("invalid container id format"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/../escape"))
        let none = sl(["create", "--bundle", b])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("requires exactly 1 argument"), none.stderr)
    }

    func testTerminalWithoutConsoleSocket() throws {
        try expectCreateFailure("cannot allocate tty") { spec in
            var p = spec[dict: "process"]
            p["terminal"] = true
            spec["process"] = p
        }
    }

    func testUnknownFlagAndVerb() {
        let f = sl(["create", "--bogus", "x"])
        XCTAssertEqual(f.status, 1)
        XCTAssertTrue(f.stderr.contains("flag provided but not defined: -bogus"), f.stderr)
        XCTAssertNotEqual(sl(["frobnicate"]).status, 0)
    }
}
