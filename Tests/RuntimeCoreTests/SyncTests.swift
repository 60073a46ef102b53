import XCTest
import Glibc
import LinuxSystem
import OCI
@testable import RuntimeCore

/// The sync protocol's reads (Sync.swift): deadlines, and the child's error surviving ECONNRESET.
final class SyncTests: XCTestCase {
    /// The race of issue 14 item 3, made deterministic: init sends its error and exits while the
    /// parent's `go` is still unread in its queue. The kernel then reports ECONNRESET to the
    /// parent's next read, ahead of the error packet; the reader must still deliver the error.
    func testChildErrorIsReadDespiteConnectionReset() throws {
        let (parent, child) = try SeqPacket.pair()
        defer { parent.close() }
        try parent.send(.go, "state")            // never read by the child
        try child.send(.error, "2\u{0}cwd is outside the container root")
        child.close()                            // exits with `go` unread

        // What the plain read sees (the old behaviour): the reset, not the message.
        do {
            _ = try parent.next()
            XCTFail("expected ECONNRESET from the first plain read")
        } catch {
            XCTAssertEqual(error.errno, ECONNRESET)
        }
        // The same situation again, through the protocol's read.
        let (p2, c2) = try SeqPacket.pair()
        defer { p2.close() }
        try p2.send(.go, "state")
        try c2.send(.error, "2\u{0}cwd is outside the container root")
        c2.close()
        let m = try p2.next(waitingFor: "container init to set up the container", timeoutMs: 5000)
        XCTAssertEqual(m?.kind, .error)
        XCTAssertEqual(m?.errorText, "cwd is outside the container root")
        XCTAssertNil(try p2.next(waitingFor: "EOF", timeoutMs: 5000), "then EOF")
    }

    func testReadTimesOutNamingTheStep() throws {
        let (parent, child) = try SeqPacket.pair()
        defer { parent.close(); child.close() }
        let started = Clock.monotonicMs()
        do {
            _ = try parent.next(waitingFor: "container init to report its pid", timeoutMs: 200)
            XCTFail("a silent peer must time out")
        } catch {
            XCTAssertEqual(error.errno, ETIMEDOUT)
            XCTAssertTrue("\(error)".contains("waiting for container init to report its pid"), "\(error)")
        }
        XCTAssertGreaterThanOrEqual(Clock.monotonicMs() - started, 200)
        // A child's `expect` has a deadline too.
        do {
            _ = try child.expect(.go, timeoutMs: 100)
            XCTFail("expect must time out")
        } catch {
            XCTAssertEqual(error.errno, ETIMEDOUT)
        }
    }

    func testHookTimeoutsExtendTheStep() {
        XCTAssertEqual(hookAllowanceMs(nil), 0)
        XCTAssertEqual(hookAllowanceMs([Hook(path: "/a", timeout: 5), Hook(path: "/b", timeout: 7)]), 12_000)
        XCTAssertEqual(hookAllowanceMs([Hook(path: "/a")]), syncStepTimeoutMs, "a hook without a timeout gets a step's")
    }
}
