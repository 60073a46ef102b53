import Foundation
import Glibc
import LinuxSystem
import TestSupport
import XCTest

/// Bind-mount sources and flags as runc resolves them (issue 14 items 7 and 9, issue 19 items 1, 2,
/// 3 and 8): host-only sources in a user namespace, sources made by an earlier mount, a read-only
/// /dev, id-mapped rbind submounts, exact bind flags and locked ones, a joined user namespace's mappings.
final class MountSourceTests: ContainerTestCase {
    func tempDir(_ prefix: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock {
            // Submounts first (deepest first), then the tree.
            let points = mountsContaining(dir).compactMap {
                $0.split(separator: " ").dropFirst(4).first.map(String.init)
            }
            for m in points.sorted(by: { $0.count > $1.count }) { umount2(m, Int32(MNT_DETACH)) }
            try? FileManager.default.removeItem(atPath: dir)
        }
        return dir
    }

    /// A tmpfs mounted on a new directory with `flags` (MS_*), holding an empty file `f`.
    func hostTmpfs(_ flags: UInt, in dir: String, name: String = "t") throws -> String {
        let path = dir + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        XCTAssertEqual(mount("tmpfs", path, "tmpfs", 0, "size=1m,mode=777"), 0, "mount test tmpfs")
        XCTAssertTrue(FileManager.default.createFile(atPath: path + "/f", contents: Data()))
        if flags != 0 {
            XCTAssertEqual(
                mount(nil, path, nil, UInt(MS_REMOUNT) | UInt(MS_BIND) | flags, nil), 0, "remount test tmpfs")
        }
        return path
    }

    func addMount(_ destination: String, _ source: String, _ options: [String], type: String = "bind") -> (
        inout [String: Any]
    ) -> Void {
        { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(["destination": destination, "type": type, "source": source, "options": options])
            spec["mounts"] = mounts
        }
    }

    func userns(_ spec: inout [String: Any]) { ContainerTestCase.userNamespace()(&spec) }

    /// The mount options (field 6 of mountinfo) of `destination` in the container.
    let optionsOf = { (dest: String) in "awk '$5 == \"\(dest)\" { print $6 }' /proc/self/mountinfo" }

    // MARK: - 14.7: sources only the host can reach

    /// A source in a 0700 root-owned directory with container root mapped to 100000: the runtime
    /// opens it on the host side (runc too); `exec` in that container works as well.
    func testHostOnlyBindSourcesInUserNamespace() throws {
        let dir = try tempDir("hostonly")
        chmod(dir, 0o700)
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        try "secret\n".write(toFile: dir + "/data/f", atomically: false, encoding: .utf8)
        try "file-source\n".write(toFile: dir + "/hosts", atomically: false, encoding: .utf8)
        chmod(dir + "/data/f", 0o644)
        chmod(dir + "/hosts", 0o644)
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "30"])(&spec)
            self.userns(&spec)
            self.addMount("/home", dir + "/data", ["rbind"])(&spec)
            self.addMount("/etc/hosts", dir + "/hosts", ["bind", "ro"])(&spec)
        }
        let id = "hostonly\(UInt16.random(in: 0...UInt16.max))"
        let c = sl(["create", "--bundle", b, id])
        XCTAssertEqual(c.status, 0, c.stderr)
        defer { sl(["delete", "--force", id]) }
        XCTAssertEqual(sl(["start", id]).status, 0)
        let e = sl(["exec", id, "sh", "-c", "cat /home/f /etc/hosts; touch /etc/hosts 2>/dev/null || echo hosts-ro"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(e.stdout, "secret\nfile-source\nhosts-ro\n")
    }

    // MARK: - 19.3: sources resolved in mount order

    /// A source under the rootfs that only an earlier mount of the same config provides.
    func testBindSourceProvidedByEarlierMount() throws {
        let rootfs = try privateRootfs()
        let dir = try tempDir("earlier")
        try "inner\n".write(toFile: dir + "/x", atomically: false, encoding: .utf8)
        XCTAssertFalse(FileManager.default.fileExists(atPath: rootfs + "/mnt/a/x"))
        let r = try run(["cat", "/root/x"]) { spec in
            spec[path: "root.path"] = rootfs
            self.addMount("/mnt/a", dir, ["bind"])(&spec)
            self.addMount("/root/x", rootfs + "/mnt/a/x", ["bind"])(&spec)
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "inner\n")
    }

    // MARK: - 14.9: read-only /dev

    /// /dev mounted read-only: populated first, read-only at the end (runc's order).
    func testReadOnlyDevTmpfs() throws {
        let r = try run([
            "sh", "-c",
            "\(optionsOf("/dev")) | cut -d, -f1; [ -c /dev/null ] && echo null; \(optionsOf("/dev/pts")) | cut -d, "
                + "-f1; [ -L /dev/fd ] && echo fd-link; touch /dev/new 2>/dev/null || echo dev-ro; echo x > "
                + "/dev/shm/x && echo shm-rw",
        ]) { spec in
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            for i in mounts.indices where mounts[i]["destination"] as? String == "/dev" {
                mounts[i]["options"] = (mounts[i]["options"] as? [String] ?? []) + ["ro"]
            }
            spec["mounts"] = mounts
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "ro\nnull\nrw\nfd-link\ndev-ro\nshm-rw\n")
    }

    // MARK: - 19.1: id-mapped rbind keeps its submounts

    /// `rbind` + `idmap`: submounts kept, unmapped (runc 1.3); `ridmap` maps them too.
    func testIdmappedRbindKeepsSubmounts() throws {
        try XCTSkipUnless(Kernel.atLeast(6, 3), "id-mapped mounts of tmpfs need Linux 6.3")
        let dir = try tempDir("idrbind")
        chmod(dir, 0o777)
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/root-file", contents: Data()))
        _ = try hostTmpfs(0, in: dir, name: "sub")
        var cases: [([String], String)] = [
            (["rbind", "idmap"], "/home/root-file=0\n/home/sub/f=65534\n"),
            (["rbind", "ridmap"], "/home/root-file=0\n/home/sub/f=0\n"),
        ]
        // runc 1.3 refuses a non-recursive clone of a tree with submounts; swiftlet maps them all.
        if isSwiftlet { cases.append((["bind", "ridmap"], "/home/root-file=0\n/home/sub/f=0\n")) }
        for (options, want) in cases {
            let r = try run(["stat", "-c", "%n=%u", "/home/root-file", "/home/sub/f"]) { spec in
                self.userns(&spec)
                self.addMount("/home", dir, options)(&spec)
            }
            XCTAssertEqual(r.status, 0, "\(options): \(r.stderr)")
            XCTAssertEqual(r.stdout, want, "\(options)")
        }
    }

    // MARK: - 19.2: bind flags

    /// Explicit `dev`, `suid`, `exec` and `rw` are applied: the remount sets exactly the requested
    /// flags, not the source's (runc 1.3).
    func testBindFlagsAreAppliedExactly() throws {
        let dir = try tempDir("bindflags")
        let t = try hostTmpfs(UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), in: dir)
        let r = try run(["sh", "-c", optionsOf("/home")], addMount("/home", t, ["bind", "dev", "suid", "exec"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "rw,relatime\n")
        let ro = try hostTmpfs(UInt(MS_RDONLY), in: dir, name: "ro")
        let w = try run(["sh", "-c", "touch /home/new && echo written"], addMount("/home", ro, ["rbind", "rw"]))
        XCTAssertEqual(w.status, 0, w.stderr)
        XCTAssertEqual(w.stdout, "written\n")
        let kept = try run(["sh", "-c", optionsOf("/home")], addMount("/home", t, ["bind"]))
        XCTAssertEqual(kept.stdout, "rw,nosuid,nodev,noexec,relatime\n", "no flags named: the source's are kept")
    }

    /// In a user namespace the flags the kernel locks (the host's nodev ...) are kept when the config
    /// does not name them, and clearing one is an error (runc 1.3: "cannot clear locked flags").
    func testLockedBindFlagsInUserNamespace() throws {
        let dir = try tempDir("lockedflags")
        let t = try hostTmpfs(UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), in: dir)
        let ro = try run(["sh", "-c", optionsOf("/home")]) { spec in
            self.userns(&spec)
            self.addMount("/home", t, ["bind", "ro"])(&spec)
        }
        XCTAssertEqual(ro.status, 0, ro.stderr)
        XCTAssertEqual(ro.stdout, "ro,nosuid,nodev,noexec,relatime\n")
        for (options, flag) in [(["bind", "dev"], "nodev"), (["bind", "noatime"], "relatime")] {
            let b = try bundle { spec in
                self.userns(&spec)
                self.addMount("/home", t, options)(&spec)
            }
            let id = "locked\(UInt16.random(in: 0...UInt16.max))"
            let r = sl(["create", "--bundle", b, id])
            if r.status == 0 { sl(["delete", "--force", id]) }
            XCTAssertNotEqual(r.status, 0, "\(options) must fail")
            let want = options.contains("dev") ? "cannot clear locked flags" : "cannot change locked atime flags"
            // runc names the flag MS_NODEV, swiftlet by its option name.
            XCTAssertTrue(r.stderr.contains(want) && r.stderr.lowercased().contains(flag), "\(options): \(r.stderr)")
            assertNothingLeft(id, bundle: b)
        }
    }

    // MARK: - 19.8: id-mapped mount in a user namespace joined by path

    /// A user namespace (mapping 0 -> 100000) held by a sleeping process: joined by path, its
    /// mappings are what `idmap` uses (runc too); the holder is killed afterwards.
    func testIdmapTakesJoinedUserNamespaceMappings() throws {
        try XCTSkipUnless(Kernel.atLeast(6, 3), "id-mapped mounts of tmpfs need Linux 6.3")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["--user", "sleep", "60"]
        try holder.run()
        addTeardownBlock {
            holder.terminate()
            holder.waitUntilExit()
        }
        let pid = holder.processIdentifier
        // unshare execs sleep once it is in the new namespace.
        XCTAssertTrue(
            waitUntil(timeout: 10) {
                (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) == "sleep\n"
            })
        for file in ["uid_map", "gid_map"] {
            try "0 100000 65536\n".write(toFile: "/proc/\(pid)/\(file)", atomically: false, encoding: .utf8)
        }
        let dir = try tempDir("joinedidmap")
        chmod(dir, 0o777)
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/root-file", contents: Data()))
        for (options, want) in [(["rbind", "idmap"], "0\n"), (["rbind"], "65534\n")] {
            let r = try run(["stat", "-c", "%u", "/home/root-file"]) { spec in
                var linux = spec[dict: "linux"]
                linux["namespaces"] =
                    (linux["namespaces"] as? [[String: Any]] ?? []) + [
                        ["type": "user", "path": "/proc/\(pid)/ns/user"]
                    ]
                spec["linux"] = linux
                self.addMount("/home", dir, options)(&spec)
            }
            XCTAssertEqual(r.status, 0, "\(options): \(r.stderr)")
            XCTAssertEqual(r.stdout, want, "\(options)")
        }
    }
}
