// swift-tools-version:6.0
import PackageDescription

// Linux only. The shipped binaries avoid Foundation and swift-argument-parser (start-up cost, see
// Spec/architecture.md); build them with `--static-swift-stdlib` (Scripts/build.sh does).
// Both shipped binaries are static-PIE: fully static (no ld.so at start-up) and position independent, so
// ASLR covers their own text and data. swiftc's -static-executable passes clang `-static`; clang drops it
// when `-static-pie` is given too. lld links it (gold, swiftc's default, lacks --no-dynamic-linker).
// SwiftPM's `-rpath=$ORIGIN` must be left out (`--disable-local-rpath`, as Scripts/build.sh and
// Scripts/test.sh do): a static-PIE keeps its DT_RUNPATH and glibc's start-up crashes expanding $ORIGIN
// there (SIGSEGV before main). Relative relocations are RELR-packed (glibc >= 2.36): a 4 KB table instead
// of ~1 MB. Spec/performance.md has the cost (the monitor's private memory: 0.28 -> 0.8 MiB).
let staticPIE: [LinkerSetting] = [
    .unsafeFlags([
        "-static-executable", "-Xclang-linker", "-static-pie", "-use-ld=lld",
        "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
    ])
]

let package = Package(
    name: "Swiftlet",
    products: [
        .executable(name: "swiftlet", targets: ["swiftlet"]),
        .executable(name: "swiftlet-monitor", targets: ["swiftlet-monitor"]),
    ],
    targets: [
        // C: one-line syscall wrappers and constants Swift's Glibc module lacks. No logic.
        .target(name: "CLinux"),
        // C with logic, the one exception (Spec/mounts-and-security.md): an ELF constructor that
        // re-executes `swiftlet` from a read-only clone of its binary before the Swift runtime starts
        // (CVE-2019-5736). Linked into the swiftlet executable only.
        .target(name: "CExeSeal"),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

        // Pure Swift: JSON, the runtime-spec model (Codable), validation.
        .target(name: "OCI"),
        // Pure Swift: a runc-compatible argv parser.
        .target(name: "Argv"),
        // Typed syscall layer: errors carry operation, path and errno.
        .target(name: "LinuxSystem", dependencies: ["CLinux", "CCap"]),
        // Mount option table, safe path resolution inside the rootfs, rootfs set-up and pivot_root.
        .target(name: "Mounts", dependencies: ["LinuxSystem", "CLinux"]),
        // OCI seccomp profile -> libseccomp filter (built in the parent, loaded in the child).
        .target(name: "Seccomp", dependencies: ["CSeccomp", "OCI", "LinuxSystem", "CLinux"]),
        // cgroup v1, v2 and hybrid: placement, resources, freezer, stats (root path injectable for fixtures).
        .target(name: "Cgroups", dependencies: ["OCI", "LinuxSystem", "CLinux"]),
        // A small D-Bus client (no libdbus/libsystemd: the binaries are static): the systemd cgroup driver.
        .target(name: "DBus", dependencies: ["LinuxSystem"]),
        // CRIU's RPC (criu swrk): a hand-written protobuf wire codec for its messages (no Foundation).
        .target(name: "Checkpoint", dependencies: ["LinuxSystem", "CLinux"]),
        // Container store, process model, hooks, exec, kill, delete, checkpoint/restore.
        .target(
            name: "RuntimeCore",
            dependencies: ["OCI", "LinuxSystem", "Mounts", "Seccomp", "Cgroups", "Checkpoint", "DBus", "CLinux"]),
        // One file per verb, each a thin call into RuntimeCore.
        .target(
            name: "RuntimeCLI",
            dependencies: ["Argv", "OCI", "RuntimeCore", "LinuxSystem", "Seccomp", "Mounts", "Cgroups"]),
        // A fully static executable, like the monitor: start-up without ld.so (7 shared libraries,
        // symbol lookups, relocations) takes a third of the CPU (measured: `swiftlet --version` 1.6 vs
        // 4.8 ms, `exec` 8 vs 11.6 ms). Static-PIE, so ASLR covers its own text. No NSS (not used).
        .executableTarget(
            name: "swiftlet", dependencies: ["RuntimeCLI", "CExeSeal"],
            linkerSettings: staticPIE),
        // The per-container monitor (conmon's command line and protocol, plus a control API and probes).
        // Also the containerd runtime v2 shim (`containerd-shim-swiftlet-v2`, the monitor binary entered by
        // that name): ttrpc server and task service, protobuf through Checkpoint's wire codec.
        .target(
            name: "MonitorCore",
            dependencies: ["Argv", "OCI", "LinuxSystem", "Cgroups", "CLinux", "COpenSSL", "Checkpoint", "Mounts"]),
        // A fully static executable: a PIE monitor linked to glibc and libstdc++ keeps ~1.1 MiB of private
        // pages (relocations, per-process text), a static one ~0.2 MiB, which is what every extra
        // container costs (Spec/monitor.md). Static-PIE (ASLR) relocates its pointer data at start-up:
        // 0.8 MiB private; the trade-off is in Spec/performance.md.
        .executableTarget(
            name: "swiftlet-monitor", dependencies: ["MonitorCore"],
            linkerSettings: staticPIE),

        .target(name: "TestSupport"),
        // Test-only: the config parser/decoder/validator on random mutations, in a process of its own.
        .executableTarget(name: "oci-fuzz", dependencies: ["OCI", "TestSupport"], path: "Tests/OCIFuzz"),
        .testTarget(name: "OCITests", dependencies: ["OCI", "TestSupport"]),
        .testTarget(
            name: "ArgvTests", dependencies: ["Argv", "RuntimeCLI"], swiftSettings: [.define("ARGV_TABLE_TESTS")]),
        .testTarget(name: "MountsTests", dependencies: ["Mounts", "LinuxSystem"]),
        .testTarget(name: "SeccompTests", dependencies: ["Seccomp", "OCI", "LinuxSystem"]),
        .testTarget(name: "CgroupsTests", dependencies: ["Cgroups", "OCI"]),
        .testTarget(name: "MonitorTests", dependencies: ["MonitorCore", "OCI", "TestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "LinuxSystem"]),
        // D-Bus marshalling against bytes written from the specification, without a bus.
        .testTarget(name: "DBusTests", dependencies: ["DBus", "LinuxSystem"]),
        // The plans RuntimeCore makes before it forks, without root or a container.
        .testTarget(
            name: "RuntimeCoreTests",
            dependencies: [
                "RuntimeCore", "RuntimeCLI", "Argv", "OCI", "CLinux", "Cgroups",
                "DBus", "LinuxSystem", "Seccomp", "TestSupport",
            ]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["TestSupport", "CLinux", "CSeccomp", "LinuxSystem", "Checkpoint", "oci-fuzz"]),
    ]
)
