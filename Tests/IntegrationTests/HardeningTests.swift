import CLinux
import Foundation
import TestSupport
import XCTest

/// Attack tests: each would succeed against a naive runtime.
final class HardeningTests: ContainerTestCase {
    /// CVE-2019-5736: while the container is `created`, its init is still the host's swiftlet binary.
    /// A process in the container must not be able to read or open it through /proc/1/exe.
    func testRuntimeBinaryUnreachableThroughProcExe() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["create", "--bundle", b, "cve5736"]).status, 0)
        let r = sl([
            "exec", "cve5736", "sh", "-c",
            "head -c 4 /proc/1/exe > /dev/null 2>&1 && echo READ-HOST-BINARY; readlink /proc/1/exe || echo no-exe-link",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.contains("READ-HOST-BINARY"), r.stdout)
        XCTAssertEqual(r.stdout, "no-exe-link\n")
        XCTAssertEqual(sl(["delete", "-f", "cve5736"]).status, 0)
    }

    /// The user process itself is dumpable again after execve (so ps/ptrace/coredumps behave).
    func testUserProcessIsDumpable() throws {
        let r = try run(["sh", "-c", "readlink /proc/1/exe"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "/bin/busybox\n")
    }
}

extension HardeningTests {
    /// CVE-2024-21626: cwd set to /proc/self/fd/N, where N is a descriptor the runtime holds while
    /// setting up (here: the detached tree of an id-mapped mount, a directory outside the rootfs).
    /// Every attempt either fails cleanly (nothing left behind) or leaves the process inside the container.
    func testCwdThroughLeakedFdIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("leak-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for fd in 3...9 {
            let id = "cwd\(fd)"
            let r = try run(["sh", "-c", "pwd"], id: id) { spec in
                var p = spec[dict: "process"]
                p["cwd"] = "/proc/self/fd/\(fd)"
                spec["process"] = p
                ContainerTestCase.userNamespace()(&spec)
                var mounts = spec["mounts"] as? [[String: Any]] ?? []
                mounts.append(["destination": "/home", "type": "bind", "source": dir, "options": ["bind", "idmap"]])
                spec["mounts"] = mounts
            }
            if r.status == 0 {
                XCTAssertTrue(r.stdout.hasPrefix("/") && !r.stdout.contains("unreachable"), "fd \(fd): \(r.stdout)")
            } else {
                XCTAssertTrue(r.stderr.contains("unable to start container process"), "fd \(fd): \(r.stderr)")
                assertNothingLeft(id)
            }
        }
    }
}

extension HardeningTests {
    /// A /dev directory of the attacker's making, bind-mounted as the container's /dev.
    func plantedDev(null nullIsSymlink: Bool, consoleSymlink: Bool) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dev-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        if nullIsSymlink {
            XCTAssertEqual(symlink("/proc/version", dir + "/null"), 0)
        } else {
            XCTAssertEqual(mknod(dir + "/null", S_IFCHR | 0o666, sl_makedev(1, 3)), 0)
        }
        if consoleSymlink { XCTAssertEqual(symlink("/etc/hostname-planted", dir + "/console"), 0) }
        XCTAssertEqual(symlink("pts/ptmx", dir + "/ptmx"), 0)
        return dir
    }

    func devFrom(_ dir: String) -> (inout [String: Any]) -> Void {
        { spec in
            var mounts = (spec["mounts"] as? [[String: Any]] ?? []).filter { ($0["destination"] as? String) != "/dev" }
            mounts.insert(["destination": "/dev", "type": "bind", "source": dir, "options": ["rbind"]], at: 0)
            spec["mounts"] = mounts
            var linux = spec[dict: "linux"]
            linux["maskedPaths"] = ["/proc/timer_list"]
            spec["linux"] = linux
        }
    }

    /// CVE-2025-31133 class: /dev/null replaced by a symlink; masking must not bind its target.
    func testMaskingRefusesFakeDevNull() throws {
        let dev = try plantedDev(null: true, consoleSymlink: false)
        let b = try bundle(devFrom(dev))
        let r = sl(["create", "--bundle", b, "fakenull"])
        XCTAssertEqual(r.status, 1, "must refuse: \(r.stdout)")
        XCTAssertTrue(r.stderr.contains("not the null device"), r.stderr)
        assertNothingLeft("fakenull", bundle: b)
    }

    /// CVE-2025-52565 class: /dev/console planted as a symlink; the console must not be mounted through it.
    func testConsoleSymlinkRefused() throws {
        let dev = try plantedDev(null: false, consoleSymlink: true)
        let r = try run(["true"], id: "fakecons") { spec in
            self.devFrom(dev)(&spec)
            var p = spec[dict: "process"]
            p["terminal"] = true
            spec["process"] = p
        }
        XCTAssertEqual(r.status, 1, "must refuse: \(r.stdout)")
        XCTAssertTrue(r.stderr.contains("/dev/console in the container is a symlink"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: Runtime.rootfs + "/etc/hostname-planted"))
        assertNothingLeft("fakecons")
    }

    /// CVE-2019-16884 class: a rootfs whose /proc is a symlink; procfs must not be mounted through it.
    func testProcThroughSymlinkRefused() throws {
        let dir = try privateRootfs()
        try FileManager.default.removeItem(atPath: dir + "/proc")
        try FileManager.default.createDirectory(atPath: dir + "/tmp/fakeproc", withIntermediateDirectories: true)
        XCTAssertEqual(symlink("tmp/fakeproc", dir + "/proc"), 0)
        let b = try bundle { spec in spec["root"] = ["path": dir, "readonly": true] }
        let r = sl(["create", "--bundle", b, "procsym"])
        XCTAssertEqual(r.status, 1, "must refuse: \(r.stdout)")
        XCTAssertTrue(r.stderr.contains("goes through a symlink"), r.stderr)
        assertNothingLeft("procsym", bundle: b)
    }
}

extension HardeningTests {
    /// CVE-2021-30465 class: the rootfs plants `evil -> /tmp/<host dir>` (absolute); a mount at
    /// /evil/x must land inside the rootfs (where /evil/x leads in the container), never on the host
    /// path. A runtime that mounts on the joined host path follows the link out of the rootfs.
    /// (The race itself — swapping the link in after resolution — is closed by mounting on an fd
    /// opened with openat2(RESOLVE_IN_ROOT); this test covers the resolution.)
    func testMountDestinationSymlinkStaysInRootfs() throws {
        let outside = "/tmp/cve-30465-\(UUID().uuidString)"
        let dir = try privateRootfs()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        XCTAssertEqual(symlink(outside, dir + "/evil"), 0)
        let b = try bundle { spec in
            spec["root"] = ["path": dir, "readonly": false]
            ContainerTestCase.args([
                "sh", "-c", "echo inside > /evil/x/file && awk '$5 ~ /cve-30465/ {print $5}' /proc/self/mountinfo",
            ])(&spec)
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/evil/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]])
            spec["mounts"] = mounts
        }
        let r = sl(["run", "--bundle", b, "cve30465"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(outside)/x\n", "the tmpfs is mounted where /evil/x leads inside the container")
        XCTAssertFalse(FileManager.default.fileExists(atPath: outside + "/x"), "nothing created on the host path")
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: dir + outside + "/x"), "mount point made inside the rootfs")
    }
}

extension HardeningTests {
    /// Masked paths stay masked (/proc/timer_list; this kernel has no /proc/kcore): a masked file
    /// reads empty, a masked directory is an empty read-only tmpfs, and the container can neither
    /// unmount, remount nor write them, nor mount a fresh procfs to get around them. The control run
    /// (CAP_SYS_ADMIN) shows the probe does see an escape.
    func testMaskedPathsCannotBeEscaped() throws {
        let probe = """
            echo timer_list=$(wc -c < /proc/timer_list)
            umount /proc/timer_list 2>/dev/null && echo UNMOUNTED-FILE
            mount -o remount,rw /sys/kernel 2>/dev/null && echo REMOUNTED
            touch /sys/kernel/x 2>/dev/null && echo WROTE
            mkdir -p /dev/shm/p && mount -t proc proc /dev/shm/p 2>/dev/null && echo NEW-PROCFS
            umount -l /sys/kernel 2>/dev/null && echo UNMOUNTED-DIR
            echo entries=$(ls -A /sys/kernel | wc -l)
            grep ' /sys/kernel ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1
            """
        for control in [false, true] {
            let r = try run(["sh", "-c", probe]) { spec in
                var linux = spec[dict: "linux"]
                linux["maskedPaths"] = ["/proc/timer_list", "/sys/kernel"]
                spec["linux"] = linux
                if control {
                    let caps = ["CAP_SYS_ADMIN", "CAP_KILL"]
                    spec[path: "process.capabilities"] = ["bounding": caps, "effective": caps, "permitted": caps]
                }
            }
            XCTAssertEqual(r.status, 0, r.stderr)
            if control {
                XCTAssertTrue(
                    r.stdout.contains("UNMOUNTED-FILE") && r.stdout.contains("NEW-PROCFS"), "control: \(r.stdout)")
            } else {
                XCTAssertEqual(r.stdout, "timer_list=0\nentries=0\ntmpfs ro\n")
            }
        }
    }

    /// A static probe that prints its effective uid, installed setuid root in a private rootfs.
    func rootfsWithSetuidProbe() throws -> String {
        let dir = try privateRootfs()
        let src = dir + "/suid-probe.c"
        let source =
            "#include <stdio.h>\n#include <unistd.h>\n"
            + "int main(void) { printf(\"euid=%d\\n\", (int)geteuid()); return 0; }\n"
        try source.write(toFile: src, atomically: true, encoding: .utf8)
        let cc = runProgram("/usr/bin/cc", ["-static", "-O1", "-o", dir + "/bin/suid-probe", src])
        XCTAssertEqual(cc.status, 0, "building the setuid probe: \(cc)")
        XCTAssertEqual(chmod(dir + "/bin/suid-probe", 0o4755), 0)
        return dir
    }

    /// no_new_privs: NoNewPrivs is 1 in init and in exec'd processes, and a setuid-root binary run
    /// by uid 1000 stays uid 1000. The control (noNewPrivileges false) shows the binary does gain
    /// root without it.
    func testNoNewPrivsInInitAndExecBlocksSetuid() throws {
        let rootfs = try rootfsWithSetuidProbe()
        for nnp in [true, false] {
            let id = nnp ? "nnp" : "nnp-control"
            let b = try bundle { spec in
                spec["root"] = ["path": rootfs, "readonly": true]
                ContainerTestCase.args(["sleep", "100"])(&spec)
                spec[path: "process.user"] = ["uid": 1000, "gid": 1000]
                spec[path: "process.noNewPrivileges"] = nnp
            }
            XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
            let flag = nnp ? "NoNewPrivs:\t1" : "NoNewPrivs:\t0"
            let initStatus = sl(["exec", id, "grep", "NoNewPrivs", "/proc/1/status"])
            XCTAssertEqual(initStatus.stdout, flag + "\n", "init: \(initStatus)")
            let execStatus = sl(["exec", id, "grep", "NoNewPrivs", "/proc/self/status"])
            XCTAssertEqual(execStatus.stdout, flag + "\n", "exec: \(execStatus)")
            let setuid = sl(["exec", id, "/bin/suid-probe"])
            XCTAssertEqual(setuid.stdout, nnp ? "euid=1000\n" : "euid=0\n", "setuid binary: \(setuid)")
            XCTAssertEqual(sl(["delete", "--force", id]).status, 0)
        }
    }
}

extension HardeningTests {
    /// CVE-2024-21626 through a descriptor the caller passes on (--preserve-fds): fd 3 is a host
    /// directory, cwd is /proc/self/fd/3. chdir through the magic link lands outside the container's
    /// root; only the getcwd check refuses it. Without it the process runs there and reads host files.
    func testCwdThroughPreservedHostDirFdIsRefused() throws {
        let hostDir = FileManager.default.temporaryDirectory.appendingPathComponent("hostdir-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: hostDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: hostDir) }
        try "HOST-SECRET\n".write(toFile: hostDir + "/secret", atomically: true, encoding: .utf8)
        func withHostDir(_ args: [String]) -> RunResult {
            runProgram(
                "/bin/sh", ["-c", "exec 3<\(hostDir); exec \"$0\" \"$@\"", Runtime.binary, "--root", root.path] + args)
        }
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "cat secret; pwd"])(&spec)
            spec[path: "process.cwd"] = "/proc/self/fd/3"
        }
        let r = withHostDir(["run", "--preserve-fds", "1", "--bundle", b, "cwdfd"])
        XCTAssertNotEqual(r.status, 0, "must refuse: \(r.stdout)")
        XCTAssertFalse(r.stdout.contains("HOST-SECRET"), r.stdout)
        assertNothingLeft("cwdfd", bundle: b)

        let d = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", d, "cwdfd-exec"]).status, 0)
        defer { sl(["delete", "-f", "cwdfd-exec"]) }
        let e = withHostDir([
            "exec", "--preserve-fds", "1", "--cwd", "/proc/self/fd/3", "cwdfd-exec", "sh", "-c", "cat secret; pwd",
        ])
        XCTAssertNotEqual(e.status, 0, "must refuse: \(e.stdout)")
        XCTAssertFalse(e.stdout.contains("HOST-SECRET"), e.stdout)
    }

    /// `exec --cap X` raises X in the effective, permitted and bounding sets but leaves inheritable
    /// and ambient empty (CVE-2022-29162; runc 1.1.2+), for root and for another user.
    func testExecCapLeavesInheritableAndAmbientEmpty() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "execcap"]).status, 0)
        defer { sl(["delete", "-f", "execcap"]) }
        for user in ["0:0", "1000:1000"] {
            let r = sl([
                "exec", "--cap", "CAP_NET_ADMIN", "--user", user, "execcap", "grep", "^Cap", "/proc/self/status",
            ])
            XCTAssertEqual(r.status, 0, r.stderr)
            let caps = Dictionary(
                r.stdout.split(separator: "\n").compactMap { line -> (String, UInt64)? in
                    let f = line.split(separator: "\t")
                    guard f.count == 2, let v = UInt64(f[1], radix: 16) else { return nil }
                    return (String(f[0]), v)
                }
            ) { a, _ in a }
            let netAdmin: UInt64 = 1 << 12
            XCTAssertEqual(caps["CapInh:"], 0, "user \(user): \(r.stdout)")
            XCTAssertEqual(caps["CapAmb:"], 0, "user \(user): \(r.stdout)")
            XCTAssertNotEqual((caps["CapBnd:"] ?? 0) & netAdmin, 0, "user \(user): \(r.stdout)")
            if user == "0:0" { XCTAssertNotEqual((caps["CapEff:"] ?? 0) & netAdmin, 0, r.stdout) }
        }
    }

    /// An exec'd process is the host's runtime binary until execve: while it waits there (here: opening
    /// the container's /etc/passwd, planted as a fifo after init started), nothing in the container
    /// can read its exe link, its fds or its environment (CVE-2016-9962, CVE-2019-5736 class). The
    /// container's init probes it (an exec'd probe would wait on the fifo too, with runc); the control
    /// probe of an ordinary container process shows the probe can read what it may.
    func testExecProcessUnreachableBeforeExecve() throws {
        let rootfs = try privateRootfs()
        XCTAssertEqual(mkfifo(rootfs + "/probe-in", 0o600), 0)
        let probeScript =
            "readlink /proc/$pid/exe && echo EXE; readlink /proc/$pid/fd/0 && echo FD; cat /proc/$pid/environ > "
            + "/dev/null 2>&1 && echo ENV; echo probed"
        let b = try bundle { spec in
            spec["root"] = ["path": rootfs, "readonly": false]
            ContainerTestCase.args([
                "sh", "-c",
                "read pid < /probe-in; { \(probeScript); } > /probe-out.tmp; mv /probe-out.tmp /probe-out; sleep 100",
            ])(&spec)
        }
        let id = "execwin"
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let state = try JSONSerialization.jsonObject(with: Data(sl(["state", id]).stdout.utf8)) as? [String: Any]
        let hostInit = Int32(state?["pid"] as? Int ?? 0)
        XCTAssertGreaterThan(hostInit, 0)
        let control = sl(["exec", "--env", "HOME=/root", id, "sh", "-c", "pid=1; \(probeScript)"])
        XCTAssertEqual(
            control.stdout, "/bin/busybox\nEXE\n/dev/null\nFD\nENV\nprobed\n", "control: the user process is reachable")

        let passwd = rootfs + "/etc/passwd"
        let saved = try String(contentsOfFile: passwd, encoding: .utf8)
        try FileManager.default.removeItem(atPath: passwd)
        XCTAssertEqual(mkfifo(passwd, 0o644), 0)
        // The same capabilities as the probe's (the default ones): only dumpability keeps it out.
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        let capSets = ["bounding": caps, "effective": caps, "permitted": caps]
        try JSONSerialization.data(withJSONObject: [
            "args": ["true"], "cwd": "/", "user": ["uid": 0, "gid": 0], "env": ["PATH=/bin"],
            "capabilities": capSets,
        ])
        .write(to: URL(fileURLWithPath: root.path + "/p.json"))
        let blocked = Process()
        blocked.executableURL = URL(fileURLWithPath: Runtime.binary)
        blocked.arguments = ["--root", root.path, "exec", "-p", root.path + "/p.json", id]
        blocked.standardInput = FileHandle.nullDevice
        blocked.standardOutput = FileHandle.nullDevice
        blocked.standardError = FileHandle.nullDevice
        try blocked.run()
        defer { if blocked.isRunning { kill(blocked.processIdentifier, SIGKILL) } }
        // The exec'd process, in the container's pid namespace, waiting on the fifo.
        let pidNS = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(hostInit)/ns/pid")
        var hostPid: Int32 = 0
        XCTAssertTrue(
            waitUntil(timeout: 30) {
                let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap {
                    Int32($0)
                }
                hostPid =
                    pids.first { p in
                        p != hostInit
                            && (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/ns/pid"))
                                == pidNS
                            && (try? String(contentsOfFile: "/proc/\(p)/wchan", encoding: .utf8)) == "wait_for_partner"
                    } ?? 0
                return hostPid > 0
            }, "no exec'd process waiting on the fifo")
        let nsPid =
            ((try? String(contentsOfFile: "/proc/\(hostPid)/status", encoding: .utf8)) ?? "")
            .split(separator: "\n").first { $0.hasPrefix("NSpid:") }?.split(separator: "\t").last.map(String.init)
            ?? "?"
        let toInit = open(rootfs + "/probe-in", O_WRONLY)
        XCTAssertGreaterThanOrEqual(toInit, 0)
        if toInit >= 0 {
            _ = "\(nsPid)\n".withCString { write(toInit, $0, strlen($0)) }
            close(toInit)
        }
        XCTAssertTrue(
            waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: rootfs + "/probe-out") },
            "init did not probe")
        let probed = (try? String(contentsOfFile: rootfs + "/probe-out", encoding: .utf8)) ?? ""
        // Release the exec (a writer opens the fifo), then put /etc/passwd back.
        let w = open(passwd, O_WRONLY)
        if w >= 0 {
            _ = saved.withCString { write(w, $0, strlen($0)) }
            close(w)
        }
        XCTAssertTrue(
            waitUntil(timeout: 60) { !blocked.isRunning }, "the exec did not finish after the fifo was opened")
        try? FileManager.default.removeItem(atPath: passwd)
        try saved.write(toFile: passwd, atomically: true, encoding: .utf8)
        XCTAssertEqual(
            probed, "probed\n", "the exec'd process (pid \(nsPid) in the container) is reachable before execve")
        XCTAssertEqual(blocked.isRunning ? -1 : blocked.terminationStatus, 0)
    }
}
