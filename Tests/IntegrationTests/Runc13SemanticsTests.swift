import Foundation
import Glibc
import TestSupport
import XCTest

/// runc 1.2/1.3 semantics (issue 19 items 4-7, 9-12, the exec parts of 13, and 14): each test runs
/// a real container and holds for runc 1.3.6 as well.
final class Runc13SemanticsTests: ContainerTestCase {
    func addMount(_ destination: String, _ source: String, _ options: [String], type: String) -> (inout [String: Any])
        -> Void
    {
        { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": destination, "type": type, "source": source, "options": options])
            spec["mounts"] = mounts
        }
    }

    func setProcess(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { spec in
            var p = spec[dict: "process"]
            p[key] = value
            spec["process"] = p
        }
    }

    /// A container running `sleep 100`, removed at the end.
    func startSleeper(_ edit: @escaping (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            edit(&spec)
        }
        let id = "r13\(UInt32.random(in: 0...UInt32.max))"
        let r = sl(["run", "-d", "--bundle", b, id])
        XCTAssertEqual(r.status, 0, r.stderr)
        addTeardownBlock { self.sl(["delete", "--force", id]) }
        return id
    }

    // MARK: - 4, 6, 7: tmpfs mode, tmpcopyup, relative destinations

    /// A tmpfs without mode= takes the mode of the directory it covers; a new directory gets the
    /// tmpfs default (1777); an explicit mode= wins.
    func testTmpfsTakesModeOfMountpoint() throws {
        let rootfs = try privateRootfs()
        for dir in ["m710", "explicit"] {
            try FileManager.default.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: false)
            chmod(rootfs + "/" + dir, 0o710)
        }
        let r = try run(["stat", "-c", "%n %a", "/m710", "/fresh", "/explicit"]) { spec in
            spec[path: "root.path"] = rootfs
            self.addMount("/m710", "tmpfs", ["size=1m"], type: "tmpfs")(&spec)
            self.addMount("/fresh", "tmpfs", [], type: "tmpfs")(&spec)
            self.addMount("/explicit", "tmpfs", ["mode=755"], type: "tmpfs")(&spec)
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "/m710 710\n/fresh 1777\n/explicit 755\n")
    }

    /// tmpcopyup: the tmpfs starts with the covered directory's files, directories, symlinks, modes
    /// and owners; writes go to the tmpfs, not the image.
    func testTmpcopyupCopiesDirectoryContents() throws {
        let rootfs = try privateRootfs()
        let dir = rootfs + "/cu"
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/sub/deeper", withIntermediateDirectories: true)
        try "hello\n".write(toFile: dir + "/f", atomically: false, encoding: .utf8)
        try "inner\n".write(toFile: dir + "/sub/deeper/g", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: dir + "/l", withDestinationPath: "f")
        chown(dir + "/f", 12, 34)
        chmod(dir + "/f", 0o604)
        chmod(dir + "/sub", 0o751)
        chown(dir + "/sub/deeper", 5, 6)
        chmod(dir, 0o710)
        let script =
            "stat -c '%n %a %u %g' /cu /cu/f /cu/sub /cu/sub/deeper; readlink /cu/l; cat /cu/l /cu/sub/deeper/g; "
            + "awk '$5 == \"/cu\" { print $9 }' /proc/self/mountinfo; echo new > /cu/new && echo written"
        let r = try run(["sh", "-c", script]) { spec in
            spec[path: "root.path"] = rootfs
            self.addMount("/cu", "tmpfs", ["tmpcopyup"], type: "tmpfs")(&spec)
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            r.stdout,
            "/cu 710 0 0\n/cu/f 604 12 34\n/cu/sub 751 0 0\n/cu/sub/deeper 755 5 6\nf\nhello\ninner\ntmpfs\nwritten\n")
        XCTAssertFalse(fm.fileExists(atPath: dir + "/new"), "the write went to the image, not the tmpfs")
        let features = try JSONSerialization.jsonObject(with: Data(sl(["features"]).stdout.utf8)) as? [String: Any]
        XCTAssertEqual((features?["mountOptions"] as? [String])?.contains("tmpcopyup"), true)
    }

    /// A relative destination is taken relative to "/" (runtime-spec 1.2; runc warns and does so).
    func testRelativeMountDestination() throws {
        let r = try run(["sh", "-c", "awk '$5 == \"/tmp\" { print $9 }' /proc/self/mountinfo"]) { spec in
            self.addMount("tmp", "tmpfs", ["size=1m"], type: "tmpfs")(&spec)
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "tmpfs\n")
        XCTAssertTrue(r.stderr.contains("not absolute"), r.stderr)
    }

    // MARK: - 5: recursive atime options

    /// ratime, rnostrictatime and rnorelatime fall back to relatime; rnoatime and rstrictatime set
    /// theirs (all over a source mounted noatime). runc 1.3.6 gives the same.
    func testRecursiveAtimeOptions() throws {
        let rootfs = try privateRootfs()
        let src = FileManager.default.temporaryDirectory.appendingPathComponent("atime-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        XCTAssertEqual(mount("tmpfs", src, "tmpfs", UInt(MS_NOATIME), "size=1m"), 0)
        addTeardownBlock {
            umount2(src, Int32(MNT_DETACH))
            rmdir(src)
        }
        let cases = [
            ("ratime", "relatime"), ("rnostrictatime", "relatime"), ("rnorelatime", "relatime"),
            ("rnoatime", "noatime"), ("rstrictatime", "strictatime"), ("rrelatime", "relatime"),
        ]
        let script = cases.indices.map { i in
            "awk '$5 == \"/a\(i)\" { n = split($6, o, \",\"); m = \"strictatime\"; "
                + "for (k = 1; k <= n; k++) if (o[k] ~ /atime$/) m = o[k]; print m }' /proc/self/mountinfo"
        }.joined(separator: "; ")
        let r = try run(["sh", "-c", script]) { spec in
            spec[path: "root.path"] = rootfs
            for (i, c) in cases.enumerated() { self.addMount("/a\(i)", src, ["rbind", c.0], type: "bind")(&spec) }
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, cases.map { $0.1 + "\n" }.joined())
    }

    // MARK: - 9: CPU affinity

    /// A runtime pinned to CPU 0 (taskset) does not pin the container's init or exec'd processes.
    func testCPUAffinityIsReset() throws {
        let online = try String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try XCTSkipIf(online == "0", "needs more than one CPU")
        func pinned(_ args: [String]) -> RunResult {
            runProgram("/usr/bin/taskset", ["-c", "0", Runtime.binary, "--root", root.path] + args)
        }
        let b = try bundle(ContainerTestCase.args(["sh", "-c", "grep Cpus_allowed_list /proc/self/status | cut -f2"]))
        let r = pinned(["run", "--bundle", b, "aff\(UInt32.random(in: 0...UInt32.max))"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, online + "\n")
        let id = try startSleeper()
        let e = pinned(["exec", id, "sh", "-c", "grep Cpus_allowed_list /proc/self/status | cut -f2"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(e.stdout, online + "\n")
    }

    // MARK: - 10: time namespace in a new user namespace

    func testTimeNamespaceOffsetsInUserNamespace() throws {
        let r = try run(["cat", "/proc/self/timens_offsets"]) { spec in
            ContainerTestCase.userNamespace()(&spec)
            var linux = spec[dict: "linux"]
            linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []) + [["type": "time"]]
            linux["timeOffsets"] = [
                "monotonic": ["secs": 3600, "nanosecs": 0], "boottime": ["secs": 86400, "nanosecs": 0],
            ]
            spec["linux"] = linux
            // sysfs needs a network namespace owned by the user namespace; not needed here.
            spec["mounts"] = (spec["mounts"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "sysfs" }
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let fields = r.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        XCTAssertEqual(fields, ["monotonic 3600 0", "boottime 86400 0"])
    }

    // MARK: - 11: capabilities that cannot be granted

    /// An unknown capability and an ambient one that is not inheritable are warnings (runtime-spec
    /// 1.2), not failures; the rest is applied. `exec --cap` with an unknown name likewise.
    func testUnknownAndUngrantableCapabilitiesWarn() throws {
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        let edit = { (spec: inout [String: Any]) in
            self.setProcess(
                "capabilities",
                [
                    "bounding": caps + ["CAP_FUTURE_THING"], "effective": caps,
                    "permitted": caps, "ambient": ["CAP_KILL"],
                ])(&spec)
        }
        let r = try run(["sh", "-c", "grep -E 'Cap(Bnd|Amb)' /proc/self/status | cut -f2"], edit)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "0000000020000420\n0000000000000000\n")
        XCTAssertTrue(r.stderr.contains("CAP_FUTURE_THING"), r.stderr)
        XCTAssertTrue(r.stderr.contains("ambient capability CAP_KILL"), r.stderr)
        let id = try startSleeper(edit)
        let e = sl(["exec", "--cap", "CAP_BOGUS", id, "true"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stderr.contains("CAP_BOGUS"), e.stderr)
    }

    // MARK: - 12: environment

    /// An empty HOME becomes the user's home from the container's /etc/passwd; a name given twice
    /// keeps its last value, once (init and exec).
    func testEmptyHomeAndDuplicateEnvironment() throws {
        let script = "echo \"$HOME\"; env | grep -c '^DUP='; echo $DUP"
        let r = try run(["sh", "-c", script], setProcess("env", ["PATH=/bin:/usr/bin", "HOME=", "DUP=1", "DUP=2"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "/root\n1\n2\n")
        let id = try startSleeper(setProcess("env", ["PATH=/bin:/usr/bin", "DUP=1"]))
        let e = sl(["exec", "--env", "HOME=", "--env", "DUP=3", id, "sh", "-c", script])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(e.stdout, "/root\n1\n3\n")
    }

    // MARK: - 13: exec'd processes

    /// linux.personality applies to exec'd processes too.
    func testExecGetsPersonality() throws {
        let id = try startSleeper { spec in
            var linux = spec[dict: "linux"]
            linux["personality"] = ["domain": "LINUX32"]
            spec["linux"] = linux
        }
        let e = sl(["exec", id, "uname", "-m"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(e.stdout, "i686\n")
    }

    /// `exec --cap X` with an inheritable set in the config raises X in the ambient set (runc 1.3).
    func testExecCapRaisesAmbientWithInheritableSet() throws {
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        let id = try startSleeper(
            setProcess(
                "capabilities",
                [
                    "bounding": caps, "effective": caps, "permitted": caps,
                    "inheritable": ["CAP_NET_BIND_SERVICE"],
                ]))
        let e = sl(["exec", "--cap", "CAP_NET_BIND_SERVICE", id, "sh", "-c", "grep CapAmb /proc/self/status | cut -f2"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(e.stdout, "0000000000000400\n")
    }

    /// The executable check judges as execve does: a user with CAP_DAC_OVERRIDE runs a 0700 root
    /// file (access() would refuse it).
    func testExecLookupHonoursDacOverride() throws {
        let rootfs = try privateRootfs()
        try FileManager.default.createDirectory(atPath: rootfs + "/priv", withIntermediateDirectories: false)
        XCTAssertEqual(runProgram("/bin/cp", [rootfs + "/bin/busybox", rootfs + "/priv/echo"]).status, 0)
        chmod(rootfs + "/priv/echo", 0o700)
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_DAC_OVERRIDE"]
        let id = try startSleeper { spec in
            spec[path: "root.path"] = rootfs
            self.setProcess("capabilities", ["bounding": caps, "effective": caps, "permitted": caps])(&spec)
        }
        let e = sl(["exec", "--user", "1000:1000", id, "/priv/echo", "ran"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(e.stdout, "ran\n")
    }

    /// A user namespace and a network namespace it does not own, both joined by path: the network
    /// namespace is joined while the runtime is still privileged over it (runc's order).
    func testJoinUserNamespaceAndForeignNetworkNamespace() throws {
        let holders = try [["--user", "--map-root-user"], ["--net"]].map { flags -> Foundation.Process in
            let p = Foundation.Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            p.arguments = flags + ["sleep", "60"]
            try p.run()
            return p
        }
        addTeardownBlock {
            for p in holders {
                p.terminate()
                p.waitUntilExit()
            }
        }
        let userPid = holders[0].processIdentifier
        let netPid = holders[1].processIdentifier
        XCTAssertTrue(
            waitUntil(timeout: 10) {
                let own = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user")
                let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(userPid)/ns/user")
                let ownNet = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
                let theirNet = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(netPid)/ns/net")
                return theirs != nil && theirs != own && theirNet != nil && theirNet != ownNet
            }, "namespace holders did not start")
        let netInode = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(netPid)/ns/net")
        let r = try run(["readlink", "/proc/self/ns/net"]) { spec in
            var linux = spec[dict: "linux"]
            var ns = (linux["namespaces"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "network" }
            ns.append(["type": "user", "path": "/proc/\(userPid)/ns/user"])
            ns.append(["type": "network", "path": "/proc/\(netPid)/ns/net"])
            linux["namespaces"] = ns
            spec["linux"] = linux
            // Only root is mapped in that user namespace: no sysfs (not its network namespace), no gid=5.
            spec["mounts"] = (spec["mounts"] as? [[String: Any]] ?? []).compactMap { m -> [String: Any]? in
                if m["type"] as? String == "sysfs" { return nil }
                var m = m
                m["options"] = (m["options"] as? [String] ?? []).filter { $0 != "gid=5" }
                return m
            }
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, netInode + "\n")
    }

    // MARK: - 14: a cgroup that already holds processes

    /// runc 1.2+ refuses to start a container in a cgroup with processes in it, and leaves them alone.
    func testNonEmptyCgroupIsRefused() throws {
        let name = "swiftlet-busy-\(UUID().uuidString.prefix(8))"
        let v1 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/devices/cgroup.procs")
        let dirs = v1 ? ["devices", "pids"].map { "/sys/fs/cgroup/\($0)/\(name)" } : ["/sys/fs/cgroup/\(name)"]
        let sleeper = Foundation.Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["60"]
        try sleeper.run()
        addTeardownBlock {
            sleeper.terminate()
            sleeper.waitUntilExit()
            for d in dirs { _ = waitUntil(timeout: 5) { rmdir(d) == 0 || errno == ENOENT } }
        }
        for d in dirs {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            try "\(sleeper.processIdentifier)\n".write(toFile: d + "/cgroup.procs", atomically: false, encoding: .utf8)
        }
        let id = "busy\(UInt32.random(in: 0...UInt32.max))"
        let r = try run(["true"], id: id) { spec in
            var linux = spec[dict: "linux"]
            linux["cgroupsPath"] = "/" + name
            spec["linux"] = linux
        }
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("container's cgroup is not empty: 1 process(es) found"), r.stderr)
        XCTAssertTrue(sleeper.isRunning, "the cgroup's process was killed")
        for d in dirs { XCTAssertTrue(FileManager.default.fileExists(atPath: d), "\(d) was removed") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.path + "/" + id), "state dir left")
    }
}
