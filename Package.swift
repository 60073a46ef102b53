// swift-tools-version:6.0
import PackageDescription

// Linux only. The shipped binaries avoid Foundation and swift-argument-parser (start-up cost, see
// Spec/architecture.md); build them with `--static-swift-stdlib` (Scripts/build.sh does).
let package = Package(
    name: "Swiftlet",
    products: [
        .executable(name: "swiftlet", targets: ["swiftlet"]),
    ],
    targets: [
        // C: one-line syscall wrappers and constants Swift's Glibc module lacks. No logic.
        .target(name: "CLinux"),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CMount", pkgConfig: "mount", providers: [.apt(["libmount-dev"])]),

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
        // Container store, process model, hooks, exec, kill, delete.
        .target(name: "RuntimeCore", dependencies: ["OCI", "LinuxSystem", "Mounts", "Seccomp", "Cgroups", "CLinux", "CCap"]),
        // One file per verb, each a thin call into RuntimeCore.
        .target(name: "RuntimeCLI", dependencies: ["Argv", "OCI", "RuntimeCore", "LinuxSystem", "Seccomp", "Mounts", "Cgroups"]),
        .executableTarget(name: "swiftlet", dependencies: ["RuntimeCLI"]),

        .target(name: "TestSupport"),
        // Test-only: the config parser/decoder/validator on random mutations, in a process of its own.
        .executableTarget(name: "oci-fuzz", dependencies: ["OCI"], path: "Tests/OCIFuzz"),
        .testTarget(name: "OCITests", dependencies: ["OCI"]),
        .testTarget(name: "ArgvTests", dependencies: ["Argv", "RuntimeCLI"], swiftSettings: [.define("ARGV_TABLE_TESTS")]),
        .testTarget(name: "MountsTests", dependencies: ["Mounts", "LinuxSystem"]),
        .testTarget(name: "SeccompTests", dependencies: ["Seccomp", "OCI"]),
        .testTarget(name: "CgroupsTests", dependencies: ["Cgroups", "OCI"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", "CLinux", "CSeccomp", "LinuxSystem", "oci-fuzz"]),
    ]
)
