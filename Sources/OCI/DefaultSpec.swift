// The starter config.json that `swiftlet spec` writes: the same as `runc spec` (runc's
// libcontainer/specconv Example and ToRootless), except that the hostname is "swiftlet".

extension Spec {
    /// The default spec; `rootless` gives the `--rootless` variant, mapping container root to `uid`/`gid`.
    /// `cgroupNamespace` adds a cgroup namespace, as runc does on a cgroup v2 (unified) host.
    public static func defaultSpec(
        rootless: Bool, uid: UInt32 = 0, gid: UInt32 = 0,
        cgroupNamespace: Bool = true
    ) -> Spec {
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        let process = Process(
            terminal: true,
            user: User(uid: 0, gid: 0),
            args: ["sh"],
            env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            cwd: "/",
            capabilities: Capabilities(bounding: caps, effective: caps, permitted: caps),
            rlimits: [Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)],
            noNewPrivileges: true)

        var mounts = [
            Mount(destination: "/proc", type: "proc", source: "proc"),
            Mount(
                destination: "/dev", type: "tmpfs", source: "tmpfs",
                options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Mount(
                destination: "/dev/pts", type: "devpts", source: "devpts",
                options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
            Mount(
                destination: "/dev/shm", type: "tmpfs", source: "shm",
                options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            Mount(
                destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
            Mount(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]),
            Mount(
                destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
                options: ["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ]

        var linux = Linux()
        linux.maskedPaths = [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/sys/devices/virtual/tpm",
        ]
        linux.readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        var namespaces: [NamespaceType] = [.pid, .network, .ipc, .uts, .mount]
        if cgroupNamespace { namespaces.append(.cgroup) }

        if rootless {
            // No network namespace (no way to connect it unprivileged), a user namespace mapping root to
            // the caller, /sys bind-mounted (sysfs can't be mounted without owning the network namespace),
            // no uid=/gid= mount options, and no cgroup resources.
            namespaces.removeAll { $0 == .network }
            namespaces.append(.user)
            linux.uidMappings = [IDMapping(containerID: 0, hostID: uid, size: 1)]
            linux.gidMappings = [IDMapping(containerID: 0, hostID: gid, size: 1)]
            mounts = mounts.map { mount in
                if mount.destination == "/sys" {
                    return Mount(
                        destination: "/sys", type: "none", source: "/sys",
                        options: ["rbind", "nosuid", "noexec", "nodev", "ro"])
                }
                var m = mount
                m.options = m.options?.filter { !$0.hasPrefix("uid=") && !$0.hasPrefix("gid=") }
                return m
            }
        } else {
            var resources = Resources()
            resources.devices = [DeviceCgroup(allow: false, access: "rwm")]
            linux.resources = resources
        }
        linux.namespaces = namespaces.map { Namespace(type: $0) }

        return Spec(
            ociVersion: ociRuntimeSpecVersion, process: process, root: Root(path: "rootfs", readonly: true),
            hostname: "swiftlet", mounts: mounts, linux: linux)
    }
}
