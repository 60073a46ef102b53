import Foundation
import TestSupport
import XCTest

final class HookTests: ContainerTestCase {
    var logDir = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        logDir = FileManager.default.temporaryDirectory.appendingPathComponent("hooks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: logDir)
        super.tearDown()
    }

    /// A hook that appends its name and the state it got on stdin to `<dir>/log`.
    func hook(_ name: String, dir: String, timeout: Int? = nil) -> [String: Any] {
        var h: [String: Any] = ["path": "/bin/sh", "args": ["sh", "-c", "echo \(name) $(cat) >> \(dir)/log"]]
        if let timeout { h["timeout"] = timeout }
        return h
    }

    /// A bundle whose process logs "main" and with a logging hook of every kind (plus `extraCreateRuntime`).
    func allHooksBundle(extraCreateRuntime: [[String: Any]] = []) throws -> String {
        try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "echo main >> /hooklog/log"])(&spec)
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append([
                "destination": "/hooklog", "type": "bind", "source": self.logDir, "options": ["rbind", "rw"],
            ])
            spec["mounts"] = mounts
            spec["hooks"] = [
                "prestart": [self.hook("prestart", dir: self.logDir)],
                "createRuntime": [self.hook("createRuntime", dir: self.logDir)] + extraCreateRuntime,
                "createContainer": [self.hook("createContainer", dir: self.logDir)],
                "startContainer": [self.hook("startContainer", dir: "/hooklog")],
                "poststart": [self.hook("poststart", dir: self.logDir)],
                "poststop": [self.hook("poststop", dir: self.logDir)],
            ]
        }
    }

    func testAllHooksRunInOrderWithState() throws {
        let b = try allHooksBundle()
        XCTAssertEqual(sl(["create", "--bundle", b, "h1"]).status, 0)
        XCTAssertEqual(sl(["start", "h1"]).status, 0)
        XCTAssertTrue(
            waitUntil(timeout: 5) {
                (try? String(contentsOfFile: self.logDir + "/log", encoding: .utf8))?.contains("main") ?? false
            })
        XCTAssertTrue(waitUntil(timeout: 5) { self.sl(["state", "h1"]).stdout.contains("stopped") })
        XCTAssertEqual(sl(["delete", "h1"]).status, 0)
        let log = try String(contentsOfFile: logDir + "/log", encoding: .utf8)
        let names = log.split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
        // poststart runs after start returns from the fifo; the process may log "main" before or after it.
        XCTAssertEqual(
            names.filter { $0 != "main" && $0 != "poststart" },
            ["prestart", "createRuntime", "createContainer", "startContainer", "poststop"], log)
        XCTAssertTrue(names.contains("poststart") && names.contains("main"), log)
        for line in log.split(separator: "\n") where !line.hasPrefix("main") {
            XCTAssertTrue(line.contains("\"id\":\"h1\""), "state on stdin: \(line)")
            XCTAssertTrue(line.contains("\"bundle\":\"\(b)\""), "state on stdin: \(line)")
        }
    }

    /// `run` starts init over the sync socket instead of the exec fifo (Spec/sync-protocol.md): the
    /// hooks still run in order around the process, and no fifo is made (a createRuntime hook, in the
    /// runtime's namespaces, lists the state directory; for `create` it sees the fifo).
    func testRunStartsWithoutExecFifoAndRunsHooksInOrder() throws {
        let stateDir = root.path
        func lister(_ name: String) -> [String: Any] {
            [
                "path": "/bin/sh",
                "args": ["sh", "-c", "echo \(name) $(ls \(stateDir)/$0) >> \(self.logDir)/dirs", "r1"],
            ]
        }
        let b = try allHooksBundle(extraCreateRuntime: [lister("run")])
        let r = sl(["run", "--bundle", b, "r1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let log = try String(contentsOfFile: logDir + "/log", encoding: .utf8)
        let names = log.split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
        XCTAssertEqual(
            names.filter { $0 != "main" && $0 != "poststart" },
            ["prestart", "createRuntime", "createContainer", "startContainer", "poststop"], log)
        XCTAssertTrue(names.contains("poststart") && names.contains("main"), log)
        XCTAssertLessThan(names.firstIndex(of: "startContainer") ?? 99, names.firstIndex(of: "main") ?? -1, log)
        XCTAssertEqual(try String(contentsOfFile: logDir + "/dirs", encoding: .utf8), "run state.json\n")
        assertNothingLeft("r1", bundle: b)
        // The same hook under create + start sees the fifo that start opens.
        XCTAssertEqual(sl(["create", "--bundle", b, "r1"]).status, 0)
        XCTAssertTrue(
            try String(contentsOfFile: logDir + "/dirs", encoding: .utf8).hasSuffix("run exec.fifo state.json\n"))
        XCTAssertEqual(sl(["delete", "-f", "r1"]).status, 0)
    }

    /// A failing startContainer hook fails `run` with the hook's error, and nothing is left.
    func testRunWithFailingStartContainerHookFailsCleanly() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["true"])(&spec)
            spec["hooks"] = ["startContainer": [["path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 4"]]]]
        }
        let r = sl(["run", "--bundle", b, "rf"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("hooks.startContainer[0]") && r.stderr.contains("exit status 4"), r.stderr)
        assertNothingLeft("rf", bundle: b)
    }

    /// Poststart runs after the user process was executed: the hook sees its command line.
    func testPoststartSeesExecutedProcess() throws {
        let log = logDir + "/poststart"
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            spec["hooks"] = [
                "poststart": [
                    [
                        "path": "/bin/sh",
                        "args": [
                            "sh", "-c",
                            "pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p'); tr '\\0' ' ' < /proc/$pid/cmdline > "
                                + "\(log)",
                        ],
                    ]
                ]
            ]
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "ps1"]).status, 0)
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "sleep 100 ")
        XCTAssertEqual(sl(["delete", "-f", "ps1"]).status, 0)
    }

    func testFailingHookFailsCreateAndLeavesNothing() throws {
        let b = try bundle { spec in
            spec["hooks"] = ["createRuntime": [["path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]]]]
        }
        let r = sl(["create", "--bundle", b, "hf"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("hooks.createRuntime[0]"), r.stderr)
        XCTAssertTrue(r.stderr.contains("exit status 3") && r.stderr.contains("broken"), r.stderr)
        assertNothingLeft("hf", bundle: b)
    }

    func testHookTimeoutIsHonoured() throws {
        let b = try bundle { spec in
            spec["hooks"] = ["prestart": [["path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1]]]
        }
        let started = Date()
        let r = sl(["create", "--bundle", b, "ht"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("timeout"), r.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 15)
        assertNothingLeft("ht", bundle: b)
    }
}

extension HookTests {
    /// createContainer hooks run in the container's root (before the pivot: the rootfs directory),
    /// so relative paths resolve inside the container, as in runc.
    func testCreateContainerHookRunsInContainerRoot() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["true"])(&spec)
            spec["hooks"] = [
                "createContainer": [
                    [
                        "path": "/bin/sh",
                        "args": [
                            "sh", "-c",
                            "pwd -P > \(self.logDir)/cwd; test -x bin/busybox && echo busybox-here >> "
                                + "\(self.logDir)/cwd",
                        ],
                    ]
                ]
            ]
        }
        let r = sl(["run", "--bundle", b, "hcwd"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rootPath = try readConfig(bundle: b)[dict: "root"]["path"] as? String ?? ""
        let rootfs = URL(fileURLWithPath: rootPath).resolvingSymlinksInPath().path
        XCTAssertEqual(try String(contentsOfFile: logDir + "/cwd", encoding: .utf8), "\(rootfs)\nbusybox-here\n")
    }

    /// Hooks without `env` inherit the environment of whoever runs them (runc 1.1 and 1.3): the
    /// runtime's for prestart, the container process's (with HOME) for startContainer; a hook with
    /// `env` gets exactly that.
    func testHookEnvironment() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["true"])(&spec)
            spec[path: "process.env"] = ["PATH=/bin:/usr/bin", "FOO=from-process"]
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append([
                "destination": "/hooklog", "type": "bind", "source": self.logDir, "options": ["rbind", "rw"],
            ])
            spec["mounts"] = mounts
            spec["hooks"] = [
                "prestart": [["path": "/bin/sh", "args": ["sh", "-c", "env > \(self.logDir)/prestart"]]],
                "startContainer": [
                    ["path": "/bin/sh", "args": ["sh", "-c", "env > /hooklog/start"]],
                    ["path": "/bin/sh", "args": ["sh", "-c", "env > /hooklog/start-own"], "env": ["OWN=1"]],
                ],
            ]
        }
        let r = sl(["run", "--bundle", b, "henv"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = { (name: String) in
            Set(
                ((try? String(contentsOfFile: self.logDir + "/" + name, encoding: .utf8)) ?? "").split(separator: "\n")
                    .map(String.init))
        }
        XCTAssertTrue(lines("prestart").contains(tag), "prestart: \(lines("prestart"))")
        let start = lines("start")
        XCTAssertTrue(start.contains("FOO=from-process") && start.contains("HOME=/root"), "startContainer: \(start)")
        XCTAssertFalse(start.contains(tag), "startContainer: \(start)")
        let own = lines("start-own")
        XCTAssertTrue(own.contains("OWN=1") && !own.contains("FOO=from-process"), "startContainer with env: \(own)")
    }

    /// A failing poststart hook fails `run` (exit 1, the hook's output in the error) and the container
    /// is gone, as with runc 1.1 and 1.3 (the runtime-spec asks for a warning: Spec/cli.md).
    func testFailingPoststartHookFailsRun() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            spec["hooks"] = [
                "poststart": [["path": "/bin/sh", "args": ["sh", "-c", "echo poststart-broke >&2; exit 3"]]]
            ]
        }
        for detach in [false, true] {
            let id = detach ? "psd" : "psf"
            let r = sl(["run"] + (detach ? ["-d"] : []) + ["--bundle", b, id])
            XCTAssertEqual(r.status, 1, "detach \(detach): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("exit status 3") && r.stderr.contains("poststart-broke"), r.stderr)
            if !isRunc { XCTAssertTrue(r.stderr.contains("hooks.poststart[0]"), r.stderr) }
            XCTAssertNotEqual(sl(["state", id]).status, 0, "container \(id) must be gone")
            assertNothingLeft(id, bundle: b)
        }
        // swiftlet runs poststart at `start` (runc at `create`): start fails and the container is stopped.
        if !isRunc {
            XCTAssertEqual(sl(["create", "--bundle", b, "pss"]).status, 0)
            let s = sl(["start", "pss"])
            XCTAssertEqual(s.status, 1, s.stderr)
            XCTAssertTrue(s.stderr.contains("hooks.poststart[0]") && s.stderr.contains("exit status 3"), s.stderr)
            XCTAssertTrue(sl(["state", "pss"]).stdout.contains("\"stopped\""))
            XCTAssertEqual(sl(["delete", "pss"]).status, 0)
            assertNothingLeft("pss", bundle: b)
        }
    }
}
