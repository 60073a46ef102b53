import OCI
import XCTest

@testable import Cgroups

final class DeviceFilterTests: XCTestCase {
    func testProgramShapeAndJumpsStayInside() throws {
        let rules = [
            DeviceCgroup(allow: false, access: "rwm"),
            DeviceCgroup(allow: true, type: "c", major: 1, minor: 3, access: "rwm"),
            DeviceCgroup(allow: true, type: "c", major: 10, minor: nil, access: "rm"),
        ]
        let f = try DeviceFilter(rules: rules)
        // 6 header insns; rule 3 (type, major; access check 3) = 2+3+2; rule 2 (type, major, minor) = 3+2;
        // rule 1 matches everything = 2 and ends the program (no unreachable default).
        XCTAssertEqual(f.program.count, 6 + 7 + 5 + 2)
        XCTAssertEqual(f.bytes.count, f.program.count * 8)
        for (i, insn) in f.program.enumerated() where insn.code == 0x55 {
            let target = i + 1 + Int(insn.off)
            XCTAssertLessThan(target, f.program.count, "jump at \(i) leaves the program")
            XCTAssertGreaterThan(insn.off, 0)
        }
        XCTAssertEqual(f.program.last?.code, 0x95, "ends with exit")
        XCTAssertEqual(f.program[f.program.count - 2], .movImm(0, 0), "the deny-all rule")
        let open = try DeviceFilter(rules: [DeviceCgroup(allow: true, type: "c", major: 1, minor: 3, access: "rwm")])
        XCTAssertEqual(open.program.suffix(2), [.movImm(0, 0), .exit], "nothing matching denies")
    }

    func testBadRulesNameTheField() {
        XCTAssertThrowsError(try DeviceFilter(rules: [DeviceCgroup(allow: true, type: "x", access: "r")])) {
            XCTAssertTrue("\($0)".contains("devices[0].type"), "\($0)")
        }
        XCTAssertThrowsError(try DeviceFilter(rules: [DeviceCgroup(allow: true, type: "c", access: "rq")])) {
            XCTAssertTrue("\($0)".contains("devices[0].access"), "\($0)")
        }
    }
}
