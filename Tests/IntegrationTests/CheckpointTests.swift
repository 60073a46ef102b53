import CLinux
import Foundation
import Glibc
import TestSupport
import XCTest

/// checkpoint / restore with a real criu ($SWIFTLET_CRIU, passed with the global --criu flag;
/// Scripts/test.sh installs one). Containers are busybox shells that count into a file on a
/// host directory bind-mounted at /data, so a test can see a restored container carry on.
final class CheckpointTests: ContainerTestCase {
    var criu = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard let c = ProcessInfo.processInfo.environment["SWIFTLET_CRIU"], !c.isEmpty else {
            throw XCTSkip("SWIFTLET_CRIU is not set: Scripts/install-criu.sh prints the criu to use")
        }
        criu = c
    }

    /// swiftlet --criu CRIU ARGS
    @discardableResult
    func cr(_ args: [String], timeout: Double = 60) -> RunResult { sl(["--criu", criu] + args, timeout: timeout) }

    /// A host directory for /data and a bundle whose process runs `script` with its stdio on
    /// /dev/null (the container's own, so criu sees no outside files).
    /// `sharedData`: /data is a world-writable directory outside the (0700) test session dir, for
    /// containers whose root is an unprivileged host user.
    func counterBundle(
        _ script: String = CheckpointTests.counter, extraCaps: [String] = [],
        sharedData: Bool = false
    ) throws -> (bundle: String, data: String) {
        var data = try makeTempDir(prefix: "swiftlet-criu-data.")
        if sharedData {
            data =
                FileManager.default.temporaryDirectory.appendingPathComponent("swiftlet-criu-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: false)
            XCTAssertEqual(chmod(data, 0o777), 0)
            addTeardownBlock { try? FileManager.default.removeItem(atPath: data) }
        }
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", "exec </dev/null >/dev/null 2>&1; " + script])(&spec)
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]])
            spec["mounts"] = mounts
            if !extraCaps.isEmpty {
                var caps = spec[path: "process.capabilities"] as? [String: Any] ?? [:]
                for k in ["bounding", "effective", "permitted"] { caps[k] = (caps[k] as? [String] ?? []) + extraCaps }
                spec[path: "process.capabilities"] = caps
            }
        }
        return (b, data)
    }

    static let counter = "i=0; while true; do i=$((i+1)); echo $i > /data/count; sleep 0.05; done"

    func count(_ data: String) -> Int {
        (try? String(contentsOfFile: data + "/count", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? -1
    }

    /// Waits until the counter passes `value`; returns the count then.
    @discardableResult
    func waitCount(_ data: String, above value: Int, file: StaticString = #filePath, line: UInt = #line) -> Int {
        XCTAssertTrue(
            waitUntil(timeout: 10) { self.count(data) > value }, "counter stuck at \(count(data)) (wanted > \(value))",
            file: file, line: line)
        return count(data)
    }

    func state(_ id: String) -> [String: Any]? {
        let r = sl(["state", id])
        guard r.status == 0, let d = r.stdout.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
    }

    func pid(_ id: String) -> Int32 { Int32(state(id)?["pid"] as? Int ?? 0) }

    func imageDir() throws -> String { try makeTempDir(prefix: "swiftlet-criu-img.") }

    func assertRunning(_ id: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(state(id)?["status"] as? String, "running", file: file, line: line)
    }

    // MARK: - Working paths

    func testCheckpointStopsContainerAndRestoreContinuesUnderSameAndNewID() throws {
        let (b, data) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "cr1"]).status, 0)
        waitCount(data, above: 3)
        let img = try imageDir()
        let work = try makeTempDir(prefix: "swiftlet-criu-work.")
        let oldPid = pid("cr1")
        let c = cr(["checkpoint", "--image-path", img, "--work-path", work, "cr1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: img + "/inventory.img"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/dump.log"), "criu's log belongs in --work-path")
        // The processes are gone and so is the container (runc removes it after a full dump).
        XCTAssertTrue(waitUntil(timeout: 5) { !processAlive(oldPid) })
        XCTAssertNotEqual(sl(["state", "cr1"]).status, 0)
        let frozen = count(data)
        usleep(300_000)
        XCTAssertEqual(count(data), frozen, "nothing counts after the checkpoint")

        let pidFile = work + "/restored.pid"
        let r = cr([
            "restore", "-d", "--image-path", img, "--work-path", work, "--pid-file", pidFile, "--bundle", b, "cr1",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/restore.log"))
        assertRunning("cr1")
        let restored = pid("cr1")
        XCTAssertGreaterThan(restored, 0)
        XCTAssertEqual(try String(contentsOfFile: pidFile, encoding: .utf8), String(restored))
        // The counter resumes from where it was, it does not start over.
        let after = waitCount(data, above: frozen)
        XCTAssertGreaterThan(after, frozen)
        // In the container's cgroup, and criu's temporary root is unmounted again.
        let cg = try String(contentsOfFile: "/proc/\(restored)/cgroup", encoding: .utf8)
        XCTAssertTrue(cg.contains("/cr1"), cg)
        XCTAssertEqual(mountsContaining("criu-root"), [])
        XCTAssertEqual(sl(["delete", "-f", "cr1"]).status, 0)
        assertNothingLeft("cr1")

        // The same images again, as another container.
        let r2 = cr(["restore", "-d", "--image-path", img, "--bundle", b, "cr1-copy"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        assertRunning("cr1-copy")
        waitCount(data, above: count(data))
        let cg2 = try String(contentsOfFile: "/proc/\(pid("cr1-copy"))/cgroup", encoding: .utf8)
        XCTAssertTrue(cg2.contains("/cr1-copy"), cg2)
        XCTAssertEqual(sl(["delete", "-f", "cr1-copy"]).status, 0)
        assertNothingLeft("cr1-copy")
    }

    func testLeaveRunningKeepsContainerAndImageRestoresAsSecondContainer() throws {
        let (b, data) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "lr1"]).status, 0)
        waitCount(data, above: 3)
        let before = pid("lr1")
        let img = try imageDir()
        let c = cr(["checkpoint", "--leave-running", "--manage-cgroups-mode", "soft", "--image-path", img, "lr1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        assertRunning("lr1")
        XCTAssertEqual(pid("lr1"), before)
        waitCount(data, above: count(data))

        let r = cr(["restore", "-d", "--image-path", img, "--bundle", b, "lr2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        assertRunning("lr1")
        assertRunning("lr2")
        XCTAssertNotEqual(pid("lr1"), pid("lr2"))
        for id in ["lr1", "lr2"] {
            XCTAssertEqual(sl(["delete", "-f", id]).status, 0)
            assertNothingLeft(id)
        }
    }

    /// With memory tracking (soft-dirty bits) a pre-dump and a dump on top of it (--parent-path)
    /// restore. Without it (the build machine's 6.18 kernel has no soft-dirty bits) both are refused
    /// clearly and the container runs on untouched. The VM of Scripts/vm-test.sh (VM_TEST=1, Debian's
    /// 6.1) has them: there the success path must run, not the refusal.
    func testPreDumpAndParentPath() throws {
        let (b, data) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "pd1"]).status, 0)
        waitCount(data, above: 3)
        let base = try imageDir()
        let pid0 = pid("pd1")
        let check = runProgram(criu, ["check", "--feature", "mem_dirty_track"])
        let tracking = check.status == 0
        if ProcessInfo.processInfo.environment["VM_TEST"] == "1" {
            XCTAssertTrue(
                tracking,
                "the VM's kernel has soft-dirty bits, but criu cannot track memory: \(check.stdout)\(check.stderr)")
        }
        let pre = cr(["checkpoint", "--pre-dump", "--image-path", base + "/1", "pd1"])
        if !tracking {
            XCTAssertNotEqual(pre.status, 0)
            XCTAssertTrue(pre.stderr.contains("--pre-dump") && pre.stderr.contains("track memory"), pre.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: base + "/1"), "refused before the image dir is made")
            let withParent = cr(["checkpoint", "--parent-path", "../1", "--image-path", base + "/2", "pd1"])
            XCTAssertNotEqual(withParent.status, 0)
            XCTAssertTrue(
                withParent.stderr.contains("--parent-path") && withParent.stderr.contains("track memory"),
                withParent.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: base + "/2"))
            assertRunning("pd1")
            XCTAssertEqual(pid("pd1"), pid0)
            waitCount(data, above: count(data))
            XCTAssertEqual(sl(["delete", "-f", "pd1"]).status, 0)
            return
        }
        XCTAssertEqual(pre.status, 0, pre.stderr)
        XCTAssertFalse(pre.stderr.contains("Error"), "a pre-dump that worked reports nothing: \(pre.stderr)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/1/inventory.img"))
        assertRunning("pd1")
        XCTAssertEqual(pid("pd1"), pid0)
        waitCount(data, above: count(data))
        let c = cr(["checkpoint", "--parent-path", "../1", "--image-path", base + "/2", "pd1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        // criu links the dump to its parent (and takes unchanged pages from there).
        XCTAssertEqual(try? FileManager.default.destinationOfSymbolicLink(atPath: base + "/2/parent"), "../1")
        XCTAssertNotEqual(sl(["state", "pd1"]).status, 0)
        let frozen = count(data)
        let r = cr(["restore", "-d", "--image-path", base + "/2", "--bundle", b, "pd1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        waitCount(data, above: frozen)
        XCTAssertEqual(sl(["delete", "-f", "pd1"]).status, 0)
        assertNothingLeft("pd1")
    }

    func testRestoreIntoNewBundle() throws {
        let (b, data) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "nb1"]).status, 0)
        waitCount(data, above: 3)
        let img = try imageDir()
        let c = cr(["checkpoint", "--manage-cgroups-mode", "full", "--image-path", img, "nb1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let moved = try makeTempDir(prefix: "swiftlet-bundle-moved.")
        try FileManager.default.copyItem(atPath: b + "/config.json", toPath: moved + "/config.json")
        let frozen = count(data)
        let r = cr(["restore", "-d", "--manage-cgroups-mode", "full", "--image-path", img, "--bundle", moved, "nb2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(state("nb2")?["bundle"] as? String, moved)
        let cg = try String(contentsOfFile: "/proc/\(pid("nb2"))/cgroup", encoding: .utf8)
        XCTAssertTrue(cg.contains("/nb2") && !cg.contains("/nb1"), cg)
        waitCount(data, above: frozen)
        XCTAssertEqual(sl(["delete", "-f", "nb2"]).status, 0)
        assertNothingLeft("nb2")
    }

    /// Without --detach, restore waits for the restored init and exits with its status, then
    /// removes the container (like run).
    func testForegroundRestoreReturnsExitStatus() throws {
        let (b, data) = try counterBundle(
            "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo $i > /data/count; sleep 0.05; done; exit 7")
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "fg1"]).status, 0)
        waitCount(data, above: 3)
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "fg1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertLessThan(count(data), 30)
        let r = cr(["restore", "--image-path", img, "--bundle", b, "fg1"])
        XCTAssertEqual(r.status, 7, r.stderr)
        XCTAssertEqual(count(data), 30)
        assertNothingLeft("fg1")
    }

    /// An established TCP connection inside the container (its own network namespace): the
    /// client keeps sending over it after restore. Without --tcp-established the dump is refused
    /// and the container runs on.
    func testTCPEstablishedConnectionSurvives() throws {
        let script =
            "ip link set lo up; sleep 1000000 | nc -l -p 5000 > /data/received & sleep 0.3; "
            + "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done | nc 127.0.0.1 5000"
        let (b, data) = try counterBundle(script, extraCaps: ["CAP_NET_ADMIN"])
        func received() -> Int {
            let text = (try? String(contentsOfFile: data + "/received", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").last.flatMap { Int($0) } ?? -1
        }
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "tcp1"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { received() > 3 }, "no data over the connection")
        let img = try imageDir()

        let refused = cr(["checkpoint", "--image-path", img, "tcp1"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--tcp-established"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("dump.log"), "criu's log is quoted: \(refused.stderr)")
        assertRunning("tcp1")
        let still = received()
        XCTAssertTrue(waitUntil(timeout: 5) { received() > still }, "the connection broke after a refused dump")

        // The same option from a criu configuration file named by the org.criu.config annotation.
        let (b2, data2) = try counterBundle(script, extraCaps: ["CAP_NET_ADMIN"])
        let conf = data2 + "/criu.conf"
        try "tcp-established\n".write(toFile: conf, atomically: true, encoding: .utf8)
        var config = try readConfig(bundle: b2)
        config[path: "annotations"] = ["org.criu.config": conf]
        try writeConfigThrowing(config, to: b2)
        XCTAssertEqual(sl(["run", "-d", "--bundle", b2, "tcp2"]).status, 0)
        XCTAssertTrue(
            waitUntil(timeout: 10) {
                ((try? String(contentsOfFile: data2 + "/received", encoding: .utf8)) ?? "").split(separator: "\n").count
                    > 3
            }, "no data over tcp2's connection")
        let viaConfig = cr(["checkpoint", "--leave-running", "--image-path", try imageDir(), "tcp2"])
        XCTAssertEqual(viaConfig.status, 0, viaConfig.stderr)
        XCTAssertEqual(sl(["delete", "-f", "tcp2"]).status, 0)

        let c = cr(["checkpoint", "--tcp-established", "--image-path", img, "tcp1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let frozen = received()
        // Restoring an established connection needs the flag on restore too; a refused restore
        // leaves nothing behind.
        let bad = cr(["restore", "-d", "--image-path", img, "--bundle", b, "tcp1"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("restore.log"), bad.stderr)
        assertNothingLeft("tcp1")
        XCTAssertEqual(mountsContaining("criu-root"), [])

        let r = cr(["restore", "-d", "--tcp-established", "--image-path", img, "--bundle", b, "tcp1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(
            waitUntil(timeout: 10) { received() > frozen + 3 }, "the connection did not carry on after restore")
        XCTAssertEqual(sl(["delete", "-f", "tcp1"]).status, 0)
        assertNothingLeft("tcp1")
    }

    /// A network namespace joined by path is external to the checkpoint: restore puts the
    /// restored processes back into that same namespace. A `cgroup` mount (one bind per host
    /// hierarchy) is dumped as external bind mounts and rebound to the new container's cgroups.
    func testJoinedNetworkNamespaceAndCgroupMount() throws {
        let netns = "swiftlet-cr-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(runProgram("/usr/bin/ip", ["netns", "add", netns]).status, 0)
        defer { _ = runProgram("/usr/bin/ip", ["netns", "delete", netns]) }
        let nsPath = "/run/netns/" + netns
        let (b, data) = try counterBundle()
        var config = try readConfig(bundle: b)
        var namespaces = (config[path: "linux.namespaces"] as? [[String: Any]] ?? []).filter {
            $0["type"] as? String != "network"
        }
        namespaces.append(["type": "network", "path": nsPath])
        config[path: "linux.namespaces"] = namespaces
        var mounts = config["mounts"] as? [[String: Any]] ?? []
        mounts.append([
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        ])
        config["mounts"] = mounts
        try writeConfigThrowing(config, to: b)

        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "ns1"]).status, 0)
        waitCount(data, above: 3)
        let nsInode = try FileManager.default.attributesOfItem(atPath: nsPath)[.systemFileNumber] as? UInt64
        func netnsOf(_ pid: Int32) -> String {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")) ?? ""
        }
        XCTAssertEqual(netnsOf(pid("ns1")), "net:[\(nsInode ?? 0)]")
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "ns1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let frozen = count(data)
        let r = cr(["restore", "-d", "--image-path", img, "--bundle", b, "ns2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        waitCount(data, above: frozen)
        let restored = pid("ns2")
        XCTAssertEqual(netnsOf(restored), "net:[\(nsInode ?? 0)]", "restored into the joined namespace")
        // The container's cgroup mount shows the new container's cgroup: one bind per hierarchy
        // on a tmpfs at /sys/fs/cgroup (v1, hybrid), or /sys/fs/cgroup itself (pure v2, the VM).
        let cg = try String(contentsOfFile: "/proc/\(restored)/cgroup", encoding: .utf8)
        XCTAssertTrue(cg.contains("/ns2"), cg)
        let mountinfo = try String(contentsOfFile: "/proc/\(restored)/mountinfo", encoding: .utf8)
        let cgroupMounts = mountinfo.split(separator: "\n").filter { line in
            let fields = line.split(separator: " ")  // ... mount-point ... - fstype source options
            guard fields.count > 4, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { return false }
            let under = fields[4] == "/sys/fs/cgroup" || fields[4].hasPrefix("/sys/fs/cgroup/")
            return under && fields[dash + 1].hasPrefix("cgroup")
        }
        XCTAssertFalse(cgroupMounts.isEmpty, mountinfo)
        XCTAssertTrue(cgroupMounts.allSatisfy { $0.contains("/ns2 ") }, cgroupMounts.joined(separator: "\n"))
        XCTAssertEqual(sl(["delete", "-f", "ns2"]).status, 0)
        assertNothingLeft("ns2")
    }

    /// A PID namespace joined by path is external too: the container is restored into the PID
    /// namespace its new bundle names (a fresh one here: the pids must be free in it), keeping
    /// its pids there.
    func testJoinedPIDNamespace() throws {
        /// `unshare --pid --fork sleep`: returns the namespace's pid 1 (a host pid), killed at teardown.
        func pidNamespaceHolder() throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
            p.arguments = ["--pid", "--fork", "--mount-proc", "sleep", "1000"]
            try p.run()
            let unsharePid = p.processIdentifier
            addTeardownBlock {
                kill(unsharePid, SIGKILL)
                p.waitUntilExit()
            }
            var holder: Int32 = 0
            _ = waitUntil(timeout: 5) {
                let children =
                    (try? String(contentsOfFile: "/proc/\(unsharePid)/task/\(unsharePid)/children", encoding: .utf8))
                    ?? ""
                holder = Int32(children.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                return holder > 0
            }
            XCTAssertGreaterThan(holder, 0)
            addTeardownBlock { kill(holder, SIGKILL) }
            return holder
        }
        func joinPIDNamespace(of holder: Int32, _ bundle: String) throws {
            var config = try readConfig(bundle: bundle)
            var namespaces = (config[path: "linux.namespaces"] as? [[String: Any]] ?? []).filter {
                $0["type"] as? String != "pid"
            }
            namespaces.append(["type": "pid", "path": "/proc/\(holder)/ns/pid"])
            config[path: "linux.namespaces"] = namespaces
            try writeConfigThrowing(config, to: bundle)
        }
        func nsPid(_ pid: Int32) -> [String] {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").first { $0.hasPrefix("NSpid:") }?.split(separator: "\t").dropFirst()
                .map(String.init) ?? []
        }
        func pidNamespace(_ pid: Int32) -> String {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/pid")) ?? ""
        }

        let (b, data) = try counterBundle()
        let first = try pidNamespaceHolder()
        try joinPIDNamespace(of: first, b)
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "pn1"]).status, 0)
        waitCount(data, above: 3)
        XCTAssertEqual(pidNamespace(pid("pn1")), pidNamespace(first))
        let inner = nsPid(pid("pn1")).last
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "pn1"])
        XCTAssertEqual(c.status, 0, c.stderr)

        let second = try pidNamespaceHolder()
        let moved = try makeTempDir(prefix: "swiftlet-bundle-pidns.")
        try FileManager.default.copyItem(atPath: b + "/config.json", toPath: moved + "/config.json")
        try joinPIDNamespace(of: second, moved)
        let frozen = count(data)
        let r = cr(["restore", "-d", "--image-path", img, "--bundle", moved, "pn2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        waitCount(data, above: frozen)
        XCTAssertEqual(pidNamespace(pid("pn2")), pidNamespace(second))
        XCTAssertNotEqual(pidNamespace(second), pidNamespace(first))
        XCTAssertEqual(nsPid(pid("pn2")).last, inner, "the same pid inside the namespace")
        XCTAssertEqual(sl(["delete", "-f", "pn2"]).status, 0)
        assertNothingLeft("pn2")
    }

    /// A user-namespaced container: criu restores it as the container's root (host uid 100000),
    /// so the image directory checkpoint creates is reachable by it (0711); one that is not is
    /// refused with a clear error before anything is set up.
    func testUserNamespacedContainer() throws {
        let (b, data) = try counterBundle(sharedData: true)
        var config = try readConfig(bundle: b)
        // The container's root (host uid 100000) cannot create /data in the root-owned rootfs (nor
        // can runc's): the mount point is made here.
        let rootfs = config[dict: "root"]["path"] as? String ?? ""
        try FileManager.default.createDirectory(atPath: rootfs + "/data", withIntermediateDirectories: true)
        ContainerTestCase.userNamespace()(&config)
        try writeConfigThrowing(config, to: b)
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "un1"]).status, 0)
        waitCount(data, above: 3)
        let base = try imageDir()
        let img = base + "/images"
        let c = cr(["checkpoint", "--image-path", img, "un1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let mode = (try FileManager.default.attributesOfItem(atPath: img)[.posixPermissions] as? Int) ?? 0
        XCTAssertEqual(mode, 0o711)

        XCTAssertEqual(chmod(img, 0o700), 0)
        let refused = cr(["restore", "-d", "--image-path", img, "--bundle", b, "un1"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("host uid 100000") && refused.stderr.contains(img), refused.stderr)
        assertNothingLeft("un1")

        XCTAssertEqual(chmod(img, 0o711), 0)
        let frozen = count(data)
        let r = cr(["restore", "-d", "--image-path", img, "--bundle", b, "un1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        waitCount(data, above: frozen)
        let uidMap = try String(contentsOfFile: "/proc/\(pid("un1"))/uid_map", encoding: .utf8)
        XCTAssertTrue(uidMap.split(whereSeparator: \.isWhitespace).elementsEqual(["0", "100000", "65536"]), uidMap)
        XCTAssertEqual(sl(["delete", "-f", "un1"]).status, 0)
        assertNothingLeft("un1")
    }

    /// stdio on pipes (how containerd's shim runs containers): checkpoint records them in
    /// descriptors.json and restore hands its own stdio to the restored process in their place,
    /// so the output carries on in restore's stdout pipe.
    func testPipeStdioIsHandedToRestoredProcess() throws {
        let b = try bundle(
            ContainerTestCase.args(["sh", "-c", "i=0; while true; do i=$((i+1)); echo out$i; sleep 0.05; done"]))
        /// Runs swiftlet with fresh pipes as stdio; returns its status and the read end of its stdout.
        func withPipes(_ args: [String]) throws -> (status: Int32, stdout: FileHandle, keep: [Pipe]) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Runtime.binary)
            p.arguments = ["--root", root.path, "--criu", criu] + args
            let input = Pipe()
            let output = Pipe()
            let errors = Pipe()
            p.standardInput = input
            p.standardOutput = output
            p.standardError = errors
            try p.run()
            p.waitUntilExit()
            return (p.terminationStatus, output.fileHandleForReading, [input, output, errors])
        }
        /// The highest "outN" read from `fd` once it passes `above` (or 10 s pass).
        func readOut(_ fd: Int32, above: Int) -> Int {
            var text = ""
            var last = -1
            var buf = [UInt8](repeating: 0, count: 4096)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline && last <= above {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 200) > 0 else { continue }
                let n = read(fd, &buf, buf.count)
                if n <= 0 { break }
                text += String(decoding: buf[0..<n], as: UTF8.self)
                last = text.split(separator: "\n").compactMap { Int($0.dropFirst(3)) }.last ?? last
            }
            return last
        }
        let started = try withPipes(["run", "-d", "--bundle", b, "pipe1"])
        XCTAssertEqual(started.status, 0)
        let before = readOut(started.stdout.fileDescriptor, above: 3)
        XCTAssertGreaterThan(before, 3)
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "pipe1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let names =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: img + "/descriptors.json")))
            as? [String]
        XCTAssertEqual(names?.count, 3)
        XCTAssertTrue(names?.allSatisfy { $0.hasPrefix("pipe:[") } ?? false, "\(names ?? [])")

        let restored = try withPipes(["restore", "-d", "--image-path", img, "--bundle", b, "pipe1"])
        XCTAssertEqual(restored.status, 0)
        let after = readOut(restored.stdout.fileDescriptor, above: before)
        XCTAssertGreaterThan(after, before, "the restored shell writes on, into restore's stdout")
        XCTAssertEqual(sl(["delete", "-f", "pipe1"]).status, 0)
        assertNothingLeft("pipe1")
        _ = (started.keep, restored.keep)
    }

    /// A bind mount nested in another one, restored into a bundle whose outer source is a fresh
    /// empty directory: the nested mount point is made in that source (restore binds the mounts
    /// for the time it makes mount points, as runc does).
    func testNestedBindMountIntoFreshSource() throws {
        let inner = try makeTempDir(prefix: "swiftlet-criu-inner.")
        let script = "i=0; while true; do i=$((i+1)); echo $i > /data/inner/count; sleep 0.05; done"
        let (b, _) = try counterBundle(script)
        var config = try readConfig(bundle: b)
        var mounts = config["mounts"] as? [[String: Any]] ?? []
        mounts.append(["destination": "/data/inner", "type": "bind", "source": inner, "options": ["rbind", "rw"]])
        config["mounts"] = mounts
        try writeConfigThrowing(config, to: b)
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "nest1"]).status, 0)
        waitCount(inner, above: 3)
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "nest1"])
        XCTAssertEqual(c.status, 0, c.stderr)

        let freshOuter = try makeTempDir(prefix: "swiftlet-criu-outer.")
        let moved = try makeTempDir(prefix: "swiftlet-bundle-nested.")
        var movedConfig = config
        movedConfig["mounts"] = mounts.map { m -> [String: Any] in
            var m = m
            if m["destination"] as? String == "/data" { m["source"] = freshOuter }
            return m
        }
        try writeConfigThrowing(movedConfig, to: moved)
        let frozen = count(inner)
        let r = cr(["restore", "-d", "--image-path", img, "--bundle", moved, "nest2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        waitCount(inner, above: frozen)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: freshOuter + "/inner"), "mount point made in the new source")
        XCTAssertEqual(mountsContaining(freshOuter), [], "no temporary bind left on the host")
        XCTAssertEqual(sl(["delete", "-f", "nest2"]).status, 0)
        assertNothingLeft("nest2", bundle: moved)
    }

    /// prestart and createRuntime hooks run during restore once criu has set up the namespaces
    /// (its setup-namespaces notification), with the restored init's pid; a failing hook fails the
    /// restore and leaves nothing behind.
    func testRestoreRunsHooks() throws {
        let (b, data) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "hk1"]).status, 0)
        waitCount(data, above: 3)
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "hk1"])
        XCTAssertEqual(c.status, 0, c.stderr)

        let log = data + "/hooks.log"
        func setHooks(_ prestart: String) throws {
            var config = try readConfig(bundle: b)
            config["hooks"] = [
                "prestart": [["path": "/bin/sh", "args": ["sh", "-c", prestart]]],
                "createRuntime": [["path": "/bin/sh", "args": ["sh", "-c", "echo createRuntime >> \(log)"]]],
            ]
            try writeConfigThrowing(config, to: b)
        }
        try setHooks("exit 3")
        let failed = cr(["restore", "-d", "--image-path", img, "--bundle", b, "hk1"])
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.stderr.contains("prestart"), failed.stderr)
        assertNothingLeft("hk1")

        try setHooks("cat >> \(log); echo >> \(log)")
        let r = cr(["restore", "-d", "--image-path", img, "--bundle", b, "hk1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.last, "createRuntime", text)
        let state = try XCTUnwrap(
            lines.first { $0.hasPrefix("{") }.flatMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            })
        XCTAssertEqual(state["id"] as? String, "hk1")
        XCTAssertEqual(Int32(state["pid"] as? Int ?? 0), pid("hk1"), text)
        XCTAssertEqual(sl(["delete", "-f", "hk1"]).status, 0)
        assertNothingLeft("hk1")
    }

    /// A terminal container: its pty comes back as a new pair whose master restore sends to
    /// --console-socket (CRIU's orphan-pts-master); without --detach and a socket, restore copies
    /// the pty to its stdout and returns init's exit status.
    func testTerminalContainerRestoresWithConsoleSocketAndInForeground() throws {
        let script = "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo tick$i; sleep 0.05; done; exit 5"
        let b = try bundle { spec in
            ContainerTestCase.args(["sh", "-c", script])(&spec)
            spec[path: "process.terminal"] = true
        }
        let console = try ConsoleSocket(path: root.path + "/console.sock")
        XCTAssertEqual(sl(["run", "-d", "--console-socket", console.path, "--bundle", b, "tty1"]).status, 0)
        let first = try XCTUnwrap(console.receive())
        let before = readTicks(first, until: 5)
        XCTAssertGreaterThanOrEqual(before, 5)
        let img = try imageDir()
        // The console holder keeps the master open over the checkpoint (a hung-up pty does not restore).
        let c = cr(["checkpoint", "--image-path", img, "tty1"])
        XCTAssertEqual(c.status, 0, c.stderr)
        close(first)

        let noSocket = cr(["restore", "-d", "--image-path", img, "--bundle", b, "tty1"])
        XCTAssertNotEqual(noSocket.status, 0)
        XCTAssertTrue(noSocket.stderr.contains("console socket"), noSocket.stderr)
        assertNothingLeft("tty1")

        let r = cr(["restore", "-d", "--console-socket", console.path, "--image-path", img, "--bundle", b, "tty1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let master = try XCTUnwrap(console.receive())
        let after = readTicks(master, until: before + 3)
        close(master)
        XCTAssertGreaterThan(after, before, "the restored shell carries on counting on the new pty")
        XCTAssertEqual(sl(["delete", "-f", "tty1"]).status, 0)
        assertNothingLeft("tty1")

        // The same images in the foreground: the pty is copied to our stdout, exit status 5.
        let fg = cr(["restore", "--image-path", img, "--bundle", b, "tty2"])
        XCTAssertEqual(fg.status, 5, fg.stderr)
        XCTAssertTrue(fg.stdout.contains("tick40"), fg.stdout)
        XCTAssertFalse(fg.stdout.contains("tick1\r"), "restored, not started over: \(fg.stdout)")
        assertNothingLeft("tty2")
    }

    /// Reads "tickN" lines from a pty master until N reaches `until` (or 10 s pass); returns the last N.
    func readTicks(_ fd: Int32, until: Int) -> Int {
        var text = ""
        var buf = [UInt8](repeating: 0, count: 1024)
        let deadline = Date().addingTimeInterval(10)
        var last = -1
        while Date() < deadline && last < until {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            text += String(decoding: buf[0..<n], as: UTF8.self)
            last = text.components(separatedBy: "tick").compactMap { Int($0.prefix { $0.isNumber }) }.last ?? -1
        }
        return last
    }

    // MARK: - Failures

    func testCheckpointErrorsLeaveContainerRunning() throws {
        let (b, data) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "ce1"]).status, 0)
        waitCount(data, above: 3)
        let img = try imageDir()
        let pid0 = pid("ce1")

        let missing = sl(["--criu", "/nonexistent/criu", "checkpoint", "--image-path", img, "ce1"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(
            missing.stderr.contains("/nonexistent/criu") && missing.stderr.contains("No such file"), missing.stderr)

        let file = img + "/a-file"
        FileManager.default.createFile(atPath: file, contents: Data())
        let badDir = cr(["checkpoint", "--image-path", file + "/sub", "ce1"])
        XCTAssertNotEqual(badDir.status, 0)
        XCTAssertTrue(badDir.stderr.contains("--image-path") && badDir.stderr.contains(file + "/sub"), badDir.stderr)

        let mode = cr(["checkpoint", "--manage-cgroups-mode", "bogus", "--image-path", img, "ce1"])
        XCTAssertNotEqual(mode.status, 0)
        XCTAssertTrue(mode.stderr.contains("--manage-cgroups-mode") && mode.stderr.contains("bogus"), mode.stderr)

        let ns = cr(["checkpoint", "--empty-ns", "bogus", "--image-path", img, "ce1"])
        XCTAssertNotEqual(ns.status, 0)
        XCTAssertTrue(ns.stderr.contains("--empty-ns"), ns.stderr)

        let lazy = cr(["checkpoint", "--lazy-pages", "--image-path", img, "ce1"])
        XCTAssertNotEqual(lazy.status, 0)
        XCTAssertTrue(lazy.stderr.contains("--lazy-pages"), lazy.stderr)

        let ps = cr(["checkpoint", "--page-server", "127.0.0.1:9999", "--image-path", img, "ce1"])
        XCTAssertNotEqual(ps.status, 0)
        XCTAssertTrue(ps.stderr.contains("--page-server"), ps.stderr)

        assertRunning("ce1")
        XCTAssertEqual(pid("ce1"), pid0)
        waitCount(data, above: count(data))

        let none = cr(["checkpoint", "--image-path", img, "no-such-container"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.stderr.contains("does not exist"), none.stderr)
        XCTAssertEqual(sl(["delete", "-f", "ce1"]).status, 0)
    }

    func testCheckpointOfCreatedOrStoppedContainerIsRefused() throws {
        let (b, _) = try counterBundle()
        XCTAssertEqual(sl(["create", "--bundle", b, "cs1"]).status, 0)
        let img = try imageDir()
        let created = cr(["checkpoint", "--image-path", img, "cs1"])
        XCTAssertNotEqual(created.status, 0)
        XCTAssertTrue(created.stderr.contains("not been started"), created.stderr)
        XCTAssertEqual(state("cs1")?["status"] as? String, "created")

        let (b2, _) = try counterBundle("true")
        XCTAssertEqual(sl(["run", "-d", "--bundle", b2, "cs2"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.state("cs2")?["status"] as? String == "stopped" })
        let stopped = cr(["checkpoint", "--image-path", img, "cs2"])
        XCTAssertNotEqual(stopped.status, 0)
        XCTAssertTrue(stopped.stderr.contains("not running"), stopped.stderr)
        XCTAssertEqual(state("cs2")?["status"] as? String, "stopped")
        for id in ["cs1", "cs2"] { XCTAssertEqual(sl(["delete", "-f", id]).status, 0) }
    }

    func testRestoreErrorsLeaveNothingBehind() throws {
        let (b, data) = try counterBundle()
        let empty = try imageDir()

        let noDir = cr(["restore", "-d", "--image-path", empty + "/missing", "--bundle", b, "re1"])
        XCTAssertNotEqual(noDir.status, 0)
        XCTAssertTrue(noDir.stderr.contains("--image-path") && noDir.stderr.contains(empty + "/missing"), noDir.stderr)
        assertNothingLeft("re1")

        let noImages = cr(["restore", "-d", "--image-path", empty, "--bundle", b, "re1"])
        XCTAssertNotEqual(noImages.status, 0)
        XCTAssertTrue(noImages.stderr.contains("inventory.img"), noImages.stderr)
        assertNothingLeft("re1")

        // A real checkpoint, restored with a criu that does not exist.
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "re2"]).status, 0)
        waitCount(data, above: 3)
        let img = try imageDir()
        let c = cr(["checkpoint", "--image-path", img, "re2"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let missing = sl(["--criu", "/nonexistent/criu", "restore", "-d", "--image-path", img, "--bundle", b, "re2"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/criu"), missing.stderr)
        assertNothingLeft("re2")
        XCTAssertEqual(mountsContaining("criu-root"), [])

        let lazy = cr(["restore", "-d", "--lazy-pages", "--image-path", img, "--bundle", b, "re2"])
        XCTAssertNotEqual(lazy.status, 0)
        XCTAssertTrue(lazy.stderr.contains("--lazy-pages"), lazy.stderr)
        assertNothingLeft("re2")

        for (flags, words) in [
            (["--manage-cgroups-mode", "sometimes"], ["--manage-cgroups-mode", "sometimes"]),
            (["--empty-ns", "bogus"], ["--empty-ns", "bogus"]),
            (["--lsm-profile", "apparmor:x"], ["--lsm-profile"]),
            (["--lsm-mount-context", "system_u:object_r:x:s0"], ["--lsm-mount-context"]),
            (["--console-socket", empty + "/sock"], ["console socket"]),
            (["--work-path", empty + "/a-file/sub"], ["--work-path", empty + "/a-file/sub"]),
        ] {
            FileManager.default.createFile(atPath: empty + "/a-file", contents: Data())
            let bad = cr(["restore", "-d", "--image-path", img, "--bundle", b] + flags + ["re2"])
            XCTAssertNotEqual(bad.status, 0, "\(flags)")
            XCTAssertTrue(words.allSatisfy { bad.stderr.contains($0) }, "\(flags): \(bad.stderr)")
            assertNothingLeft("re2")
            XCTAssertEqual(mountsContaining("criu-root"), [])
        }

        let badBundle = cr(["restore", "-d", "--image-path", img, "--bundle", empty, "re2"])
        XCTAssertNotEqual(badBundle.status, 0)
        XCTAssertTrue(badBundle.stderr.contains("config.json"), badBundle.stderr)
        assertNothingLeft("re2")

        // An id that is taken: refused, and the running container is untouched. (Its own data
        // directory: a counter writing to re2's would change a file criu checks the size of.)
        let (other, _) = try counterBundle()
        XCTAssertEqual(sl(["run", "-d", "--bundle", other, "re3"]).status, 0)
        let taken = cr(["restore", "-d", "--image-path", img, "--bundle", b, "re3"])
        XCTAssertNotEqual(taken.status, 0)
        XCTAssertTrue(taken.stderr.contains("already exists"), taken.stderr)
        assertRunning("re3")
        XCTAssertEqual(sl(["delete", "-f", "re3"]).status, 0)

        // After all that the images still restore.
        let ok = cr(["restore", "-d", "--image-path", img, "--bundle", b, "re2"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(sl(["delete", "-f", "re2"]).status, 0)
        assertNothingLeft("re2")
    }
}

/// A listening --console-socket; `receive` accepts one connection and returns the fd it carries.
final class ConsoleSocket {
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, SocketType.stream | SocketType.cloexec, 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0, listen(fd, 4) == 0 else {
            throw TestSupportError("console socket \(path): errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// The next pty master sent to the socket (the runtime connects, sends, closes), nil after 10 s.
    func receive() -> Int32? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 10_000) > 0 else { return nil }
        let conn = accept(fd, nil, nil)
        guard conn >= 0 else { return nil }
        defer { close(conn) }
        var buf = [UInt8](repeating: 0, count: 256)
        var got: Int32 = -1
        _ = sl_recv_fd(conn, &got, &buf, buf.count)
        return got >= 0 ? got : nil
    }
}
