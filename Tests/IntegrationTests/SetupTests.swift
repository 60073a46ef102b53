import Foundation
import TestSupport
import XCTest

/// What the container sees: user, capabilities, rlimits, namespaces, mounts, /dev, sysctls.
final class SetupTests: ContainerTestCase {
    func testStdioOnTheHostNullDeviceMovesToTheContainersNullDevice() throws {
        // runProgram gives the runtime the host's /dev/null as stdin; init must hold the container's
        // own /dev/null instead (as runc does), or CRIU cannot checkpoint it.
        let r = try run([
            "sh", "-c", "[ \"$(stat -L -c %d:%i /proc/self/fd/0)\" = \"$(stat -c %d:%i /dev/null)\" ] && echo same",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "same\n")
    }

    func testUserGroupsUmaskCwdEnv() throws {
        let r = try run(["sh", "-c", "id; umask; pwd; echo $FOO; echo $HOME"]) { spec in
            var p = spec[dict: "process"]
            p["user"] = ["uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027]
            p["cwd"] = "/tmp"
            p["env"] = ["PATH=/bin", "FOO=bar"]
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        guard lines.count == 5 else { return XCTFail("unexpected output: \(r.stdout)") }
        XCTAssertTrue(lines[0].hasPrefix("uid=1000(tester) gid=1000"), lines[0])
        XCTAssertTrue(lines[0].contains("groups=10") && lines[0].contains("20"), lines[0])
        XCTAssertEqual(lines[1], "0027")
        XCTAssertEqual(lines[2], "/tmp")
        XCTAssertEqual(lines[3], "bar")
        XCTAssertEqual(lines[4], "/home/tester")
    }

    func testMissingCwdIsCreated() throws {
        let dir = "/tmp/cwd-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: Runtime.rootfs + dir) }
        let r = try run(["pwd"]) { spec in
            var p = spec[dict: "process"]
            p["cwd"] = dir + "/sub"
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, dir + "/sub\n")
    }

    func testCapabilitySetsAndNoNewPrivs() throws {
        // CAP_KILL(5), CAP_NET_BIND_SERVICE(10), CAP_AUDIT_WRITE(29) => 0x20000420.
        let r = try run(["sh", "-c", "grep -E '^(CapEff|CapBnd|CapPrm|CapAmb|NoNewPrivs)' /proc/self/status"]) { spec in
            var p = spec[dict: "process"]
            var caps = p[dict: "capabilities"]
            caps["ambient"] = ["CAP_KILL"]
            caps["inheritable"] = ["CAP_KILL"]
            p["capabilities"] = caps
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("CapEff:\t0000000020000420"), r.stdout)
        XCTAssertTrue(r.stdout.contains("CapBnd:\t0000000020000420"), r.stdout)
        XCTAssertTrue(r.stdout.contains("CapAmb:\t0000000000000020"), r.stdout)
        XCTAssertTrue(r.stdout.contains("NoNewPrivs:\t1"), r.stdout)
    }

    func testAmbientCapNotInheritableIsLeftOut() throws {
        // runc's default spec lists ambient caps without inheritable ones: the kernel refuses to raise
        // them; the container still starts (runc behaviour), with an empty ambient set.
        let r = try run(["sh", "-c", "grep CapAmb /proc/self/status"]) { spec in
            var p = spec[dict: "process"]
            var caps = p[dict: "capabilities"]
            caps["ambient"] = ["CAP_KILL", "CAP_AUDIT_WRITE"]
            caps.removeValue(forKey: "inheritable")
            p["capabilities"] = caps
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "CapAmb:\t0000000000000000\n")
    }

    func testRlimits() throws {
        let r = try run(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"]) { spec in
            var p = spec[dict: "process"]
            p["rlimits"] = [
                ["type": "RLIMIT_NOFILE", "soft": 512, "hard": 768], ["type": "RLIMIT_CORE", "soft": 0, "hard": 0],
            ]
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "512\n768\n0\n")
    }

    func testRlimitAboveHardLimitFailsClearly() throws {
        // Root here lacks CAP_SYS_RESOURCE (environment.md quirk 2): raising nofile past 20000 is EPERM.
        var hard = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &hard)
        try XCTSkipIf(hard.rlim_max == rlim_t.max, "unlimited nofile: cannot provoke EPERM")
        let want = Int(hard.rlim_max) * 4
        let id = "rl"
        let r = try run(["true"], id: id) { spec in
            var p = spec[dict: "process"]
            p["rlimits"] = [["type": "RLIMIT_NOFILE", "soft": want, "hard": want]]
            spec["process"] = p
        }
        if r.status == 0 { return }  // a host with CAP_SYS_RESOURCE may allow it
        XCTAssertTrue(r.stderr.contains("setrlimit RLIMIT_NOFILE"), r.stderr)
        assertNothingLeft(id)
    }

    func testNamespacesArePrivate() throws {
        let r = try run(["sh", "-c", "echo $$; for n in net uts ipc mnt; do readlink /proc/self/ns/$n; done"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        guard lines.count == 5 else { return XCTFail("unexpected output: \(r.stdout)") }
        XCTAssertEqual(lines[0], "1", "init is pid 1 of a new PID namespace")
        for (line, ns) in zip(lines.dropFirst(), ["net", "uts", "ipc", "mnt"]) {
            XCTAssertNotEqual(line, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)"))
        }
    }

    func testJoinNamespaceByPath() throws {
        let a = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", a, "ns-a"]).status, 0)
        let st = sl(["state", "ns-a"])
        let pid = (try JSONSerialization.jsonObject(with: Data(st.stdout.utf8)) as? [String: Any])?["pid"] as? Int ?? 0
        let netA = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")
        let utsA = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/uts")
        let r = try run(["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts"]) { spec in
            var linux = spec[dict: "linux"]
            linux["namespaces"] = [
                ["type": "pid"], ["type": "mount"], ["type": "ipc"],
                ["type": "network", "path": "/proc/\(pid)/ns/net"],
                ["type": "uts", "path": "/proc/\(pid)/ns/uts"],
            ]
            spec["linux"] = linux
            spec.removeValue(forKey: "hostname")
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(netA)\n\(utsA)\n")
        XCTAssertEqual(sl(["delete", "-f", "ns-a"]).status, 0)
    }

    /// A joined PID namespace takes the other path of create (a middle process joins it and forks
    /// init, Plan.swift cloneFlags): the container sees the other container's processes, and its
    /// own init is not pid 1 there.
    func testJoinPidNamespaceByPath() throws {
        let a = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", a, "pidns-a"]).status, 0)
        defer { _ = sl(["delete", "-f", "pidns-a"]) }
        let st = sl(["state", "pidns-a"])
        let pid = (try JSONSerialization.jsonObject(with: Data(st.stdout.utf8)) as? [String: Any])?["pid"] as? Int ?? 0
        let pidnsA = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/pid")
        let r = try run(["sh", "-c", "readlink /proc/self/ns/pid; echo $$; cat /proc/1/cmdline | tr '\\0' ' '"]) {
            spec in
            var linux = spec[dict: "linux"]
            linux["namespaces"] = [
                ["type": "pid", "path": "/proc/\(pid)/ns/pid"], ["type": "mount"], ["type": "ipc"],
                ["type": "network"], ["type": "uts"],
            ]
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        guard lines.count == 3 else { return XCTFail("unexpected output: \(r.stdout)") }
        XCTAssertEqual(lines[0], pidnsA)
        XCTAssertNotEqual(lines[1], "1", "init joined an existing PID namespace")
        XCTAssertEqual(lines[2], "sleep 100 ", "pid 1 there is the first container's init")
    }

    func testUserNamespaceWithMappings() throws {
        let r = try run(
            [
                "sh", "-c",
                "cat /proc/self/uid_map /proc/self/gid_map; id -u; ls -ln /dev/null; cat /proc/self/status | grep "
                    + "CapEff",
            ],
            ContainerTestCase.userNamespace())
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        guard lines.count >= 4 else { return XCTFail("unexpected output: \(r.stdout)") }
        XCTAssertEqual(lines[0], "0 100000 65536")
        XCTAssertEqual(lines[1], "0 100000 65536")
        XCTAssertEqual(lines[2], "0")
        XCTAssertTrue(lines[3].hasPrefix("crw-rw-rw-"), "bind-mounted host /dev/null: \(lines[3])")
    }

    /// A pod's containers share its user namespace: the second joins the first's by path.
    func testJoinUserNamespaceByPath() throws {
        let withUserNS = ContainerTestCase.userNamespace(hostID: 300000)
        let a = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            withUserNS(&spec)
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", a, "pod-a"]).status, 0)
        let st = try JSONSerialization.jsonObject(with: Data(sl(["state", "pod-a"]).stdout.utf8)) as? [String: Any]
        let pid = st?["pid"] as? Int ?? 0
        let userA = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/user")
        let r = try run(["sh", "-c", "readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u"]) { spec in
            var linux = spec[dict: "linux"]
            var ns = linux["namespaces"] as? [[String: Any]] ?? []
            ns.append(["type": "user", "path": "/proc/\(pid)/ns/user"])
            linux["namespaces"] = ns
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map {
            $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        }
        XCTAssertEqual(lines, [userA, "0 300000 65536", "0"])
        XCTAssertEqual(sl(["delete", "-f", "pod-a"]).status, 0)
    }

    func testMountsBindTmpfsAndReadonlyRoot() throws {
        let host = FileManager.default.temporaryDirectory.appendingPathComponent("vol-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: host) }
        try "from host\n".write(toFile: host + "/file", atomically: true, encoding: .utf8)
        let r = try run([
            "sh", "-c",
            "cat /vol/file; echo x > /vol/new && echo wrote; touch /rootfile 2>/dev/null || echo root-ro; touch "
                + "/scratch/t && echo tmpfs-rw; grep -E ' /(vol|scratch) ' /proc/mounts | cut -d' ' -f2-4; touch "
                + "/ro/x 2>/dev/null || echo vol-ro",
        ]) { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/vol", "type": "bind", "source": host, "options": ["rbind", "rw"]])
            mounts.append(["destination": "/ro", "type": "bind", "source": host, "options": ["bind", "ro"]])
            mounts.append([
                "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "size=1m", "mode=1777"],
            ])
            spec["mounts"] = mounts
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("from host\nwrote\nroot-ro\ntmpfs-rw\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("/scratch tmpfs rw,nosuid"), r.stdout)
        XCTAssertTrue(r.stdout.contains("vol-ro"), r.stdout)
        XCTAssertEqual(try String(contentsOfFile: host + "/new", encoding: .utf8), "x\n")
        XCTAssertEqual(mountsContaining(host), [], "no mount leaks to the host")
    }

    func testDevAndMaskedReadonlyPaths() throws {
        let r = try run([
            "sh", "-c",
            """
            ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | cut -c1 | tr -d '\\n'; echo
            readlink /dev/fd; readlink /dev/ptmx; readlink /dev/stdin
            wc -c < /etc/group; ls /home | wc -l
            echo x > /proc/sys/kernel/domainname 2>/dev/null || echo proc-sys-ro
            """,
        ]) { spec in
            var linux = spec[dict: "linux"]
            linux["maskedPaths"] = ["/etc/group", "/home", "/does/not/exist"]
            linux["readonlyPaths"] = ["/proc/sys"]
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) },
            ["cccccc", "/proc/self/fd", "pts/ptmx", "/proc/self/fd/0", "0", "0", "proc-sys-ro"])
    }

    func testSpecDevicesAreCreated() throws {
        let r = try run(["sh", "-c", "stat -c '%A %u %g %t %T' /dev/mynull; echo hi > /dev/mynull && echo ok"]) {
            spec in
            var linux = spec[dict: "linux"]
            linux["devices"] = [
                ["type": "c", "path": "/dev/mynull", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 1000, "gid": 5]
            ]
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "crw-rw-rw- 1000 5 1 3\nok\n")
    }

    func testHostnameDomainnameSysctl() throws {
        let r = try run(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/net/ipv4/ip_forward"]) {
            spec in
            spec["hostname"] = "box1"
            spec["domainname"] = "example.org"
            var linux = spec[dict: "linux"]
            linux["sysctl"] = ["net.ipv4.ip_forward": "1"]
            linux["readonlyPaths"] = []
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "box1\nexample.org\n1\n")
    }

    func testNoPivot() throws {
        let b = try bundle(ContainerTestCase.args(["sh", "-c", "cat /proc/self/mountinfo | wc -l; ls /"]))
        let r = sl(["run", "--no-pivot", "--bundle", b, "np"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("bin"), r.stdout)
    }

    func testCgroupMountShowsHierarchies() throws {
        let r = try run(["sh", "-c", "ls /sys/fs/cgroup; touch /sys/fs/cgroup/x 2>/dev/null || echo ro"]) { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append([
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            ])
            spec["mounts"] = mounts
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let hostEntries = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        if hostEntries.contains("memory") { XCTAssertTrue(r.stdout.contains("memory"), r.stdout) }
        XCTAssertTrue(r.stdout.hasSuffix("ro\n"), r.stdout)
    }
}

/// Options of create/run that change what the process inherits.
final class CreateOptionTests: ContainerTestCase {
    /// Runs `swiftlet run` through the host shell, so extra fds and env vars can be prepared.
    func shellRun(_ script: String) -> RunResult {
        runProgram("/bin/sh", ["-c", script], timeout: 30)
    }

    func testPreserveFdsAndListenFds() throws {
        let b = try bundle(
            ContainerTestCase.args([
                "sh", "-c", "echo $LISTEN_FDS:$LISTEN_PID; cat <&3; cat <&4; ls /proc/self/fd | wc -l",
            ]))
        let bin = Runtime.binary
        let r = root.path
        try "three\n".write(toFile: r + "/f3", atomically: true, encoding: .utf8)
        try "four\n".write(toFile: r + "/f4", atomically: true, encoding: .utf8)
        // fd 3 via LISTEN_FDS=1, fd 4 via --preserve-fds 1: both reach the container; fd 5 does not.
        let res = shellRun(
            "exec 3<\(r)/f3 4<\(r)/f4 5<\(r)/f4; LISTEN_FDS=1 \(bin) --root \(r) run --preserve-fds 1 --bundle \(b) pf")
        XCTAssertEqual(res.status, 0, res.stderr)
        // fds 0,1,2,3,4 and the one ls opens for /proc/self/fd.
        XCTAssertEqual(res.stdout, "1:1\nthree\nfour\n6\n")
    }

    func testSessionKeyring() throws {
        // /proc/keys is a default masked path: unmask it to look.
        let unmask: (inout [String: Any]) -> Void = { spec in
            var linux = spec[dict: "linux"]
            linux["maskedPaths"] = []
            spec["linux"] = linux
        }
        let withRing = try run(["sh", "-c", "grep -c '_ses.kr1: empty' /proc/keys || true"], id: "kr1", unmask)
        XCTAssertEqual(withRing.status, 0, withRing.stderr)
        XCTAssertEqual(withRing.stdout, "1\n", "a new session keyring named _ses.<id>")
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "grep -c _ses.kr2 /proc/keys || true"])(&spec)
            unmask(&spec)
        }
        let without = sl(["run", "--no-new-keyring", "--bundle", b, "kr2"])
        XCTAssertEqual(without.stdout, "0\n", without.stderr)
    }

    func testOomScoreAdjAndTimeNamespace() throws {
        let r = try run(["sh", "-c", "cat /proc/self/oom_score_adj; cut -d. -f1 /proc/uptime"]) { spec in
            var p = spec[dict: "process"]
            p["oomScoreAdj"] = 500
            spec["process"] = p
            var linux = spec[dict: "linux"]
            var ns = linux["namespaces"] as? [[String: Any]] ?? []
            ns.append(["type": "time"])
            linux["namespaces"] = ns
            linux["timeOffsets"] = ["boottime": ["secs": 10 * 365 * 86400, "nanosecs": 0]]
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "500")
        XCTAssertGreaterThan(Int(lines.last ?? "") ?? 0, 10 * 365 * 86400, "boot time shifted by the offset")
    }

    func testCgroupNamespace() throws {
        let r = try run(["sh", "-c", "cat /proc/self/cgroup"]) { spec in
            var linux = spec[dict: "linux"]
            var ns = linux["namespaces"] as? [[String: Any]] ?? []
            ns.append(["type": "cgroup"])
            linux["namespaces"] = ns
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        for line in r.stdout.split(separator: "\n") {
            XCTAssertTrue(line.hasSuffix(":/"), "cgroup paths are rooted at the namespace: \(line)")
        }
    }

    func testRunForwardsSignals() throws {
        let b = try bundle(
            ContainerTestCase.args(["sh", "-c", "trap 'echo got-term; exit 5' TERM; while :; do sleep 0.05; done"]))
        let res = shellRun(
            "\(Runtime.binary) --root \(root.path) run --bundle \(b) sig & p=$!; sleep 0.5; kill -TERM $p; wait $p; "
                + "echo status=$?"
        )
        XCTAssertTrue(res.stdout.contains("got-term"), res.stdout + res.stderr)
        XCTAssertTrue(res.stdout.contains("status=5"), res.stdout + res.stderr)
    }
}

final class PropagationTests: ContainerTestCase {
    /// rootfsPropagation shared/unbindable/private: the container's "/" gets it (pivot_root still works).
    func testRootfsPropagationModes() throws {
        for (mode, want) in [
            ("shared", "shared:"), ("rshared", "shared:"), ("unbindable", "unbindable"), ("private", ""),
        ] {
            let r = try run(["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"]) { spec in
                var linux = spec[dict: "linux"]
                linux["rootfsPropagation"] = mode
                spec["linux"] = linux
            }
            XCTAssertEqual(r.status, 0, "\(mode): \(r.stderr)")
            if want.isEmpty {
                XCTAssertFalse(
                    r.stdout.contains("shared:") || r.stdout.contains("master:") || r.stdout.contains("unbindable"),
                    "\(mode): \(r.stdout)")
            } else {
                XCTAssertTrue(r.stdout.contains(want), "\(mode): \(r.stdout)")
            }
        }
    }
}

final class ProcessExtrasTests: ContainerTestCase {
    func testPersonalityLinux32() throws {
        let r = try run(["uname", "-m"]) { spec in
            var linux = spec[dict: "linux"]
            linux["personality"] = ["domain": "LINUX32"]
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "i686\n")
    }

    func testIOPriority() throws {
        // /proc has no ioprio file; ionice is not in busybox: read it back with the ioprio_get syscall
        // is not possible from sh either, so check via the host: a detached container's init.
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            var p = spec[dict: "process"]
            p["ioPriority"] = ["class": "IOPRIO_CLASS_IDLE", "priority": 0]
            spec["process"] = p
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "io"]).status, 0)
        let st = try JSONSerialization.jsonObject(with: Data(sl(["state", "io"]).stdout.utf8)) as? [String: Any]
        let pid = st?["pid"] as? Int ?? 0
        let ionice = runProgram("/usr/bin/ionice", ["-p", String(pid)])
        try XCTSkipIf(ionice.status != 0 && ionice.stderr.contains("No such file"), "ionice (util-linux) missing")
        XCTAssertEqual(ionice.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "idle")
    }

    func testUnsupportedFieldsAreRefused() throws {
        for (field, edit) in [
            (
                "linux.intelRdt",
                { (spec: inout [String: Any]) in
                    var l = spec[dict: "linux"]
                    l["intelRdt"] = ["closID": "x"]
                    spec["linux"] = l
                }
            ),
            (
                "linux.personality.domain",
                { (spec: inout [String: Any]) in
                    var l = spec[dict: "linux"]
                    l["personality"] = ["domain": "BSD"]
                    spec["linux"] = l
                }
            ),
        ] {
            let b = try bundle(edit)
            let r = sl(["create", "--bundle", b, "unsup"])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains(field), "\(field): \(r.stderr)")
            assertNothingLeft("unsup", bundle: b)
        }
    }
}
