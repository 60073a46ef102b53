// The features document (runtime-spec features.md, features-linux.md) and the name tables it lists.

/// Swiftlet's own version, as `--version` and the features annotations report it.
public let swiftletVersion = "0.1.0"

/// The Linux capability names, in kernel order (CAP_CHOWN is 0, CAP_CHECKPOINT_RESTORE is 40).
public let knownCapabilities: [String] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

/// The Linux rlimit names, in kernel order (RLIMIT_CPU is 0, RLIMIT_RTTIME is 15).
public let knownRlimits: [String] = [
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
    "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
]

/// The hook names of config.md, in lifecycle order.
public let knownHooks: [String] = [
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
]

/// linux.memoryPolicy's modes and flags (config-linux.md "Memory policy") with their kernel values
/// (linux/mempolicy.h): the one table the runtime applies and `features` lists.
public let memoryPolicyModes: [(name: String, value: Int32)] = [
    ("MPOL_DEFAULT", 0), ("MPOL_PREFERRED", 1), ("MPOL_BIND", 2), ("MPOL_INTERLEAVE", 3), ("MPOL_LOCAL", 4),
    ("MPOL_PREFERRED_MANY", 5), ("MPOL_WEIGHTED_INTERLEAVE", 6),
]
public let memoryPolicyFlags: [(name: String, value: Int32)] = [
    ("MPOL_F_NUMA_BALANCING", 1 << 13), ("MPOL_F_RELATIVE_NODES", 1 << 14), ("MPOL_F_STATIC_NODES", 1 << 15),
]

/// Annotations of config.json that change what swiftlet does (features.md): a caller that passes
/// annotations through from untrusted users should filter these.
public let knownUnsafeConfigAnnotations: [String] = ["org.criu.config"]

/// What `swiftlet features` prints.
public struct Features: Encodable, Sendable, Equatable {
    public var ociVersionMin: String
    public var ociVersionMax: String
    public var hooks: [String]?
    public var mountOptions: [String]?
    public var linux: LinuxFeatures?
    public var annotations: [String: String]?
    public var potentiallyUnsafeConfigAnnotations: [String]?

    public struct LinuxFeatures: Encodable, Sendable, Equatable {
        public var namespaces: [String]?
        public var capabilities: [String]?
        public var cgroup: Cgroup?
        public var seccomp: Seccomp?
        public var apparmor: Enabled?
        public var selinux: Enabled?
        public var intelRdt: IntelRdt?
        public var mountExtensions: MountExtensions?
        public var netDevices: Enabled?
        public var memoryPolicy: MemoryPolicy?
    }

    public struct IntelRdt: Encodable, Sendable, Equatable {
        public var enabled: Bool?
        public var schemata: Bool?
        public var monitoring: Bool?
    }

    public struct MemoryPolicy: Encodable, Sendable, Equatable {
        public var modes: [String]?
        public var flags: [String]?
        public init(modes: [String]?, flags: [String]?) {
            self.modes = modes
            self.flags = flags
        }
    }

    public struct Cgroup: Encodable, Sendable, Equatable {
        public var v1: Bool?
        public var v2: Bool?
        public var systemd: Bool?
        public var systemdUser: Bool?
        public var rdma: Bool?
    }

    public struct Seccomp: Encodable, Sendable, Equatable {
        public var enabled: Bool?
        public var actions: [String]?
        public var operators: [String]?
        public var archs: [String]?
        public var knownFlags: [String]?
        public var supportedFlags: [String]?
        public init(
            enabled: Bool?, actions: [String]? = nil, operators: [String]? = nil, archs: [String]? = nil,
            knownFlags: [String]? = nil, supportedFlags: [String]? = nil
        ) {
            self.enabled = enabled
            self.actions = actions
            self.operators = operators
            self.archs = archs
            self.knownFlags = knownFlags
            self.supportedFlags = supportedFlags
        }
    }

    public struct Enabled: Encodable, Sendable, Equatable {
        public var enabled: Bool?
    }

    public struct MountExtensions: Encodable, Sendable, Equatable {
        public var idmap: Enabled?
    }

    /// The features of this build on this host (each true only where it works here: Spec/cli.md).
    /// `mountOptions` and `memoryPolicy` depend on the host kernel, `seccomp` on libseccomp and the
    /// kernel, `intelRdt` on a mounted resctrl, `rdma` on the rdma controller, so the caller supplies them.
    public static func current(
        mountOptions: [String], seccomp: Seccomp = Seccomp(enabled: false),
        appArmor: Bool = false, seLinux: Bool = false,
        cgroupV1: Bool = false, cgroupV2: Bool = false, rdma: Bool = false, intelRdt: Bool = false,
        memoryPolicy: MemoryPolicy = MemoryPolicy(
            modes: memoryPolicyModes.map(\.name),
            flags: memoryPolicyFlags.map(\.name))
    ) -> Features {
        Features(
            ociVersionMin: "1.0.0",
            ociVersionMax: ociRuntimeSpecVersion,
            hooks: knownHooks,
            mountOptions: mountOptions,
            linux: LinuxFeatures(
                namespaces: NamespaceType.allCases.map(\.rawValue),
                capabilities: knownCapabilities,
                cgroup: Cgroup(v1: cgroupV1, v2: cgroupV2, systemd: false, systemdUser: false, rdma: rdma),
                seccomp: seccomp,
                apparmor: Enabled(enabled: appArmor),
                selinux: Enabled(enabled: seLinux),
                intelRdt: IntelRdt(enabled: intelRdt, schemata: intelRdt, monitoring: intelRdt),
                mountExtensions: MountExtensions(idmap: Enabled(enabled: true)),
                netDevices: Enabled(enabled: true),
                memoryPolicy: memoryPolicy),
            annotations: ["io.github.swiftlet.version": swiftletVersion],
            potentiallyUnsafeConfigAnnotations: knownUnsafeConfigAnnotations)
    }
}
