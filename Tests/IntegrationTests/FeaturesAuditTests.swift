import Foundation
import Glibc
import LinuxSystem
import TestSupport
import XCTest

/// `features` against runtime-spec 1.3 features.md / features-linux.md and against what works on
/// this host: each listed value is tried in a real container (or on the kernel), and what swiftlet
/// leaves out must fail. Swiftlet reports only what works on the host it runs on (Spec/cli.md);
/// runc 1.3.6 and crun 1.28 report what they were built with, so host-dependent assertions are
/// swiftlet's only, the "listed values work" ones hold for all three.
final class FeaturesAuditTests: ContainerTestCase {
    func features() throws -> [String: Any] {
        let f = sl(["features"])
        XCTAssertEqual(f.status, 0, f.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any])
    }

    func linux(_ f: [String: Any]) -> [String: Any] { f["linux"] as? [String: Any] ?? [:] }

    /// Every memory policy mode and flag listed works for a real container (node 0); every mode of
    /// config-linux.md that swiftlet leaves out (a kernel too old for it) is refused.
    func testListedMemoryPoliciesWork() throws {
        let mpol = linux(try features())["memoryPolicy"] as? [String: Any] ?? [:]
        let modes = mpol["modes"] as? [String] ?? []
        let flags = mpol["flags"] as? [String] ?? []
        let all = [
            "MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_LOCAL",
            "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE",
        ]
        XCTAssertTrue(Set(modes).isSubset(of: all), "\(modes)")
        func run(_ policy: [String: Any]) throws -> RunResult {
            try self.run(["true"]) { spec in spec[path: "linux.memoryPolicy"] = policy }
        }
        for mode in all where isSwiftlet || modes.contains(mode) {
            let noNodes = mode == "MPOL_DEFAULT" || mode == "MPOL_LOCAL"
            let r = try run(noNodes ? ["mode": mode] : ["mode": mode, "nodes": "0"])
            if modes.contains(mode) {
                XCTAssertEqual(r.status, 0, "\(mode) is listed: \(r.stderr)")
            } else {
                XCTAssertNotEqual(r.status, 0, "\(mode) is not listed but works")
            }
        }
        for flag in flags {
            let r = try run(["mode": "MPOL_BIND", "nodes": "0", "flags": [flag]])
            XCTAssertEqual(r.status, 0, "\(flag) is listed: \(r.stderr)")
        }
    }

    /// Every supported seccomp flag loads with a real profile (WAIT_KILLABLE_RECV needs a listener:
    /// checked by SeccompIntegrationTests), and each is also a known flag.
    func testSupportedSeccompFlagsLoad() throws {
        let seccomp = linux(try features())["seccomp"] as? [String: Any] ?? [:]
        let supported = seccomp["supportedFlags"] as? [String] ?? []
        let known = seccomp["knownFlags"] as? [String] ?? []
        XCTAssertTrue(Set(supported).isSubset(of: known), "\(supported) vs \(known)")
        // crun 1.28 and runc 1.1 do not report supportedFlags.
        if seccomp["supportedFlags"] != nil {
            XCTAssertFalse(supported.isEmpty, "this kernel has TSYNC, LOG and SPEC_ALLOW")
        }
        for flag in supported where flag != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" {
            let r = try run(["true"]) { spec in
                spec[path: "linux.seccomp"] = [
                    "defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
                    "syscalls": [["names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"]],
                ]
            }
            XCTAssertEqual(r.status, 0, "\(flag): \(r.stderr)")
        }
    }

    /// rdma: true only where the controller exists and is mounted; where swiftlet says false, a
    /// config with rdma limits is refused naming the field.
    func testRdmaOnlyWithTheController() throws {
        let cgroup = linux(try features())["cgroup"] as? [String: Any] ?? [:]
        guard isSwiftlet else { return }  // runc 1.3.6 reports rdma regardless of the host; crun omits it
        let r = try run(["true"]) { spec in
            spec[path: "linux.resources.rdma"] = ["mlx4_0": ["hcaHandles": 3, "hcaObjects": 100]]
        }
        if cgroup["rdma"] as? Bool == true {
            XCTAssertTrue(r.status == 0 || r.stderr.contains("mlx4_0"), "rdma is listed: \(r.stderr)")
        } else {
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains("rdma"), r.stderr)
        }
    }

    /// `iversion`/`noiversion` (runc's table) are mount flags, not tmpfs data: a tmpfs takes them.
    func testIversionIsAMountFlag() throws {
        let opts = try features()["mountOptions"] as? [String] ?? []
        XCTAssertEqual(opts.contains("iversion"), !isCrun, "listed by runc 1.3 and swiftlet")
        guard opts.contains("iversion") else { return }
        for o in ["iversion", "noiversion"] {
            let r = try run(["true"]) { spec in
                var mounts = spec["mounts"] as? [[String: Any]] ?? []
                mounts.append(["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [o, "size=1m"]])
                spec["mounts"] = mounts
            }
            XCTAssertEqual(r.status, 0, "\(o): \(r.stderr)")
        }
    }

    /// Every mount option runc 1.3.6 recognises, swiftlet recognises too (and `idmap`/`ridmap`),
    /// when the runc anchor is installed (Scripts/install-anchors.sh).
    func testMountOptionsCoverRunc13() throws {
        let runc = "/opt/swiftlet-anchors/bin/runc"
        try XCTSkipUnless(
            FileManager.default.isExecutableFile(atPath: runc) && isSwiftlet,
            "needs the runc 1.3.6 anchor; compares swiftlet with it")
        let theirs =
            try JSONSerialization.jsonObject(with: Data(runProgram(runc, ["features"]).stdout.utf8)) as? [String: Any]
        let ours = Set(try features()["mountOptions"] as? [String] ?? [])
        XCTAssertEqual(Set(theirs?["mountOptions"] as? [String] ?? ["runc"]).subtracting(ours), [])
        XCTAssertTrue(ours.isSuperset(of: ["idmap", "ridmap", "tmpcopyup"]), "\(ours)")
    }

    /// AppArmor and SELinux: true exactly when the LSM is enabled here (this host has neither), and
    /// then a profile is refused naming the field.
    func testLSMsOnlyWhereEnabled() throws {
        guard isSwiftlet else { return }  // runc and crun report both as built in
        let l = linux(try features())
        let appArmor =
            (try? String(contentsOfFile: "/sys/module/apparmor/parameters/enabled", encoding: .utf8))?.hasPrefix("Y")
            ?? false
        XCTAssertEqual((l["apparmor"] as? [String: Any])?["enabled"] as? Bool, appArmor)
        XCTAssertEqual(
            (l["selinux"] as? [String: Any])?["enabled"] as? Bool,
            FileManager.default.fileExists(atPath: "/sys/fs/selinux/enforce"))
        if !appArmor {
            let r = try run(["true"]) { spec in spec[path: "process.apparmorProfile"] = "unconfined" }
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains("process.apparmorProfile"), r.stderr)
        }
    }
}
