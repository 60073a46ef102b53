import XCTest

@testable import OCI

final class ValidationTests: XCTestCase {
    /// A valid spec to break one field at a time.
    private func base() -> Spec {
        var linux = Linux()
        linux.namespaces = [Namespace(type: .pid), Namespace(type: .mount), Namespace(type: .uts)]
        return Spec(
            process: Process(args: ["sh"], env: ["PATH=/bin", "EMPTY="], cwd: "/"),
            root: Root(path: "rootfs"), hostname: "h",
            mounts: [Mount(destination: "/proc", type: "proc", source: "proc")], linux: linux)
    }

    private func error(_ change: (inout Spec) -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        var spec = base()
        change(&spec)
        do {
            try spec.validate()
            XCTFail("validated", file: file, line: line)
            return ""
        } catch {
            return error.description
        }
    }

    private func valid(_ change: (inout Spec) -> Void, file: StaticString = #filePath, line: UInt = #line) {
        var spec = base()
        change(&spec)
        XCTAssertNoThrow(try spec.validate(), file: file, line: line)
    }

    func testBaseIsValid() { valid { _ in } }

    func testTopLevel() {
        XCTAssertEqual(error { $0.ociVersion = "" }, "ociVersion: must not be empty")
        XCTAssertEqual(error { $0.root = nil }, "root: required field missing")
        XCTAssertEqual(error { $0.root?.path = "" }, "root.path: must not be empty")
        valid { $0.process = nil }
    }

    func testProcess() {
        XCTAssertEqual(error { $0.process?.args = [] }, "process.args: must not be empty")
        XCTAssertEqual(error { $0.process?.args = nil }, "process.args: must not be empty")
        XCTAssertEqual(error { $0.process?.cwd = "work" }, "process.cwd: must be an absolute path")
        XCTAssertEqual(error { $0.process?.cwd = "" }, "process.cwd: must be an absolute path")
        XCTAssertEqual(
            error { $0.process?.env = ["A=1", "B"] },
            #"process.env[1]: invalid environment variable "B": missing '='"#)
        XCTAssertEqual(
            error { $0.process?.env = ["=x"] },
            #"process.env[0]: invalid environment variable "=x": empty name"#)
        XCTAssertEqual(
            error { $0.process?.oomScoreAdj = 1001 },
            "process.oomScoreAdj: 1001 is out of range (must be between -1000 and 1000)")
        valid { $0.process?.oomScoreAdj = -1000 }
    }

    func testRlimits() {
        XCTAssertEqual(
            error { $0.process?.rlimits = [Rlimit(type: "RLIMIT_FOO", hard: 1, soft: 1)] },
            #"process.rlimits[0].type: unknown rlimit "RLIMIT_FOO""#)
        XCTAssertEqual(
            error { $0.process?.rlimits = [Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 2048)] },
            "process.rlimits[0].soft: soft limit 2048 is greater than hard limit 1024")
        XCTAssertEqual(
            error {
                $0.process?.rlimits = [
                    Rlimit(type: "RLIMIT_NOFILE", hard: 1, soft: 1), Rlimit(type: "RLIMIT_CPU", hard: 1, soft: 1),
                    Rlimit(type: "RLIMIT_NOFILE", hard: 2, soft: 2),
                ]
            }, #"process.rlimits[2].type: duplicate rlimit "RLIMIT_NOFILE""#)
        valid { $0.process?.rlimits = knownRlimits.map { Rlimit(type: $0, hard: .max, soft: 0) } }
    }

    func testCapabilities() {
        // runtime-spec 1.2: capabilities the runtime cannot map are warnings at create, not config errors.
        valid { $0.process?.capabilities = Capabilities(bounding: ["CAP_KILL", "CAP_FOO"]) }
        valid { $0.process?.capabilities = Capabilities(ambient: ["kill"]) }
        valid { $0.process?.capabilities = Capabilities(bounding: knownCapabilities, effective: knownCapabilities) }
    }

    func testMountsAndHooks() {
        XCTAssertEqual(
            error {
                $0.mounts = [
                    Mount(destination: "/a"), Mount(destination: "/b"), Mount(destination: "d"), Mount(destination: ""),
                ]
            }, "mounts[3].destination: must not be empty")
        XCTAssertEqual(
            error {
                var h = Hooks()
                h.poststart = [Hook(path: "/ok"), Hook(path: "rel")]
                $0.hooks = h
            },
            "hooks.poststart[1].path: must be an absolute path")
        XCTAssertEqual(
            error {
                var h = Hooks()
                h.createRuntime = [Hook(path: "/ok", timeout: 0)]
                $0.hooks = h
            },
            "hooks.createRuntime[0].timeout: must be greater than zero")
        valid {
            var h = Hooks()
            h.prestart = [Hook(path: "/ok", timeout: 5)]
            $0.hooks = h
        }
    }

    /// A mount's own id mappings come in pairs, each range non-empty (config.md "Mounts").
    func testMountIDMappings() {
        let map = [IDMapping(containerID: 0, hostID: 1000, size: 10)]
        func mount(uid: [IDMapping]?, gid: [IDMapping]?) -> (inout Spec) -> Void {
            {
                var m = Mount(destination: "/m", type: "bind", source: "/s", options: ["bind", "idmap"])
                m.uidMappings = uid
                m.gidMappings = gid
                $0.mounts = [Mount(destination: "/a"), m]
            }
        }
        XCTAssertEqual(
            error(mount(uid: map, gid: nil)), "mounts[1].uidMappings: must be specified along with gidMappings")
        XCTAssertEqual(
            error(mount(uid: nil, gid: map)), "mounts[1].gidMappings: must be specified along with uidMappings")
        XCTAssertEqual(
            error(mount(uid: map, gid: [IDMapping(containerID: 0, hostID: 1, size: 0)])),
            "mounts[1].gidMappings[0].size: must be greater than zero")
        valid(mount(uid: map, gid: map))
        valid(mount(uid: nil, gid: nil))
    }

    func testNamespaces() {
        XCTAssertEqual(
            error { $0.linux?.namespaces?.append(Namespace(type: .pid)) },
            #"linux.namespaces[3].type: duplicate namespace "pid""#)
        XCTAssertEqual(
            error { $0.linux?.namespaces?.append(Namespace(type: .network, path: "netns")) },
            "linux.namespaces[3].path: must be an absolute path")
        XCTAssertEqual(
            error { $0.linux?.namespaces = [Namespace(type: .mount)] },
            "hostname: unable to set hostname without a private UTS namespace")
        XCTAssertEqual(
            error {
                $0.hostname = nil
                $0.domainname = "d"
                $0.linux?.namespaces = [Namespace(type: .mount)]
            },
            "domainname: unable to set domainname without a private UTS namespace")
        valid { $0.linux?.namespaces = [Namespace(type: .mount), Namespace(type: .uts, path: "/proc/1/ns/uts")] }
        valid {
            $0.hostname = nil
            $0.linux = nil
        }
        XCTAssertEqual(error { $0.linux = nil }, "hostname: unable to set hostname without a private UTS namespace")
    }

    func testUserNamespaceMappings() {
        let mapping = [IDMapping(containerID: 0, hostID: 1000, size: 1)]
        XCTAssertEqual(
            error { $0.linux?.uidMappings = mapping },
            "linux.uidMappings: user namespace mappings specified, but no user namespace is configured")
        XCTAssertEqual(
            error { $0.linux?.gidMappings = mapping },
            "linux.gidMappings: user namespace mappings specified, but no user namespace is configured")
        XCTAssertEqual(
            error { $0.linux?.namespaces?.append(Namespace(type: .user)) },
            "linux.uidMappings: a new user namespace requires uid mappings")
        XCTAssertEqual(
            error {
                $0.linux?.namespaces?.append(Namespace(type: .user))
                $0.linux?.uidMappings = mapping
            },
            "linux.gidMappings: a new user namespace requires gid mappings")
        XCTAssertEqual(
            error {
                $0.linux?.namespaces?.append(Namespace(type: .user))
                $0.linux?.uidMappings = mapping
                $0.linux?.gidMappings = [IDMapping(containerID: 0, hostID: 1, size: 0)]
            }, "linux.gidMappings[0].size: must be greater than zero")
        valid {
            $0.linux?.namespaces?.append(Namespace(type: .user))
            $0.linux?.uidMappings = mapping
            $0.linux?.gidMappings = mapping
        }
        valid { $0.linux?.namespaces?.append(Namespace(type: .user, path: "/proc/1/ns/user")) }
    }

    func testTimeOffsets() {
        XCTAssertEqual(
            error { $0.linux?.timeOffsets = ["monotonic": TimeOffset(secs: 1, nanosecs: nil)] },
            "linux.timeOffsets: time namespace offsets specified, but no time namespace is configured")
        XCTAssertEqual(
            error {
                $0.linux?.namespaces?.append(Namespace(type: .time))
                $0.linux?.timeOffsets = ["realtime": TimeOffset(secs: 1, nanosecs: nil)]
            }, #"linux.timeOffsets.realtime: unknown clock "realtime" (must be monotonic or boottime)"#)
        valid {
            $0.linux?.namespaces?.append(Namespace(type: .time))
            $0.linux?.timeOffsets = [
                "monotonic": TimeOffset(secs: -1, nanosecs: 5), "boottime": TimeOffset(secs: 2, nanosecs: nil),
            ]
        }
    }

    func testRootfsPropagation() {
        XCTAssertEqual(
            error { $0.linux?.rootfsPropagation = "shared-ish" },
            #"linux.rootfsPropagation: invalid value "shared-ish" (must be one of shared, slave, private, unbindable, rshared, rslave, rprivate, runbindable)"#
        )
        for mode in ["shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable", ""] {
            valid { $0.linux?.rootfsPropagation = mode }
        }
    }

    func testDevices() {
        XCTAssertEqual(
            error { $0.linux?.devices = [Device(type: "x", path: "/dev/x")] },
            #"linux.devices[0].type: invalid device type "x" (must be c, b, u or p)"#)
        XCTAssertEqual(
            error { $0.linux?.devices = [Device(type: "p", path: "dev/fifo")] },
            "linux.devices[0].path: must be an absolute path")
        XCTAssertEqual(
            error {
                $0.linux?.devices = [Device(type: "p", path: "/f"), Device(type: "c", path: "/dev/fuse", minor: 229)]
            },
            #"linux.devices[1].major: required for device type "c""#)
        XCTAssertEqual(
            error { $0.linux?.devices = [Device(type: "b", path: "/dev/sda", major: 8)] },
            #"linux.devices[0].minor: required for device type "b""#)
        valid {
            $0.linux?.devices = [Device(type: "p", path: "/f"), Device(type: "u", path: "/dev/u", major: 1, minor: 2)]
        }
    }

    func testSysctlAndPaths() {
        XCTAssertEqual(error { $0.linux?.sysctl = ["": "1"] }, "linux.sysctl: key must not be empty")
        valid {
            $0.linux?.namespaces?.append(Namespace(type: .network))
            $0.linux?.sysctl = ["net.ipv4.ip_forward": "1"]
        }
        XCTAssertEqual(
            error { $0.linux?.sysctl = ["net.ipv4.ip_forward": "1"] },
            #"linux.sysctl["net.ipv4.ip_forward"]: sysctl "net.ipv4.ip_forward" is not allowed in the host's network namespace"#
        )
        valid {
            $0.linux?.namespaces?.append(Namespace(type: .ipc))
            $0.linux?.sysctl = ["kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "9"]
        }
        XCTAssertEqual(
            error { $0.linux?.sysctl = ["kernel/sem": "1"] },
            #"linux.sysctl["kernel/sem"]: sysctl "kernel.sem" is not allowed in the host's ipc namespace"#)
        XCTAssertEqual(
            error { $0.linux?.sysctl = ["kernel.printk": "1"] },
            #"linux.sysctl["kernel.printk"]: sysctl "kernel.printk" is not in a separate kernel namespace"#)
        valid { $0.linux?.sysctl = ["kernel.domainname": "example.org"] }
        XCTAssertEqual(
            error { $0.linux?.sysctl = ["kernel.hostname": "h"] },
            #"linux.sysctl["kernel.hostname"]: sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field"#
        )
        XCTAssertEqual(
            error { $0.linux?.maskedPaths = ["/proc/kcore", "proc/keys"] },
            "linux.maskedPaths[1]: must be an absolute path")
        XCTAssertEqual(error { $0.linux?.readonlyPaths = ["sys"] }, "linux.readonlyPaths[0]: must be an absolute path")
        XCTAssertEqual(
            error {
                $0.linux?.namespaces = [Namespace(type: .uts)]
                $0.linux?.readonlyPaths = ["/proc/sys"]
            },
            "linux.readonlyPaths: unable to restrict sys entries without a private MNT namespace")
    }

    func testExecProcessPathPrefix() {
        let p = Process(args: [], cwd: "/")
        XCTAssertThrowsError(try p.validate(path: "")) { error in
            XCTAssertEqual((error as? OCIError)?.description, "args: must not be empty")
        }
    }
}
