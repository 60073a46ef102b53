import Foundation
import XCTest

@testable import RuntimeCore

/// Which bind sources the runtime checks and clones itself: those outside the rootfs, judged by
/// real paths even when the source does not exist yet.
final class MountSourcePlanTests: XCTestCase {
    func testIsInsideJudgesMissingPathsByTheirRealAncestor() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inside-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/real/rootfs", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/real")
        let rootfs = try XCTUnwrap(FileManager.default.destinationOfSymbolicLink(atPath: dir + "/link")) + "/rootfs"
        XCTAssertTrue(isInside(dir + "/link/rootfs/mnt/a/x", rootfs: rootfs), "missing, through a symlink")
        XCTAssertTrue(isInside(dir + "/real/rootfs", rootfs: rootfs))
        XCTAssertFalse(isInside(dir + "/real/rootfs-other/x", rootfs: rootfs))
        XCTAssertFalse(isInside("/nonexistent/source", rootfs: rootfs))
    }
}
