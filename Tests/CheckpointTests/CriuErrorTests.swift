import Glibc
import LinuxSystem
import XCTest

@testable import Checkpoint

/// CRIU's errors keep what went wrong underneath as a cause, so the errno survives to the caller.
final class CriuErrorTests: XCTestCase {
    func testACriuThatCannotBeExecutedKeepsTheExecErrno() {
        do {
            let service = try CriuService.start(binary: "/nonexistent/criu")
            service.finish()
            XCTFail("started a criu that does not exist")
        } catch {
            XCTAssertEqual(errnoInChain(error), ENOENT, "\(error)")
            XCTAssertTrue("\(error)".contains("/nonexistent/criu"), "\(error)")
        }
    }

    func testTheCauseIsPrintedOnceAfterTheStep() {
        let inner = SysError("recvmsg", errno: ECONNRESET)
        let e = CriuError("criu: read response", cause: inner)
        XCTAssertEqual(e.description, "criu: read response: \(inner)")
        XCTAssertEqual(errnoInChain(e), ECONNRESET)
        XCTAssertEqual(CriuError("", cause: inner).description, "\(inner)")
    }
}
