import XCTest

@testable import OCI

final class DefaultSpecTests: XCTestCase {
    func testDefaultSpecMatchesRuncSpec() throws {
        let spec = Spec.defaultSpec(rootless: false)
        XCTAssertNoThrow(try spec.validate())
        XCTAssertEqual(spec.ociVersion, ociRuntimeSpecVersion)
        XCTAssertEqual(spec.root, Root(path: "rootfs", readonly: true))
        XCTAssertEqual(spec.hostname, "swiftlet")
        let process = try XCTUnwrap(spec.process)
        XCTAssertEqual(process.terminal, true)
        XCTAssertEqual(process.args, ["sh"])
        XCTAssertEqual(
            process.env, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"])
        XCTAssertEqual(process.cwd, "/")
        XCTAssertEqual(process.noNewPrivileges, true)
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        XCTAssertEqual(process.capabilities, Capabilities(bounding: caps, effective: caps, permitted: caps))
        XCTAssertEqual(process.rlimits, [Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)])
        XCTAssertEqual(
            spec.mounts?.map(\.destination),
            ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"])
        XCTAssertNil(spec.mounts?[0].options)
        XCTAssertEqual(spec.mounts?[2].options?.last, "gid=5")
        XCTAssertEqual(spec.linux?.namespaces?.map(\.type), [.pid, .network, .ipc, .uts, .mount, .cgroup])
        XCTAssertEqual(spec.linux?.resources?.devices, [DeviceCgroup(allow: false, access: "rwm")])
        XCTAssertEqual(spec.linux?.maskedPaths?.count, 11)
        XCTAssertEqual(spec.linux?.readonlyPaths?.count, 5)
        XCTAssertNil(spec.linux?.uidMappings)
        XCTAssertEqual(Spec.defaultSpec(rootless: false, cgroupNamespace: false).linux?.namespaces?.count, 5)

        let text = encodeJSON(spec, pretty: true)
        XCTAssertTrue(
            text.hasPrefix(
                "{\n  \"ociVersion\": \"1.3.0\",\n  \"process\": {\n    \"terminal\": true,\n    \"user\": {\n      "
                    + "\"uid\": 0,\n      \"gid\": 0\n    },\n    \"args\": [\n      \"sh\"\n    ],"
            ), text)
        XCTAssertTrue(
            text.contains(
                "\"resources\": {\n      \"devices\": [\n        {\n          \"allow\": false,\n          "
                    + "\"access\": \"rwm\"\n        }\n      ]\n    }"
            ), text)
        XCTAssertEqual(try decodeJSON(Spec.self, from: Array(text.utf8)), spec)
    }

    func testRootlessDefaultSpec() throws {
        let spec = Spec.defaultSpec(rootless: true, uid: 1000, gid: 1001)
        XCTAssertNoThrow(try spec.validate())
        XCTAssertEqual(spec.linux?.namespaces?.map(\.type), [.pid, .ipc, .uts, .mount, .cgroup, .user])
        XCTAssertEqual(spec.linux?.uidMappings, [IDMapping(containerID: 0, hostID: 1000, size: 1)])
        XCTAssertEqual(spec.linux?.gidMappings, [IDMapping(containerID: 0, hostID: 1001, size: 1)])
        XCTAssertNil(spec.linux?.resources)
        let sys = try XCTUnwrap(spec.mounts?.first { $0.destination == "/sys" })
        XCTAssertEqual(
            sys,
            Mount(
                destination: "/sys", type: "none", source: "/sys",
                options: ["rbind", "nosuid", "noexec", "nodev", "ro"]))
        let pts = try XCTUnwrap(spec.mounts?.first { $0.destination == "/dev/pts" })
        XCTAssertEqual(pts.options, ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"])
        XCTAssertNil(spec.mounts?[0].options)
        XCTAssertEqual(try decodeJSON(Spec.self, from: Array(encodeJSON(spec).utf8)), spec)
    }

    func testFeatures() throws {
        let features = Features.current(mountOptions: ["bind", "rbind", "ro"])
        let text = encodeJSON(features, pretty: true)
        guard case .object(let o) = try JSONValue.parse(text) else { return XCTFail("not an object") }
        XCTAssertEqual(
            o.keys,
            [
                "ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations",
                "potentiallyUnsafeConfigAnnotations",
            ])
        XCTAssertEqual(o["ociVersionMin"], .string("1.0.0"))
        XCTAssertEqual(o["ociVersionMax"], .string("1.3.0"))
        XCTAssertEqual(o["mountOptions"], .array([.string("bind"), .string("rbind"), .string("ro")]))
        XCTAssertEqual(o["hooks"], .array(knownHooks.map { .string($0) }))
        guard case .object(let linux)? = o["linux"] else { return XCTFail("no linux") }
        XCTAssertEqual(
            linux.keys,
            [
                "namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux",
                "intelRdt", "mountExtensions", "netDevices", "memoryPolicy",
            ])
        XCTAssertEqual(linux["capabilities"], .array(knownCapabilities.map { .string($0) }))
        XCTAssertEqual(linux["seccomp"], .object(["enabled": .bool(false)]))
        XCTAssertEqual(linux["mountExtensions"], .object(["idmap": .object(["enabled": .bool(true)])]))
        XCTAssertEqual(
            linux["cgroup"],
            .object([
                "v1": .bool(false), "v2": .bool(false), "systemd": .bool(false),
                "systemdUser": .bool(false), "rdma": .bool(false),
            ]))
        XCTAssertEqual(
            linux["memoryPolicy"],
            .object([
                "modes": .array(memoryPolicyModes.map { .string($0.name) }),
                "flags": .array(memoryPolicyFlags.map { .string($0.name) }),
            ]))
        XCTAssertEqual(o["annotations"], .object(["io.github.swiftlet.version": .string(swiftletVersion)]))
    }

    func testNameTables() {
        XCTAssertEqual(knownCapabilities.count, 41)
        XCTAssertEqual(Set(knownCapabilities).count, 41)
        XCTAssertEqual(knownCapabilities.first, "CAP_CHOWN")
        XCTAssertEqual(knownCapabilities[21], "CAP_SYS_ADMIN")
        XCTAssertEqual(knownCapabilities.last, "CAP_CHECKPOINT_RESTORE")
        XCTAssertEqual(knownRlimits.count, 16)
        XCTAssertEqual(knownRlimits[7], "RLIMIT_NOFILE")
        XCTAssertEqual(knownRlimits.last, "RLIMIT_RTTIME")
    }
}
