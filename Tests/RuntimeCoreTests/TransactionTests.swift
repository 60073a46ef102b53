import Glibc
import OCI
import XCTest

@testable import RuntimeCore

/// The transaction create, exec and restore record what they made in, and the preamble checks
/// they share. No root: a state directory under a temporary root and a `sleep` child.
final class TransactionTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("txn-\(UUID().uuidString)").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    func sleeper() throws -> Foundation.Process {
        let p = Foundation.Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["100"]
        try p.run()
        return p
    }

    /// create/restore: rollback kills the processes and removes the state directory it owns.
    func testRollbackKillsProcessesAndRemovesStateDir() throws {
        let store = ContainerStore(root: root)
        let lock = try store.createLocked("t1")
        defer { lock.release() }
        let txn = Transaction(store: store, id: "t1")
        let state = try txn.saveProvisionalState(try plan(), cgroupPaths: ["": "/nonexistent/t1"])
        XCTAssertEqual(state.pid, 0)
        XCTAssertEqual(store.status(try store.load("t1")), .creating)
        let child = try sleeper()
        txn.pid = child.processIdentifier
        txn.rollback()
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)
        XCTAssertEqual(child.terminationStatus, SIGKILL)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.dir("t1")))
    }

    /// exec: a transaction over processes only leaves every directory alone.
    func testProcessOnlyRollbackKeepsStateDir() throws {
        let store = ContainerStore(root: root)
        let lock = try store.createLocked("t2")
        defer { lock.release() }
        let txn = Transaction()
        txn.waitForPid = false
        let child = try sleeper()
        txn.pid = child.processIdentifier
        txn.rollback()
        child.waitUntilExit()
        XCTAssertEqual(child.terminationStatus, SIGKILL)
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.dir("t2")))
    }

    /// A mount recorded for the command (restore's criu root) that was never mounted: its
    /// directory is removed all the same, and `unmount` forgets it.
    func testUnmountRemovesDirectory() throws {
        let dir = root + "/criu-root"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let txn = Transaction()
        txn.mounts.append(dir)
        txn.unmount(dir)
        XCTAssertTrue(txn.mounts.isEmpty)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir))
    }

    /// The console-socket rules of create/run/restore (detached or not) and exec (no unused check).
    func testConsoleSocketChecks() {
        func fails(_ terminal: Bool, _ socket: String?, detached: Bool, checkUnused: Bool = true) -> String? {
            do {
                try checkConsoleSocket(
                    terminal: terminal, consoleSocket: socket, detached: detached, checkUnused: checkUnused)
            } catch {
                return "\(error)"
            }
            return nil
        }
        XCTAssertEqual(
            fails(true, nil, detached: true),
            "cannot allocate tty if swiftlet will detach without setting console socket")
        XCTAssertNil(fails(true, nil, detached: false))
        XCTAssertNil(fails(true, "/s", detached: true))
        XCTAssertEqual(
            fails(false, "/s", detached: true), "cannot use console socket if swiftlet will not detach or allocate tty")
        XCTAssertNil(fails(false, "/s", detached: true, checkUnused: false))
        XCTAssertNil(fails(false, nil, detached: true))
    }

    func testPidFile() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try writePidFile(root + "/pid", pid: 4242)
        XCTAssertEqual(try String(contentsOfFile: root + "/pid", encoding: .utf8), "4242")
        try writePidFile(nil, pid: 1)
        try writePidFile("", pid: 1)
    }

    func plan() throws -> ContainerPlan {
        let rootfs = root + "/rootfs"
        try FileManager.default.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
        let spec = Spec(process: OCI.Process(args: ["/bin/true"], cwd: "/"), root: Root(path: rootfs), linux: Linux())
        return try ContainerPlan(
            spec: spec, specJSON: .object([:]), id: "t1", bundle: "/", noPivot: false,
            noNewKeyring: false, preserveFds: 0, listenFds: 0, cgroupBinds: [])
    }
}
