import Foundation
import Glibc
import LinuxSystem
import TestSupport
import XCTest

/// Id-mapped mounts of filesystems other than binds (runtime-spec 1.2 `idmap`/`ridmap`, as crun 1.9+
/// does): the runtime creates the filesystem in the initial user namespace, id-maps it and hands it
/// to init. tmpfs can be id-mapped from Linux 6.3; on older kernels (the 6.1 qemu VM) the config is
/// refused naming the field. runc 1.3 refuses every non-bind id-mapped mount.
final class IDMappedFilesystemTests: ContainerTestCase {
    func tmpfsMount(_ options: [String], mappings hostID: Int? = nil) -> (inout [String: Any]) -> Void {
        { spec in
            var m: [String: Any] = ["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": options]
            if let hostID {
                m["uidMappings"] = [["containerID": 0, "hostID": hostID, "size": 65536]]
                m["gidMappings"] = [["containerID": 0, "hostID": hostID, "size": 65536]]
            }
            var mounts = spec["mounts"] as? [[String: Any]] ?? []
            mounts.append(m)
            spec["mounts"] = mounts
        }
    }

    /// Starts `sleep` with `edit`, runs `probe` in it with exec, and returns exec's output and the
    /// host's view (uid:gid) of `outside` under the container's root; nil when the runtime refused
    /// the config, which must then be a clear error that left nothing behind.
    func idmappedTmpfs(_ edit: @escaping (inout [String: Any]) -> Void, probe: String, outside: String) throws -> (
        String, String
    )? {
        let id = "idt\(UInt32.random(in: 0...UInt32.max))"
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            edit(&spec)
        }
        let created = sl(["run", "-d", "--bundle", b, id])
        if !Kernel.atLeast(6, 3) || isRunc {
            XCTAssertNotEqual(
                created.status, 0, "an id-mapped tmpfs is refused (kernel \(Kernel.release), \(Runtime.binary))")
            if isSwiftlet {
                XCTAssertTrue(
                    created.stderr.contains("mounts[") && created.stderr.contains("id-mapped tmpfs needs Linux 6.3"),
                    created.stderr)
            }
            if isRunc { XCTAssertTrue(created.stderr.contains("only supported for bind-mounts"), created.stderr) }
            assertNothingLeft(id, bundle: b)
            return nil
        }
        XCTAssertEqual(created.status, 0, created.stderr)
        defer { sl(["delete", "-f", id]) }
        let r = sl(["exec", id, "sh", "-c", probe])
        XCTAssertEqual(r.status, 0, r.stderr)
        let state = try JSONSerialization.jsonObject(with: Data(sl(["state", id]).stdout.utf8)) as? [String: Any]
        let pid = state?["pid"] as? Int ?? 0
        var st = stat()
        XCTAssertEqual(stat("/proc/\(pid)/root\(outside)", &st), 0, "stat \(outside) from the host")
        return (r.stdout, "\(st.st_uid):\(st.st_gid)")
    }

    // Mount points the test rootfs already has (/tmp, /home, /root, /var): the shared rootfs is not
    // written to.
    /// The tmpfs's mountinfo options: the kernel marks an id-mapped mount `idmapped`.
    let mountOptions = "awk '$5 == \"/tmp\" { print $6 }' /proc/self/mountinfo"

    /// Per-mount mappings in a container without a user namespace: the tmpfs root (0:0 on the
    /// filesystem) shows as 1000:1000 inside and from the host, and the kernel marks it id-mapped.
    func testIdmappedTmpfsWithOwnMappings() throws {
        guard
            let (inside, outside) = try idmappedTmpfs(
                tmpfsMount(["idmap", "size=1m"], mappings: 1000),
                probe: "stat -c '%u:%g' /tmp; \(mountOptions); grep ' /tmp ' /proc/mounts",
                outside: "/tmp")
        else { return }
        let lines = inside.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, inside)
        XCTAssertEqual(lines.first, "1000:1000")
        XCTAssertTrue(lines.dropFirst().first?.split(separator: ",").contains("idmapped") ?? false, inside)
        // crun 1.28 drops the filesystem's options of an id-mapped mount; swiftlet passes them on.
        if isSwiftlet { XCTAssertTrue(lines.last?.contains("size=1024k") ?? false, inside) }
        XCTAssertEqual(outside, "1000:1000")
    }

    /// `idmap` without mappings in a user-namespaced container (0 -> 100000): the container's
    /// mappings. Its root owns the tmpfs and what it creates there; the host sees 100000.
    func testIdmapTmpfsTakesContainerMappings() throws {
        let edit = { (spec: inout [String: Any]) in
            ContainerTestCase.userNamespace()(&spec)
            self.tmpfsMount(["idmap"])(&spec)
        }
        guard
            let (inside, outside) = try idmappedTmpfs(
                edit, probe: "touch /tmp/f && stat -c '%u:%g' /tmp /tmp/f; \(mountOptions)",
                outside: "/tmp/f")
        else { return }
        let lines = inside.split(separator: "\n").map(String.init)
        XCTAssertEqual(Array(lines.prefix(2)), ["0:0", "0:0"], inside)
        XCTAssertTrue(lines.last?.split(separator: ",").contains("idmapped") ?? false, inside)
        XCTAssertEqual(outside, "100000:100000")
    }

    /// `ridmap` on a new filesystem: there are no submounts, so it maps like `idmap`.
    func testRidmapTmpfs() throws {
        guard
            let (inside, outside) = try idmappedTmpfs(
                tmpfsMount(["ridmap"], mappings: 2000),
                probe: "stat -c '%u:%g' /tmp; \(mountOptions)", outside: "/tmp")
        else { return }
        XCTAssertTrue(inside.hasPrefix("2000:2000\n") && inside.contains("idmapped"), inside)
        XCTAssertEqual(outside, "2000:2000")
    }

    /// Hostile id-mapped mounts: each refused with an error naming the mount, nothing left behind.
    func testHostileIdmappedMountsAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("idmbad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        func add(_ m: [String: Any]) -> (inout [String: Any]) -> Void {
            { spec in
                var mounts = spec["mounts"] as? [[String: Any]] ?? []
                mounts.append(m)
                spec["mounts"] = mounts
            }
        }
        let map = [["containerID": 0, "hostID": 1000, "size": 65536]]
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            // No user namespace and no mappings of its own (config.md: an error MUST be returned).
            (
                "needs uidMappings and gidMappings",
                add(["destination": "/home", "type": "bind", "source": dir, "options": ["bind", "idmap"]])
            ),
            (
                "needs uidMappings and gidMappings",
                add(["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]])
            ),
            // uidMappings without gidMappings (config.md: MUST be specified together).
            (
                ".uidMappings: must be specified along with gidMappings",
                add([
                    "destination": "/home", "type": "bind", "source": dir, "options": ["bind", "idmap"],
                    "uidMappings": map,
                ])
            ),
            // A filesystem bound to the runtime's namespaces, and one the kernel cannot id-map.
            (
                "id-mapped proc mounts are not supported",
                add([
                    "destination": "/root", "type": "proc", "source": "proc", "options": ["idmap"], "uidMappings": map,
                    "gidMappings": map,
                ])
            ),
            (
                "does not support id-mapped mounts",
                add([
                    "destination": "/var", "type": "ramfs", "source": "ramfs", "options": ["idmap"], "uidMappings": map,
                    "gidMappings": map,
                ])
            ),
        ]
        for (want, edit) in cases {
            let id = "idbad\(UInt32.random(in: 0...UInt32.max))"
            let b = try bundle(edit)
            let r = sl(["create", "--bundle", b, id])
            XCTAssertNotEqual(r.status, 0, "\(want): \(r.stdout)")
            if isSwiftlet {
                XCTAssertEqual(r.status, 1)
                XCTAssertTrue(r.stderr.contains("mounts[") && r.stderr.contains(want), "\(want): \(r.stderr)")
            }
            assertNothingLeft(id, bundle: b)
        }
    }
}
