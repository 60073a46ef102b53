import Foundation
import Glibc
import LinuxSystem
import XCTest

@testable import DBus

/// DBusConnection against a fake peer on a unix socket (a thread of the test): the SASL EXTERNAL
/// exchange, replies matched by serial, signals skipped, error replies and the deadline.
final class ConnectionTests: XCTestCase {
    private var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "dbus-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A listening socket at `dir/bus` whose one client is served by `serve` on a thread.
    private func fakePeer(_ serve: @escaping @Sendable (Peer) throws -> Void) throws -> (
        path: String, done: XCTestExpectation
    ) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/bus"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 1), 0)
        let done = expectation(description: "peer finished")
        Thread.detachNewThread {
            let fd = accept(listener, nil, nil)
            close(listener)
            let peer = Peer(fd: fd)
            do { try serve(peer) } catch { XCTFail("fake peer: \(error)") }
            close(fd)
            done.fulfill()
        }
        return (path, done)
    }

    final class Peer: @unchecked Sendable {
        let fd: Int32
        var buffer: [UInt8] = []
        init(fd: Int32) { self.fd = fd }

        func more() throws {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { throw DBusError("peer: client closed") }
            buffer += chunk[..<n]
        }

        func line() throws -> String {
            while !buffer.contains(UInt8(ascii: "\n")) { try more() }
            let nl = buffer.firstIndex(of: UInt8(ascii: "\n"))!
            defer { buffer.removeFirst(nl + 1) }
            return String(decoding: buffer[..<nl], as: UTF8.self)
        }

        func message() throws -> DBusMessage {
            while buffer.count < 16 { try more() }
            let length = try DBusMessage.frameLength(head: buffer.prefix(16))
            while buffer.count < length { try more() }
            defer { buffer.removeFirst(length) }
            return try DBusMessage.decode(Array(buffer.prefix(length)))
        }

        func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }

        /// The client's NUL byte and AUTH line; answers OK; expects BEGIN.
        func handshake() throws -> String {
            while buffer.isEmpty { try more() }
            XCTAssertEqual(buffer.removeFirst(), 0)
            let auth = try line()
            send(Array("OK 0123456789abcdef0123456789abcdef\r\n".utf8))
            XCTAssertEqual(try line(), "BEGIN\r")
            return auth
        }
    }

    func testAuthenticatesWithUidInHexAndMatchesRepliesBySerial() throws {
        let (path, done) = try fakePeer { peer in
            let auth = try peer.handshake()
            let uidHex = String(geteuid()).utf8.map { String(format: "%02x", $0) }.joined()
            XCTAssertEqual(auth, "AUTH EXTERNAL \(uidHex)\r")
            let call = try peer.message()
            XCTAssertEqual(call.kind, .methodCall)
            XCTAssertEqual(call.member, "GetUnit")
            XCTAssertEqual(call.body, [.string("a.scope")])
            // A signal and a reply to another serial first: both skipped.
            var signal = DBusMessage(kind: .signal, serial: 1)
            signal.path = "/org/freedesktop/DBus"
            signal.interface = "org.freedesktop.DBus"
            signal.member = "NameAcquired"
            signal.body = [.string(":1.9")]
            peer.send(signal.encode())
            var other = DBusMessage(kind: .methodReturn, serial: 2)
            other.replySerial = call.serial &+ 100
            peer.send(other.encode())
            var reply = DBusMessage(kind: .methodReturn, serial: 3)
            reply.replySerial = call.serial
            reply.body = [.objectPath("/org/freedesktop/systemd1/unit/a_2escope")]
            peer.send(reply.encode())

            let second = try peer.message()
            XCTAssertNotEqual(second.serial, call.serial)
            var error = DBusMessage(kind: .error, serial: 4)
            error.replySerial = second.serial
            error.errorName = "org.freedesktop.systemd1.NoSuchUnit"
            error.body = [.string("Unit b.scope not loaded.")]
            peer.send(error.encode())
        }
        let deadline = nowMs() + 10_000
        let bus = try DBusConnection.open(path: path, deadline: deadline)
        let systemd = SystemdManager(bus: bus)
        XCTAssertEqual(try systemd.getUnit("a.scope", deadline: deadline), "/org/freedesktop/systemd1/unit/a_2escope")
        XCTAssertThrowsError(try systemd.getUnit("b.scope", deadline: deadline)) { error in
            let e = error as? DBusError
            XCTAssertEqual(e?.name, "org.freedesktop.systemd1.NoSuchUnit")
            XCTAssertEqual(
                e?.message,
                "org.freedesktop.systemd1.Manager.GetUnit: org.freedesktop.systemd1.NoSuchUnit: Unit b.scope not "
                    + "loaded."
            )
        }
        wait(for: [done], timeout: 10)
    }

    func testRefusedAuthenticationIsAnError() throws {
        let (path, done) = try fakePeer { peer in
            while peer.buffer.isEmpty { try peer.more() }
            _ = try peer.line()
            peer.send(Array("REJECTED EXTERNAL\r\n".utf8))
        }
        XCTAssertThrowsError(try DBusConnection.open(path: path, deadline: nowMs() + 10_000)) { error in
            XCTAssertTrue("\(error)".contains("refused: REJECTED EXTERNAL"), "\(error)")
        }
        wait(for: [done], timeout: 10)
    }

    func testEveryReadHasADeadline() throws {
        let (path, done) = try fakePeer { peer in
            _ = try peer.handshake()
            _ = try peer.message()  // and never answers
            Thread.sleep(forTimeInterval: 0.5)
        }
        let bus = try DBusConnection.open(path: path, deadline: nowMs() + 10_000)
        XCTAssertThrowsError(
            try bus.call(destination: nil, path: "/", interface: "a.b", member: "Slow", deadline: nowMs() + 100)
        ) { error in
            XCTAssertTrue("\(error)".contains("a.b.Slow: timed out"), "\(error)")
        }
        wait(for: [done], timeout: 10)
    }

    func testNoSocketIsAClearError() {
        XCTAssertThrowsError(try DBusConnection.open(path: "/nonexistent/bus", deadline: nowMs() + 1000)) { error in
            XCTAssertTrue("\(error)".contains("connect /nonexistent/bus: No such file or directory"), "\(error)")
        }
    }

    /// The user bus's address: the first `unix:path=` entry, %XX unescaped; others refused.
    func testUnixPathOfAnAddress() {
        XCTAssertEqual(DBusConnection.unixPath("unix:path=/run/user/1000/bus"), "/run/user/1000/bus")
        XCTAssertEqual(
            DBusConnection.unixPath("tcp:host=x,port=1;unix:guid=ab,path=/tmp/a%20b%2cc;unix:path=/other"),
            "/tmp/a b,c")
        XCTAssertNil(DBusConnection.unixPath("unix:abstract=/tmp/dbus-x"))
        XCTAssertNil(DBusConnection.unixPath(""))
    }

    /// EXTERNAL sends the uid the bus daemon sees: root of a rootless podman namespace is the user.
    func testParentUidThroughTheUidMap() {
        let podman = "         0       1000          1\n         1     100000      65536\n"
        XCTAssertEqual(Kernel.parentUid(0, uidMap: podman), 1000)
        XCTAssertEqual(Kernel.parentUid(5, uidMap: podman), 100_004)
        XCTAssertEqual(Kernel.parentUid(70000, uidMap: podman), 70000)  // unmapped: itself
        XCTAssertEqual(Kernel.parentUid(1000, uidMap: "         0          0 4294967295\n"), 1000)
        XCTAssertEqual(Kernel.parentUid(1000, uidMap: nil), 1000)
    }

    /// The user bus is told to the user when it is not there: the address in the error.
    func testUnreachableUserBusNamesTheAddress() {
        setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=\(dir)/no-bus", 1)
        defer { unsetenv("DBUS_SESSION_BUS_ADDRESS") }
        XCTAssertThrowsError(try DBusConnection.user(timeoutMs: 1000)) { error in
            XCTAssertTrue("\(error)".hasPrefix("systemd's user bus unix:path=\(dir)/no-bus: "), "\(error)")
        }
    }

    private func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
