import CLinux
import Glibc
import OCI
import XCTest

@testable import RuntimeCore

/// The plans create and exec make before they fork, checked without root and without a container:
/// which namespaces are made by clone and which need a middle process, id maps, hostile configs that
/// need no kernel, exec's overrides.
final class PlanTests: TempDirTestCase {
    override class var dirPrefix: String { "plan-rootfs" }
    var rootfs: String { dir }

    func spec(_ namespaces: [Namespace], edit: (inout Spec) -> Void = { _ in }) -> Spec {
        var linux = Linux()
        linux.namespaces = namespaces
        var s = Spec(process: Process(args: ["/bin/true"], cwd: "/"), root: Root(path: rootfs), linux: linux)
        edit(&s)
        return s
    }

    func plan(_ s: Spec) throws -> ContainerPlan {
        let p = try ContainerPlan(
            spec: s, specJSON: .object([:]), id: "c1", bundle: "/", noPivot: false,
            noNewKeyring: false, preserveFds: 0, listenFds: 0, cgroupBinds: [])
        addTeardownBlock { p.closeFds() }
        return p
    }

    // MARK: namespaces

    func testEveryCombinationOfNewNamespacesIsOneClone() throws {
        let creatable: [NamespaceType] = [.pid, .network, .mount, .ipc, .uts, .user, .cgroup]
        for mask in 0..<(1 << creatable.count) {
            let types = creatable.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element)
            let p = try plan(
                spec(types.map { Namespace(type: $0) }) { s in
                    if types.contains(.user) {
                        s.linux?.uidMappings = [IDMapping(containerID: 0, hostID: 100000, size: 65536)]
                        s.linux?.gidMappings = [IDMapping(containerID: 0, hostID: 100000, size: 65536)]
                    }
                })
            let ns = p.namespaces
            XCTAssertEqual(ns.newUser, types.contains(.user), "\(types)")
            XCTAssertEqual(ns.newCgroup, types.contains(.cgroup), "\(types)")
            // The cgroup namespace is never in the clone flags: init unshares it inside its cgroup.
            XCTAssertEqual(ns.newFlags & SL_CLONE_NEWCGROUP, 0)
            var expected: Int32 = 0
            for t in types where t != .user && t != .cgroup { expected |= NamespacePlan.flag(t) }
            XCTAssertEqual(ns.newFlags, expected, "\(types)")
            XCTAssertEqual(ns.cloneFlags, expected | (types.contains(.user) ? SL_CLONE_NEWUSER : 0), "\(types)")
            XCTAssertTrue(ns.join.isEmpty)
        }
    }

    func testJoinedUserOrPidNamespaceOrTimeOffsetsNeedAMiddleProcess() throws {
        let joinUser = try plan(spec([Namespace(type: .user, path: "/proc/self/ns/user"), Namespace(type: .mount)]))
        XCTAssertNil(joinUser.namespaces.cloneFlags)
        let joinPid = try plan(spec([Namespace(type: .pid, path: "/proc/self/ns/pid"), Namespace(type: .mount)]))
        XCTAssertNil(joinPid.namespaces.cloneFlags)
        let offset = try decodeJSON(TimeOffset.self, from: Array(#"{"secs": 10, "nanosecs": 5}"#.utf8))
        let time = try plan(
            spec([Namespace(type: .time), Namespace(type: .mount)]) { s in
                s.linux?.timeOffsets = ["monotonic": offset]
            })
        XCTAssertNil(time.namespaces.cloneFlags)
        XCTAssertEqual(time.namespaces.timeOffsets, "monotonic 10 5\n")
        // Joining a network namespace does not: it is entered before the clone's new namespaces apply.
        let joinNet = try plan(spec([Namespace(type: .network, path: "/proc/self/ns/net"), Namespace(type: .mount)]))
        XCTAssertEqual(joinNet.namespaces.cloneFlags, SL_CLONE_NEWNS)
    }

    func testJoinedUserNamespaceComesFirst() throws {
        let p = try plan(
            spec([
                Namespace(type: .network, path: "/proc/self/ns/net"),
                Namespace(type: .ipc, path: "/proc/self/ns/ipc"),
                Namespace(type: .user, path: "/proc/self/ns/user"),
            ]))
        XCTAssertEqual(p.namespaces.join.map(\.type), [.user, .network, .ipc])
        XCTAssertTrue(p.namespaces.join.allSatisfy { fcntl($0.fd, F_GETFD) >= 0 }, "join targets are open")
    }

    func testUnopenableNamespacePathIsRefusedAndNothingStaysOpen() throws {
        let before = openFdCount()
        XCTAssertThrowsError(
            try plan(
                spec([
                    Namespace(type: .ipc, path: "/proc/self/ns/ipc"),
                    Namespace(type: .network, path: "/nonexistent/ns"),
                ]))
        ) { e in
            XCTAssertTrue("\(e)".contains("linux.namespaces[1].path"), "\(e)")
        }
        XCTAssertEqual(openFdCount(), before)
    }

    func testIDMapsAreWrittenAsTheKernelReadsThem() throws {
        let p = try plan(
            spec([Namespace(type: .user)]) { s in
                s.linux?.uidMappings = [
                    IDMapping(containerID: 0, hostID: 1000, size: 1),
                    IDMapping(containerID: 1, hostID: 100000, size: 65535),
                ]
                s.linux?.gidMappings = [IDMapping(containerID: 0, hostID: 2000, size: 10)]
            })
        XCTAssertEqual(p.namespaces.uidMap, "0 1000 1\n1 100000 65535\n")
        XCTAssertEqual(p.namespaces.gidMap, "0 2000 10\n")
        XCTAssertEqual(hostID(of: 0, in: [IDMapping(containerID: 0, hostID: 1000, size: 1)]), 1000)
        XCTAssertEqual(hostID(of: 5, in: [IDMapping(containerID: 1, hostID: 100000, size: 65535)]), 100004)
        XCTAssertEqual(hostID(of: 7, in: nil), 7)
    }

    // MARK: hostile configs that need no kernel

    func testRootMustBeADirectory() throws {
        XCTAssertThrowsError(try plan(spec([]) { $0.root = Root(path: "/nonexistent-rootfs") })) { e in
            XCTAssertTrue("\(e)".contains("root.path"), "\(e)")
        }
        XCTAssertThrowsError(try plan(spec([]) { $0.root = nil })) { e in
            XCTAssertTrue("\(e)".contains("root"), "\(e)")
        }
    }

    func testEmptyArgsAreRefused() throws {
        XCTAssertThrowsError(try plan(spec([]) { $0.process?.args = [] })) { e in
            XCTAssertTrue("\(e)".contains("process.args"), "\(e)")
        }
    }

    func testUnknownPersonalityAndPropagationAreRefused() throws {
        let pdp11 = try decodeJSON(Personality.self, from: Array(#"{"domain": "PDP11"}"#.utf8))
        XCTAssertThrowsError(try plan(spec([]) { $0.linux?.personality = pdp11 })) { e in
            XCTAssertTrue("\(e)".contains("linux.personality.domain"), "\(e)")
        }
        XCTAssertThrowsError(try plan(spec([]) { $0.linux?.rootfsPropagation = "sideways" })) { e in
            XCTAssertTrue("\(e)".contains("linux.rootfsPropagation"), "\(e)")
        }
    }

    func testDeviceWithoutNumbersIsRefused() throws {
        XCTAssertThrowsError(try plan(spec([]) { $0.linux?.devices = [Device(type: "c", path: "/dev/x")] })) { e in
            XCTAssertTrue("\(e)".contains("linux.devices[0]"), "\(e)")
        }
    }

    func testUnknownRlimitIsRefused() throws {
        XCTAssertThrowsError(
            try plan(spec([]) { $0.process?.rlimits = [Rlimit(type: "RLIMIT_BOGUS", hard: 1, soft: 1)] })
        ) { e in
            XCTAssertTrue("\(e)".contains("process.rlimits[0]"), "\(e)")
        }
    }

    func testRlimitsAndUserAreResolved() throws {
        let p = try plan(
            spec([]) { s in
                s.process?.rlimits = [Rlimit(type: "RLIMIT_NOFILE", hard: 2048, soft: 1024)]
                s.process?.user = User(uid: 1000, gid: 100, umask: 0o027, additionalGids: [5, 6])
            })
        let proc = try XCTUnwrap(p.process)
        XCTAssertEqual(proc.rlimits.count, 1)
        XCTAssertEqual(proc.rlimits.first?.resource, SL_RLIMIT_NOFILE)
        XCTAssertEqual(proc.rlimits.first?.soft, 1024)
        XCTAssertEqual(proc.rlimits.first?.hard, 2048)
        XCTAssertEqual([proc.uid, proc.gid], [1000, 100])
        XCTAssertEqual(proc.additionalGids, [5, 6])
        XCTAssertEqual(proc.umask, 0o027)
    }

    func testSocketActivationFdsArePreservedAndAnnounced() throws {
        let p = try ContainerPlan(
            spec: spec([]), specJSON: .object([:]), id: "c1", bundle: "/", noPivot: false,
            noNewKeyring: true, preserveFds: 2, listenFds: 3, cgroupBinds: [])
        defer { p.closeFds() }
        XCTAssertEqual(p.preserveFds, 5)
        XCTAssertTrue(p.process?.env.contains("LISTEN_FDS=3") ?? false)
        XCTAssertTrue(p.process?.env.contains("LISTEN_PID=1") ?? false)
        XCTAssertNil(p.sessionKeyring)
    }

    // MARK: exec overrides

    func testExecOverridesReplaceArgsAppendEnvAndParseUser() throws {
        var o = ExecOverrides()
        o.args = ["/bin/sh", "-c", "id"]
        o.env = ["B=2"]
        o.cwd = "/tmp"
        o.user = "1000:100"
        o.additionalGids = ["7"]
        o.tty = true
        let base = Process(args: ["/init"], env: ["A=1"], cwd: "/")
        let p = try o.apply(to: base)
        XCTAssertEqual(p.args, ["/bin/sh", "-c", "id"])
        XCTAssertEqual(p.env, ["A=1", "B=2"])
        XCTAssertEqual(p.cwd, "/tmp")
        XCTAssertEqual(p.user.uid, 1000)
        XCTAssertEqual(p.user.gid, 100)
        XCTAssertEqual(p.user.additionalGids, [7])
        XCTAssertEqual(p.terminal, true)
    }

    func testExecOverridesRefuseMalformedUser() {
        for bad in ["root", "1000:x", "1:2:3", ""] {
            var o = ExecOverrides()
            o.args = ["/bin/true"]
            o.user = bad
            XCTAssertThrowsError(try o.apply(to: Process(args: ["/init"], cwd: "/")), bad)
        }
        var o = ExecOverrides()
        o.args = ["/bin/true"]
        o.additionalGids = ["wheel"]
        XCTAssertThrowsError(try o.apply(to: Process(args: ["/init"], cwd: "/")))
    }

    func openFdCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }
}
