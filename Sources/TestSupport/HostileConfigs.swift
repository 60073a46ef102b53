import Foundation

/// A corpus of malformed and hostile configs (issue 7): each must be refused with a clear error
/// naming the field (the first element), a normal exit status, and nothing left behind. Each edits
/// `defaultConfig()`. RuntimeCoreTests.HostileConfigPlanTests refuses them in-process (`loadSpec` +
/// `ContainerPlan`) but for `refusedLater`; IntegrationTests.HostileConfigTests runs those, and a
/// sample of the rest, through the binary; ConfigFuzzTests seeds its mutations with all of them.
public enum HostileConfigs {
    public typealias Edit = (inout [String: Any]) -> Void

    static func process(_ f: @escaping (inout [String: Any]) -> Void) -> Edit {
        { spec in
            var p = spec["process"] as? [String: Any] ?? [:]
            f(&p)
            spec["process"] = p
        }
    }
    static func linux(_ f: @escaping (inout [String: Any]) -> Void) -> Edit {
        { spec in
            var l = spec["linux"] as? [String: Any] ?? [:]
            f(&l)
            spec["linux"] = l
        }
    }
    static func mount(_ m: [String: Any]) -> Edit {
        { spec in spec["mounts"] = (spec["mounts"] as? [[String: Any]] ?? []) + [m] }
    }

    nonisolated(unsafe) public static let corpus: [(field: String, edit: Edit)] = [
        ("ociVersion", { $0["ociVersion"] = 12 }),
        ("root", { $0["root"] = "rootfs" }),
        ("root.path", { $0["root"] = ["path": ""] }),
        ("root.path", { $0["root"] = ["path": "/nonexistent"] }),
        ("root.path", { $0["root"] = ["path": "/etc/passwd"] }),
        ("process.args", process { $0["args"] = "sh" }),
        ("process.args", process { $0["args"] = [] as [String] }),
        ("process.args[0]", process { $0["args"] = [7] }),
        ("process.cwd", process { $0["cwd"] = "relative/dir" }),
        ("process.cwd", process { $0.removeValue(forKey: "cwd") }),
        ("process.user.uid", process { $0["user"] = ["uid": -1, "gid": 0] }),
        ("process.user.uid", process { $0["user"] = ["uid": 99_999_999_999, "gid": 0] }),
        ("process.user.gid", process { $0["user"] = ["uid": 0, "gid": "wheel"] }),
        ("process.user.additionalGids[1]", process { $0["user"] = ["uid": 0, "gid": 0, "additionalGids": [1, -5]] }),
        ("process.env[0]", process { $0["env"] = ["NOEQUALS"] }),
        ("process.env[0]", process { $0["env"] = ["=value"] }),
        ("process.rlimits[0].type", process { $0["rlimits"] = [["type": "RLIMIT_BOGUS", "soft": 1, "hard": 1]] }),
        ("process.rlimits[0]", process { $0["rlimits"] = [["type": "RLIMIT_NOFILE", "soft": 10, "hard": 5]] }),
        (
            "process.rlimits[1].type",
            process {
                $0["rlimits"] = [
                    ["type": "RLIMIT_CORE", "soft": 0, "hard": 0], ["type": "RLIMIT_CORE", "soft": 0, "hard": 0],
                ]
            }
        ),
        ("process.capabilities", process { $0["capabilities"] = ["bounding": "CAP_KILL"] }),
        ("process.oomScoreAdj", process { $0["oomScoreAdj"] = 5000 }),
        ("process.terminal", process { $0["terminal"] = "yes" }),
        ("process.consoleSize.height", process { $0["consoleSize"] = ["height": -1, "width": 80] }),
        (
            "linux.namespaces[5].type",
            linux { $0["namespaces"] = ($0["namespaces"] as? [[String: Any]] ?? []) + [["type": "bogus"]] }
        ),
        (
            "linux.namespaces[5].type",
            linux { $0["namespaces"] = ($0["namespaces"] as? [[String: Any]] ?? []) + [["type": "pid"]] }
        ),
        (
            "linux.namespaces[5].path",
            linux {
                $0["namespaces"] =
                    ($0["namespaces"] as? [[String: Any]] ?? []) + [["type": "cgroup", "path": "relative/ns"]]
            }
        ),
        ("linux.namespaces", linux { $0["namespaces"] = "pid" }),
        ("linux.uidMappings", linux { $0["uidMappings"] = [["containerID": 0, "hostID": 1000, "size": 1]] }),
        (
            "linux.uidMappings[0].size",
            linux {
                $0["namespaces"] = ($0["namespaces"] as? [[String: Any]] ?? []) + [["type": "user"]]
                $0["uidMappings"] = [["containerID": 0, "hostID": 1000, "size": 0]]
                $0["gidMappings"] = [["containerID": 0, "hostID": 1000, "size": 1]]
            }
        ),
        ("linux.devices[0]", linux { $0["devices"] = [["type": "c", "path": "/dev/x"]] }),
        ("linux.devices[0].type", linux { $0["devices"] = [["type": "z", "path": "/dev/x", "major": 1, "minor": 1]] }),
        ("linux.devices[0].path", linux { $0["devices"] = [["type": "c", "path": "dev/x", "major": 1, "minor": 1]] }),
        (
            "linux.devices[0].major",
            linux { $0["devices"] = [["type": "c", "path": "/dev/x", "major": "one", "minor": 1]] }
        ),
        (
            "linux.devices[0].major",
            linux { $0["devices"] = [["type": "c", "path": "/dev/x", "major": -1, "minor": 4]] }
        ),
        (
            "linux.devices[0].minor",
            linux { $0["devices"] = [["type": "c", "path": "/dev/x", "major": 1, "minor": 4_294_967_296]] }
        ),
        ("linux.rootfsPropagation", linux { $0["rootfsPropagation"] = "sideways" }),
        ("linux.sysctl", linux { $0["sysctl"] = ["": "1"] }),
        ("linux.sysctl", linux { $0["sysctl"] = ["kernel.nonexistent_knob_xyz": "1"] }),
        ("linux.maskedPaths[0]", linux { $0["maskedPaths"] = ["proc/kcore"] }),
        ("linux.readonlyPaths", linux { $0["readonlyPaths"] = "/proc/sys" }),
        ("linux.resources.memory.limit", linux { $0["resources"] = ["memory": ["limit": "lots"]] }),
        ("linux.resources.pids.limit", linux { $0["resources"] = ["pids": ["limit": 1.5]] }),
        (
            "linux.resources.devices[0].type",
            linux { $0["resources"] = ["devices": [["allow": false, "type": "x", "access": "rwm"]]] }
        ),
        ("linux.resources.unified", linux { $0["resources"] = ["unified": ["../escape": "1"]] }),
        (
            "linux.seccomp.syscalls[0].action",
            linux {
                $0["seccomp"] = [
                    "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [["names": ["read"], "action": "SCMP_ACT_DANCE"]],
                ]
            }
        ),
        ("linux.seccomp.defaultAction", linux { $0["seccomp"] = ["syscalls": [] as [Any]] }),
        ("mounts[", mount(["destination": "", "type": "tmpfs", "source": "tmpfs"])),
        (
            "mounts[",
            mount(["destination": "/x", "type": "bind", "source": "/nonexistent/source", "options": ["bind"]])
        ),
        ("mounts[", mount(["destination": "/proc", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]])),
        ("hooks.prestart[0].path", { $0["hooks"] = ["prestart": [["path": "relative-hook"]]] }),
        ("hooks.createRuntime[0]", { $0["hooks"] = ["createRuntime": [["path": "/nonexistent/hook"]]] }),
        ("hooks.prestart[0].timeout", { $0["hooks"] = ["prestart": [["path": "/bin/true", "timeout": -3]]] }),
        (
            "hostname",
            { spec in
                spec["hostname"] = "box"
                spec[path: "linux.namespaces"] = (spec[path: "linux.namespaces"] as? [[String: Any]] ?? [])
                    .filter { ($0["type"] as? String) != "uts" }
            }
        ),
    ]

    /// Indexes into `corpus` of the configs a plan accepts and only creating the container refuses
    /// (the kernel, the rootfs or a hook has the last word).
    public static let refusedLater: Set<Int> = [42, 43, 50]  // cgroup resources; a hook that does not exist
}
