import XCTest

/// A test case with a fresh directory per test (`dir`, named after `dirPrefix`), removed afterwards:
/// a rootfs or a resctrl mount stand-in for plans checked without root.
class TempDirTestCase: XCTestCase {
    var dir = ""
    class var dirPrefix: String { "runtimecore" }

    override func setUpWithError() throws {
        dir =
            FileManager.default.temporaryDirectory.appendingPathComponent("\(Self.dirPrefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }
}
