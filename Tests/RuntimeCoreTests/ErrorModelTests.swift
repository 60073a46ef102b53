import Argv
import Cgroups
import Foundation
import Glibc
import LinuxSystem
import XCTest

@testable import RuntimeCLI
@testable import RuntimeCore
@testable import Seccomp

/// The error model (Spec/errors.md): a cause chain rendered once per layer, the errno kept as a number
/// through the chain and through the sync socket, and the one mapping from errors to exit statuses.
final class ErrorModelTests: XCTestCase {
    func testCauseChainRendersEachLayerOnceAndKeepsTheErrno() {
        let sys = SysError("write", "/proc/123/uid_map", errno: EPERM)
        let inner = RuntimeError(.internal, "write id mappings", cause: sys)
        let outer = inner.context("create")
        XCTAssertEqual("\(outer)", "create: write id mappings: write /proc/123/uid_map: Operation not permitted")
        XCTAssertEqual(outer.errno, EPERM)
        XCTAssertEqual(outer.message, "create", "each layer keeps only its own text")
        XCTAssertEqual((outer.cause as? RuntimeError)?.message, "write id mappings")
        XCTAssertEqual(RuntimeError(.notFound, "x").context("y").kind, .notFound, "context keeps the kind")
        // A module error is a cause too, with its errno when it has one.
        let cgroup = RuntimeError.cgroup(
            CgroupError("write /sys/fs/cgroup/x/pids.max: \"1\": busy", errno: EBUSY), "join cgroup")
        XCTAssertEqual("\(cgroup)", "join cgroup: write /sys/fs/cgroup/x/pids.max: \"1\": busy")
        XCTAssertEqual(cgroup.errno, EBUSY)
        XCTAssertNil(RuntimeError(.invalidArgument, "no errno here").errno)
        let seccomp = RuntimeError(
            .invalidArgument, "",
            cause: SeccompFilter.BuildError(description: "linux.seccomp.flags[0]: x: Invalid argument", errno: EINVAL))
        XCTAssertEqual("\(seccomp)", "linux.seccomp.flags[0]: x: Invalid argument", "an empty message adds no text")
        XCTAssertEqual(seccomp.errno, EINVAL)
        XCTAssertEqual("\(RuntimeError.wrapping(sys))", "\(sys)", "wrapping adds no text")
    }

    func testStepNamesTheStepOnce() throws {
        do {
            try step("write id mappings") { throw SysError("write", "/proc/1/gid_map", errno: EINVAL) }
            XCTFail("must throw")
        } catch {
            XCTAssertEqual("\(error)", "write id mappings: write /proc/1/gid_map: Invalid argument")
            XCTAssertEqual(error.errno, EINVAL)
        }
        // Issue 17: "create: create: process has N threads". A second thread makes the check fail.
        let release = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let thread = Thread {
            started.signal()
            release.wait()
        }
        thread.start()
        started.wait()
        defer { release.signal() }
        do {
            try step("create") { try Proc.assertSingleThreaded() }
            XCTFail("a multi-threaded process must fail the check")
        } catch {
            XCTAssertTrue("\(error)".hasPrefix("create: process has "), "\(error)")
            XCTAssertFalse("\(error)".contains("create: create:"), "\(error)")
            XCTAssertEqual(error.errno, EINVAL)
        }
    }

    /// The child's errno crosses the sync socket as a number: the parent's error has it in its chain.
    func testChildErrnoSurvivesTheSyncSocket() throws {
        let (parent, child) = try SeqPacket.pair()
        defer {
            parent.close()
            child.close()
        }
        let failure = RuntimeError(.internal, "join cgroup", cause: SysError("open", "/sys/fs/cgroup/x", errno: EACCES))
        try child.send(.error, SyncMessage.errorPayload(failure))
        let m = try XCTUnwrap(try parent.next(waitingFor: "the child's error", timeoutMs: 5000))
        XCTAssertEqual(m.kind, .error)
        let error = m.childFailure("unable to start container process")
        XCTAssertEqual(error.errno, EACCES)
        XCTAssertEqual(
            "\(error)", "unable to start container process: join cgroup: open /sys/fs/cgroup/x: Permission denied")
        // An error without an errno says so (0 on the wire), and a payload without the separator is
        // all message.
        try child.send(.error, SyncMessage.errorPayload(RuntimeError(.invalidArgument, "bad")))
        let plain = try XCTUnwrap(try parent.next(waitingFor: "the child's error", timeoutMs: 5000))
        XCTAssertNil(plain.childFailure("x").errno)
        XCTAssertEqual("\(plain.childFailure("x"))", "x: bad")
        XCTAssertEqual(
            SyncMessage(kind: .error, payload: Array("just text".utf8), fd: nil).childError.message, "just text")
    }

    func testKindsAndVerbsMapToRuncsExitStatuses() {
        let kinds: [RuntimeError.Kind] = [.notFound, .exists, .invalidState, .invalidArgument, .unsupported, .internal]
        for kind in kinds {
            XCTAssertEqual(exitStatus(for: RuntimeError(kind, "x"), verb: "create"), 1, "\(kind)")
            XCTAssertEqual(exitStatus(for: RuntimeError(kind, "x"), verb: "exec"), 255, "exec's own failures: \(kind)")
        }
        XCTAssertEqual(exitStatus(for: SysError("open", "/x", errno: ENOENT), verb: "delete"), 1, "any other error: 1")
        XCTAssertEqual(
            exitStatus(for: ArgvError(message: "No help topic for 'x'", exitCode: 3), verb: nil), 3,
            "the argument parser's own status")
        XCTAssertEqual(exitStatus(for: ArgvError(message: "flag provided but not defined: -x"), verb: nil), 1)
    }
}
