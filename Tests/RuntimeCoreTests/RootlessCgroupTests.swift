import Cgroups
import OCI
import XCTest

@testable import RuntimeCore

/// Which linux.resources need which cgroup hierarchy (a rootless create fails naming the limit when
/// that hierarchy was skipped), and which hierarchies a user may use. The kernel side is in
/// IntegrationTests.RootlessTests.
final class RootlessCgroupTests: XCTestCase {
    func testLimitsNameTheirV1HierarchyAndEverythingIsTheTreeOnV2() throws {
        var r = Resources()
        r.memory = Resources.Memory()
        r.memory?.limit = 64 << 20
        r.pids = Resources.Pids(limit: 10)
        r.cpu = Resources.CPU()
        r.cpu?.cpus = "0"
        let v1 = cgroupControllersNeeded(r, v2: false)
        XCTAssertEqual(v1.map(\.field), ["memory", "cpu.cpus", "pids"])
        XCTAssertEqual(v1.map(\.controller), ["memory", "cpuset", "pids"])
        XCTAssertEqual(v1.map(\.limit), ["memory", "cpuset", "pids"])
        let v2 = cgroupControllersNeeded(r, v2: true)
        XCTAssertEqual(v2.map(\.controller), ["", "", ""])
        XCTAssertEqual(v2.map(\.limit), ["memory", "cpuset", "pids"], "the error names the limit on v2 too")
    }

    func testZeroAndEmptyValuesAskForNothing() {
        var r = Resources()
        r.memory = Resources.Memory()
        r.memory?.limit = 0
        r.cpu = Resources.CPU()
        r.cpu?.shares = 0
        r.cpu?.cpus = ""
        r.blockIO = Resources.BlockIO()
        r.hugepageLimits = []
        r.devices = [DeviceCgroup(allow: false, access: "rwm")]  // device rules are not applied rootless
        XCTAssertTrue(cgroupControllersNeeded(r, v2: false).isEmpty)
        XCTAssertTrue(cgroupControllersNeeded(nil, v2: true).isEmpty)
    }

    func testUsableHierarchiesAreThoseWhoseDirectoryCanBeMade() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlcg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/made", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertTrue(canCreateCgroup(dir + "/new/a/b"))  // the nearest existing parent is writable
        XCTAssertFalse(canCreateCgroup(dir + "/made"))  // exists, but holds no cgroup.procs
        FileManager.default.createFile(atPath: dir + "/made/cgroup.procs", contents: nil)
        XCTAssertTrue(canCreateCgroup(dir + "/made"))
    }
}
