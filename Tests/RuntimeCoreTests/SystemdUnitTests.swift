import Cgroups
import DBus
import OCI
import XCTest

@testable import RuntimeCore

/// The systemd driver's plan without systemd: cgroupsPath -> unit, slice -> cgroup path, and
/// linux.resources -> unit properties.
final class SystemdUnitTests: XCTestCase {
    func testCgroupsPathDefaultsAsRunc() throws {
        let scope = try SystemdUnit(cgroupsPath: "system.slice:swiftlet:abc", id: "x")
        XCTAssertEqual(scope.name, "swiftlet-abc.scope")
        XCTAssertEqual(scope.slice, "system.slice")
        XCTAssertEqual(scope.cgroupPath, "/system.slice/swiftlet-abc.scope")
        let defaults = try SystemdUnit(cgroupsPath: "::abc", id: "x")
        XCTAssertEqual(defaults.name, "-abc.scope")
        XCTAssertEqual(defaults.cgroupPath, "/system.slice/-abc.scope")
        let none = try SystemdUnit(cgroupsPath: nil, id: "c1")
        XCTAssertEqual(none.name, "swiftlet-c1.scope")
        XCTAssertEqual(none.cgroupPath, "/system.slice/swiftlet-c1.scope")
        let kubelet = try SystemdUnit(cgroupsPath: "kubepods-burstable-pod123.slice:cri-containerd:abc", id: "x")
        XCTAssertEqual(
            kubelet.cgroupPath,
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice/cri-containerd-abc.scope")
        let slice = try SystemdUnit(cgroupsPath: "kubepods.slice:x:kubepods-pod1.slice", id: "x")
        XCTAssertEqual(slice.name, "kubepods-pod1.slice")
        XCTAssertEqual(slice.cgroupPath, "/kubepods.slice/kubepods-pod1.slice")
        XCTAssertEqual(try SystemdUnit(cgroupsPath: "-.slice:p:n", id: "x").cgroupPath, "/p-n.scope")
    }

    func testBadCgroupsPathsAreRefusedNamingThem() {
        for bad in ["/swiftlet/abc", "a:b", "a:b:c:d"] {
            XCTAssertThrowsError(try SystemdUnit(cgroupsPath: bad, id: "x")) { error in
                XCTAssertTrue(
                    "\(error)".contains("\"slice:prefix:name\"") && "\(error)".contains("\"\(bad)\""), "\(error)")
            }
        }
        for bad in ["system", "a/b.slice", "a--b.slice", "-a.slice", "a-.slice", ".slice"] {
            XCTAssertThrowsError(try SystemdUnit(cgroupsPath: "\(bad):p:n", id: "x")) { error in
                XCTAssertEqual("\(error)", "invalid slice name: \(bad)")
            }
        }
    }

    func testResourcesBecomeUnitPropertiesOnV2Only() throws {
        var r = Resources()
        r.memory = Resources.Memory()
        r.memory?.limit = 64 << 20
        r.memory?.reservation = 32 << 20
        r.memory?.swap = 128 << 20
        r.cpu = Resources.CPU()
        r.cpu?.shares = 1024
        r.cpu?.quota = 50_000
        r.cpu?.period = 100_000
        r.cpu?.cpus = "0-2,9"
        r.cpu?.mems = "0"
        r.pids = Resources.Pids(limit: 42)
        r.blockIO = Resources.BlockIO()
        r.blockIO?.weight = 500
        let props = try SystemdUnit.resourceProperties(r, layout: .v2(mountPoint: "/sys/fs/cgroup"))
        let byName = Dictionary(props.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byName["MemoryMax"], .uint64(64 << 20))
        XCTAssertEqual(byName["MemoryLow"], .uint64(32 << 20))
        XCTAssertEqual(byName["MemorySwapMax"], .uint64(64 << 20))
        XCTAssertEqual(byName["CPUWeight"], .uint64(CgroupManager.cpuWeight(shares: 1024)))
        XCTAssertEqual(byName["CPUQuotaPeriodUSec"], .uint64(100_000))
        XCTAssertEqual(byName["CPUQuotaPerSecUSec"], .uint64(500_000))
        XCTAssertEqual(byName["AllowedCPUs"], .bytes([0b0000_0111, 0b0000_0010]))
        XCTAssertEqual(byName["AllowedMemoryNodes"], .bytes([1]))
        XCTAssertEqual(byName["TasksMax"], .uint64(42))
        XCTAssertEqual(byName["IOWeight"], .uint64(CgroupManager.ioWeight(blkioWeight: 500)))
        XCTAssertTrue(
            try SystemdUnit.resourceProperties(
                r,
                layout: .hybrid(
                    hierarchies: ["memory": "/sys/fs/cgroup/memory"],
                    unified: "/sys/fs/cgroup/unified")
            ).isEmpty)
        r.pids = Resources.Pids(limit: -1)
        r.memory?.limit = -1
        r.memory?.swap = nil
        let unlimited = try SystemdUnit.resourceProperties(r, layout: .v2(mountPoint: "/sys/fs/cgroup"))
        XCTAssertTrue(unlimited.contains { $0.0 == "TasksMax" && $0.1 == .uint64(.max) })
        XCTAssertTrue(unlimited.contains { $0.0 == "MemoryMax" && $0.1 == .uint64(.max) })
    }

    func testCpuQuotaIsRoundedUpToWholePercentAsRunc() {
        XCTAssertEqual(SystemdUnit.cpuQuotaProperties(quota: 0, period: 0).count, 0)
        let odd = SystemdUnit.cpuQuotaProperties(quota: 12_345, period: 100_000)
        XCTAssertEqual(odd.last?.1, .uint64(130_000))
        let unlimited = SystemdUnit.cpuQuotaProperties(quota: -1, period: 50_000)
        XCTAssertEqual(unlimited.map(\.0), ["CPUQuotaPeriodUSec", "CPUQuotaPerSecUSec"])
        XCTAssertEqual(unlimited.last?.1, .uint64(.max))
    }

    func testBadCpuListIsRefused() {
        XCTAssertEqual(try SystemdUnit.bitmask("0,8-9", field: "cpu.cpus"), [1, 3])
        for bad in ["a", "3-1", "1-2-3", "-1"] {
            XCTAssertThrowsError(try SystemdUnit.bitmask(bad, field: "cpu.cpus"), bad)
        }
    }

    func testDeviceRulesAsDevicePolicyAndDeviceAllow() {
        let procDevices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  7 loop\n"
        func allow(_ p: [(String, DBusValue)]) -> [String] {
            guard case .array(_, let entries)? = p.last?.1 else { return [] }
            return entries.compactMap { e -> String? in
                guard case .structure(let f) = e else { return nil }
                return "\(f[0].stringValue ?? "") \(f[1].stringValue ?? "")"
            }
        }
        // Deny-all, then allows: strict, with the list (a later deny of the same device takes access away).
        let rules = [
            DeviceCgroup(allow: false, access: "rwm"),
            DeviceCgroup(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
            DeviceCgroup(allow: true, type: "c", major: 136, access: "rw"),
            DeviceCgroup(allow: true, type: "b", major: 7, minor: -1, access: "r"),
            DeviceCgroup(allow: true, type: "c", major: 99, access: "r"),
            DeviceCgroup(allow: true, type: "b", access: "m"),
            DeviceCgroup(allow: true, type: "c", major: 1, minor: 5, access: "rw"),
            DeviceCgroup(allow: false, type: "c", major: 1, minor: 5, access: "w"),
        ]
        let p = SystemdUnit.deviceProperties(rules, procDevices: procDevices)
        XCTAssertEqual(p.first?.0, "DevicePolicy")
        XCTAssertEqual(p.first?.1.stringValue, "strict")
        XCTAssertEqual(p.map(\.0), ["DevicePolicy", "DeviceAllow", "DeviceAllow"])
        XCTAssertEqual(
            allow(p), ["/dev/char/1:3 rwm", "char-pts rw", "block-loop r", "char-* r", "block-* m", "/dev/char/1:5 r"])
        // An allow-all rule last: systemd restricts nothing.
        let all = SystemdUnit.deviceProperties(
            rules + [DeviceCgroup(allow: true, access: "rwm")], procDevices: procDevices)
        XCTAssertEqual(all.first?.1.stringValue, "auto")
        XCTAssertEqual(allow(all), [])
        // A deny list (allow-all, then denials): left to our eBPF program.
        let deny = SystemdUnit.deviceProperties(
            [
                DeviceCgroup(allow: true, access: "rwm"),
                DeviceCgroup(allow: false, type: "c", major: 1, minor: 3, access: "rwm"),
            ], procDevices: procDevices)
        XCTAssertEqual(deny.first?.1.stringValue, "auto")
        // No rule at all: deny everything.
        XCTAssertEqual(allow(SystemdUnit.deviceProperties([], procDevices: procDevices)), [])
        XCTAssertEqual(SystemdUnit.deviceProperties([], procDevices: procDevices).first?.1.stringValue, "strict")
    }

    func testPropertyAnnotations() throws {
        let unit = try SystemdUnit(
            cgroupsPath: nil, id: "a",
            annotations: [
                "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
                "org.systemd.property.CollectMode": "'inactive-or-failed'",
                "org.systemd.property.TimeoutStartSec": "5",
                "org.systemd.property.SendSIGHUP": "true",
                "org.systemd.property.Environment": "['A=1', \"B=2\"]",
                "other": "ignored",
            ])
        let p = Dictionary(uniqueKeysWithValues: unit.annotationProperties.map { ($0.0, $0.1) })
        XCTAssertEqual(p.count, 5)
        XCTAssertEqual(p["TimeoutStopUSec"], .uint64(123_456_789))
        XCTAssertEqual(p["CollectMode"], .string("inactive-or-failed"))
        XCTAssertEqual(p["TimeoutStartUSec"], .uint64(5_000_000))
        XCTAssertEqual(p["SendSIGHUP"], .bool(true))
        XCTAssertEqual(p["Environment"], .array(element: "s", [.string("A=1"), .string("B=2")]))
        for (key, value) in [
            ("org.systemd.property.Bad-Name", "1"), ("org.systemd.property.Ab", "1"),
            ("org.systemd.property.CollectMode", "'unterminated"), ("org.systemd.property.MemoryMax", "uint64 -1"),
            ("org.systemd.property.TimeoutStopSec", "'five'"), ("org.systemd.property.X", "@as []x"),
        ] {
            XCTAssertThrowsError(try SystemdUnit(cgroupsPath: nil, id: "a", annotations: [key: value])) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
        XCTAssertEqual(try VariantText.parse("@as []"), .array(element: "s", []))
        XCTAssertEqual(try VariantText.parse("@t 7"), .uint64(7))
        XCTAssertEqual(try VariantText.parse("int64 -7"), .int64(-7))
        XCTAssertThrowsError(try VariantText.parse("[]"))
        XCTAssertThrowsError(try VariantText.parse("1.5"))
    }
}
