import OCI
import XCTest

@testable import RuntimeCore

/// linux.intelRdt against a temp dir standing in for a mounted resctrl (this host has none; the
/// integration test covers the refusal there).
final class IntelRdtTests: TempDirTestCase {
    override class var dirPrefix: String { "resctrl" }
    var resctrl: String { dir }

    func read(_ p: String) -> String? { try? String(contentsOfFile: resctrl + "/" + p, encoding: .utf8) }

    func testOwnClosIsMadeWithSchemataInOrderAndRemoved() throws {
        let rdt = IntelRdt(l3CacheSchema: "L3:0=7f0", memBwSchema: "MB:0=20", schemata: ["L2:0=ff"])
        let p = try XCTUnwrap(try IntelRdtPlan.plan(rdt, id: "c1", resctrlRoot: resctrl))
        try p.apply(pid: 42)
        XCTAssertEqual(read("c1/schemata"), "L3:0=7f0\nMB:0=20\nL2:0=ff\n")
        XCTAssertEqual(read("c1/tasks"), "42")
        try FileManager.default.removeItem(atPath: resctrl + "/c1/schemata")
        try FileManager.default.removeItem(atPath: resctrl + "/c1/tasks")
        p.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: resctrl + "/c1"))
    }

    func testMonitoringGroupGetsTheTask() throws {
        try FileManager.default.createDirectory(atPath: resctrl + "/gold/mon_groups", withIntermediateDirectories: true)
        let p = try XCTUnwrap(
            try IntelRdtPlan.plan(IntelRdt(closID: "gold", enableMonitoring: true), id: "c2", resctrlRoot: resctrl))
        try p.apply(pid: 7)
        XCTAssertEqual(read("gold/mon_groups/c2/tasks"), "7")
        XCTAssertNil(read("gold/tasks"))
        try FileManager.default.removeItem(atPath: resctrl + "/gold/mon_groups/c2/tasks")
        p.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: resctrl + "/gold/mon_groups/c2"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: resctrl + "/gold"), "a given closID is never removed")
    }

    func testGivenClosMustExistWithoutSchemataAndMatchWithThem() throws {
        let missing = try XCTUnwrap(try IntelRdtPlan.plan(IntelRdt(closID: "silver"), id: "c3", resctrlRoot: resctrl))
        XCTAssertThrowsError(try missing.apply(pid: 1))
        try FileManager.default.createDirectory(atPath: resctrl + "/silver", withIntermediateDirectories: true)
        try "L3:0=7ff;1=7ff\nMB:0=100;1=100\n".write(
            toFile: resctrl + "/silver/schemata", atomically: true, encoding: .utf8)
        let matching = try XCTUnwrap(
            try IntelRdtPlan.plan(IntelRdt(closID: "silver", l3CacheSchema: "L3:1=7FF"), id: "c3", resctrlRoot: resctrl)
        )
        XCTAssertNoThrow(try matching.apply(pid: 3))
        XCTAssertEqual(
            read("silver/schemata"), "L3:0=7ff;1=7ff\nMB:0=100;1=100\n", "an existing CLOS is compared, not written")
        let other = try XCTUnwrap(
            try IntelRdtPlan.plan(IntelRdt(closID: "silver", memBwSchema: "MB:0=50"), id: "c3", resctrlRoot: resctrl))
        XCTAssertThrowsError(try other.apply(pid: 3))
        let root = try XCTUnwrap(try IntelRdtPlan.plan(IntelRdt(closID: "/"), id: "c3", resctrlRoot: resctrl))
        XCTAssertEqual(root.closDir, resctrl)
    }

    func testRefusals() {
        XCTAssertThrowsError(try IntelRdtPlan.plan(IntelRdt(closID: "x"), id: "c", resctrlRoot: nil)) { e in
            XCTAssertTrue("\(e)".contains("linux.intelRdt"), "\(e)")
        }
        for bad in [
            IntelRdt(closID: "../x"), IntelRdt(closID: ""), IntelRdt(memBwSchema: "L3:0=1"),
            IntelRdt(l3CacheSchema: "L3:0=1\nMB:0=1"), IntelRdt(schemata: ["a\nb"]),
        ] {
            XCTAssertThrowsError(try IntelRdtPlan.plan(bad, id: "c", resctrlRoot: resctrl), "\(bad)")
        }
        XCTAssertNil(try IntelRdtPlan.plan(nil, id: "c", resctrlRoot: nil))
    }

}
