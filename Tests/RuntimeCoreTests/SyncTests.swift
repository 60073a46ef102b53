import Glibc
import LinuxSystem
import OCI
import XCTest

@testable import RuntimeCore

/// The sync protocol's reads (Sync.swift): deadlines, and the child's error surviving ECONNRESET.
final class SyncTests: XCTestCase {
    /// Issue 14 item 3: init sends its error and exits while the parent's `go` is still unread in its
    /// queue. The kernel then sets ECONNRESET on the parent's socket, which a read may report ahead
    /// of the error packet (it did under load: HardeningTests lost init's error one run in two); the
    /// protocol's read must deliver the error and then end cleanly, whatever the order.
    func testChildErrorIsReadDespiteConnectionReset() throws {
        let (parent, child) = try SeqPacket.pair()
        defer { parent.close() }
        try parent.send(.go, "state")  // never read by the child
        try child.send(.error, "2\u{0}cwd is outside the container root")
        child.close()  // exits with `go` unread
        waitForHangUp(parent)
        let m = try parent.next(waitingFor: "container init to set up the container", timeoutMs: 5000)
        XCTAssertEqual(m?.kind, .error)
        XCTAssertEqual(m?.errorText, "cwd is outside the container root")
        XCTAssertNil(try parent.next(waitingFor: "EOF", timeoutMs: 5000), "then the end, not an error")
    }

    /// The peer is released (and ECONNRESET set) once its last reference is gone, which a concurrent
    /// fork elsewhere in this test process can delay: wait for the hang-up the release also sets.
    private func waitForHangUp(_ s: SeqPacket) {
        var p = pollfd(fd: s.fd, events: 0, revents: 0)
        for _ in 0..<100 where p.revents & Int16(POLLHUP) == 0 { _ = poll(&p, 1, 100) }
        XCTAssertNotEqual(p.revents & Int16(POLLHUP), 0, "peer not released")
    }

    func testReadTimesOutNamingTheStep() throws {
        let (parent, child) = try SeqPacket.pair()
        defer {
            parent.close()
            child.close()
        }
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
