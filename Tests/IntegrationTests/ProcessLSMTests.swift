import Foundation
import LinuxSystem
import TestSupport
import XCTest

/// AppArmor / SELinux labels: applied where the module is enabled, a clear error where it is not.
final class ProcessLSMTests: ContainerTestCase {
    func testLabelsWithoutTheModuleAreClearErrors() throws {
        try XCTSkipIf(LSM.appArmorEnabled || LSM.seLinuxEnabled, "this test covers hosts without AppArmor and SELinux")
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            (
                "process.apparmorProfile: AppArmor is not enabled",
                { spec in
                    var p = spec[dict: "process"]
                    p["apparmorProfile"] = "docker-default"
                    spec["process"] = p
                }
            ),
            (
                "process.selinuxLabel: SELinux is not enabled",
                { spec in
                    var p = spec[dict: "process"]
                    p["selinuxLabel"] = "system_u:system_r:container_t:s0"
                    spec["process"] = p
                }
            ),
            (
                "linux.mountLabel: SELinux is not enabled",
                { spec in
                    var l = spec[dict: "linux"]
                    l["mountLabel"] = "system_u:object_r:container_file_t:s0"
                    spec["linux"] = l
                }
            ),
        ]
        for (want, edit) in cases {
            let b = try bundle(edit)
            let r = sl(["create", "--bundle", b, "lsm"])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains(want), r.stderr)
            assertNothingLeft("lsm", bundle: b)
        }
        let f = try JSONSerialization.jsonObject(with: Data(sl(["features"]).stdout.utf8)) as? [String: Any]
        let linux = f?["linux"] as? [String: Any]
        XCTAssertEqual((linux?["apparmor"] as? [String: Any])?["enabled"] as? Bool, false)
        XCTAssertEqual((linux?["selinux"] as? [String: Any])?["enabled"] as? Bool, false)
    }

    func testExecLabelFlagsWithoutTheModule() throws {
        try XCTSkipIf(LSM.appArmorEnabled || LSM.seLinuxEnabled, "this test covers hosts without AppArmor and SELinux")
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        XCTAssertEqual(sl(["run", "-d", "--bundle", b, "lsmx"]).status, 0)
        let a = sl(["exec", "--apparmor", "unconfined", "lsmx", "true"])
        XCTAssertNotEqual(a.status, 0)
        XCTAssertTrue(a.stderr.contains("AppArmor is not enabled"), a.stderr)
        let s = sl(["exec", "--process-label", "x_t", "lsmx", "true"])
        XCTAssertNotEqual(s.status, 0)
        XCTAssertTrue(s.stderr.contains("SELinux is not enabled"), s.stderr)
    }
}
