import Checkpoint
import Foundation
import Glibc
import TestSupport
import XCTest

@testable import MonitorCore

/// The shim's ttrpc framing and protobuf messages, against bytes built by hand from the protocol
/// (ttrpc's 10-byte header, shim.proto field numbers), plus a live server on a socketpair fed
/// malformed, truncated and oversized frames.
final class ShimProtocolTests: XCTestCase {
    func testFrameHeaderIsBigEndianLengthStreamTypeFlags() {
        let f = TTRPCFrame(stream: 0x0102_0304, type: 1, flags: 0, payload: [0xaa, 0xbb])
        XCTAssertEqual(f.encode(), [0, 0, 0, 2, 1, 2, 3, 4, 1, 0, 0xaa, 0xbb])
    }

    func testFrameReaderSplitsAndWaitsForMore() {
        let a = TTRPCFrame(stream: 1, type: 1, payload: Array("first".utf8)).encode()
        let b = TTRPCFrame(stream: 3, type: 1, payload: []).encode()
        var r = FrameReader()
        let all = a + b
        r.append(all[0..<7])
        XCTAssertEqual(r.next(), .needMore)
        r.append(all[7..<(a.count + 3)])
        XCTAssertEqual(r.next(), .frame(TTRPCFrame(stream: 1, type: 1, payload: Array("first".utf8))))
        XCTAssertEqual(r.next(), .needMore)
        r.append(all[(a.count + 3)...])
        XCTAssertEqual(r.next(), .frame(TTRPCFrame(stream: 3, type: 1, payload: [])))
        XCTAssertEqual(r.next(), .needMore)
    }

    func testOversizedFrameIsReportedWithoutBuffering() {
        var r = FrameReader()
        r.append([0x00, 0x40, 0x00, 0x01, 0, 0, 0, 5, 1, 0][...])
        XCTAssertEqual(r.next(), .oversized(stream: 5, length: 0x0040_0001))
    }

    func testRequestDecodesHandEncodedBytes() throws {
        // Request{service="s", method="m", payload=[1], timeout_nano=5, metadata=[{k, v}]}
        let bytes: [UInt8] = [
            0x0a, 1, 0x73, 0x12, 1, 0x6d, 0x1a, 1, 0x01, 0x20, 5, 0x2a, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x76,
        ]
        let r = try TTRPCRequest.decode(bytes)
        XCTAssertEqual(r.service, "s")
        XCTAssertEqual(r.method, "m")
        XCTAssertEqual(r.payload, [1])
        XCTAssertEqual(r.timeoutNano, 5)
        XCTAssertEqual(r.metadata.map { $0.0 + "=" + $0.1 }, ["k=v"])
        XCTAssertEqual(try TTRPCRequest.decode(r.encode()), r)
    }

    func testErrorResponseCarriesGRPCStatus() throws {
        let bytes = TTRPCResponse.encode(.failure(RPCError(.unimplemented, "no")))
        // Response{status=Status{code=12, message="no"}}
        XCTAssertEqual(bytes, [0x0a, 6, 0x08, 12, 0x12, 2, 0x6e, 0x6f])
        let d = try TTRPCResponse.decode(bytes)
        XCTAssertEqual(d.code, 12)
        XCTAssertEqual(d.message, "no")
    }

    func testCreateTaskRequestFields() throws {
        var w = ProtoWriter()
        w.string(1, "c1")
        w.string(2, "/b")
        w.message(3) { m in
            m.string(1, "overlay")
            m.string(2, "overlay")
            m.string(4, "lowerdir=/l")
            m.string(4, "ro")
        }
        w.bool(4, true)
        w.string(5, "/in")
        w.string(6, "/out")
        w.string(7, "/err")
        var o = ProtoWriter()
        o.string(6, "/opt/bin/swiftlet")
        o.string(7, "/run/x")
        o.bool(9, true)
        w.message(10) { AnyMessage(typeURL: "containerd.runc.v1.Options", value: o.bytes).encode(&$0) }
        let r = try CreateTaskRequest.decode(w.bytes)
        XCTAssertEqual(r.id, "c1")
        XCTAssertEqual(r.bundle, "/b")
        XCTAssertEqual(r.rootfs, [ShimMount(type: "overlay", source: "overlay", options: ["lowerdir=/l", "ro"])])
        XCTAssertTrue(r.terminal)
        XCTAssertEqual([r.stdin, r.stdout, r.stderr], ["/in", "/out", "/err"])
        let opts = try RuntimeOptions.decode(try XCTUnwrap(r.options).value)
        XCTAssertEqual(
            opts, RuntimeOptions(binaryName: "/opt/bin/swiftlet", root: "/run/x", criuPath: "", systemdCgroup: true))
    }

    func testWrongWireTypeIsAnError() {
        // id (field 1) sent as a varint.
        XCTAssertThrowsError(try CreateTaskRequest.decode([0x08, 1]))
    }

    func testEventsAreAnyWithContainerdTypeURLs() throws {
        let e = ShimEvent.exit(id: "c", execID: "", pid: 42, status: 137, at: Timestamp(seconds: 1, nanos: 2))
        XCTAssertEqual(e.topic, "/tasks/exit")
        XCTAssertEqual(e.any.typeURL, "containerd.events.TaskExit")
        let f = try ProtoFields(e.any.value)
        XCTAssertEqual(try f.string(1), "c")
        XCTAssertEqual(try f.string(2), "c", "the init's exec id is the container id, as containerd expects")
        XCTAssertEqual(try f.uint(3), 42)
        XCTAssertEqual(try f.uint(4), 137)
        XCTAssertEqual(try f.data(5), [0x08, 1, 0x10, 2])
        XCTAssertEqual(try AnyMessage.decode(e.any.bytes), e.any)
    }

    func testSocketPathFitsSunPathAndDependsOnGroup() {
        let a = shimSocketPath(address: "/run/containerd/containerd.sock", namespace: "k8s.io", group: "pod1")
        let b = shimSocketPath(address: "/run/containerd/containerd.sock", namespace: "k8s.io", group: "pod2")
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(a.hasPrefix("/run/containerd/s/"))
        XCTAssertLessThan(a.utf8.count, 108)
    }

    func testFlagsInGoSyntax() throws {
        let f = try ShimFlags.parse([
            "-namespace", "n", "--address=/a", "-publish-binary", "/p", "-id", "x", "-debug", "start",
        ])
        XCTAssertEqual(
            f,
            ShimFlags(
                namespace: "n", address: "/a", publishBinary: "/p", id: "x", bundle: "", socket: "", debug: true,
                action: "start"))
        XCTAssertThrowsError(try ShimFlags.parse(["-bogus", "1"])) {
            XCTAssertEqual(($0 as? RPCError)?.message, "flag provided but not defined: -bogus")
        }
        XCTAssertThrowsError(try ShimFlags.parse(["-id"])) {
            XCTAssertEqual(($0 as? RPCError)?.message, "flag needs an argument: -id")
        }
        // As Go's flag.Parse: options end at the action; a bool takes `=value`, never the next word.
        let d = try ShimFlags.parse(["-namespace=n", "-bundle", "/b", "-debug=false", "delete", "-id", "y"])
        XCTAssertEqual(d, ShimFlags(namespace: "n", bundle: "/b", debug: false, action: "delete"))
        XCTAssertEqual(try ShimFlags.parse(["-v", "-socket", "/s"]), ShimFlags(socket: "/s", debug: true))
    }

    /// Every decoder on random and mutated input: an error or a value, never a crash or a hang.
    func testDecodersSurviveFuzzedInput() {
        var rng = SeededRandom(seed: 0x5eed_0018)
        var seedW = ProtoWriter()
        seedW.string(1, "id")
        seedW.string(2, "/bundle")
        seedW.message(3) {
            $0.string(1, "bind")
            $0.string(4, "rbind")
        }
        let seeds = [
            seedW.bytes,
            TTRPCRequest(service: "containerd.task.v2.Task", method: "Create", payload: seedW.bytes).encode(),
        ]
        for i in 0..<20_000 {
            var b = seeds[i % seeds.count]
            switch i % 4 {
            case 0: b = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                if !b.isEmpty { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            case 2: b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng)))
            default: b.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...b.count, using: &rng))
            }
            _ = try? TTRPCRequest.decode(b)
            _ = try? CreateTaskRequest.decode(b)
            _ = try? ExecProcessRequest.decode(b)
            _ = try? ProcessRef.decode(b)
            _ = try? AnyMessage.decode(b)
            var r = FrameReader()
            r.append(b[...])
            var n = 0
            while case .frame = r.next() {
                n += 1
                if n > b.count { return XCTFail("frame reader does not advance") }
            }
        }
    }

    // MARK: - A live server

    final class Harness {
        let loop = EventLoop()
        let log = ShimLog(bundle: "/nonexistent", debug: false)
        let service: TaskService
        let server: TTRPCServer

        init() {
            let publisher = EventPublisher(binary: "", address: "", namespace: "test", loop: loop, log: log)
            service = TaskService(loop: loop, publisher: publisher, namespace: "test", log: log)
            server = TTRPCServer(loop: loop, handler: service.handle)
        }

        /// A connected client socket served by the loop.
        func client() throws -> Int32 {
            var fds: [Int32] = [-1, -1]
            XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds), 0)
            let conn = TTRPCConnection(fd: fds[0], loop: loop, handler: service.handle)
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            try conn.start()
            clients.append(conn)
            return fds[1]
        }
        var clients: [TTRPCConnection] = []

        /// Runs the loop until `done` holds (checked every 5 ms; at most 20 s, so a broken server fails
        /// the assertions that follow instead of hanging the test).
        func spin(until done: @escaping () -> Bool) {
            let deadline = Date().addingTimeInterval(20)
            func check() {
                if done() || Date() > deadline { loop.running = false } else { loop.after(ms: 5, check) }
            }
            loop.after(ms: 0, check)
            loop.running = true
            loop.run()
        }

        /// Runs the loop for `ms` (for checks that nothing happens).
        func spin(ms: Int64) {
            loop.after(ms: ms) { [loop] in loop.running = false }
            loop.running = true
            loop.run()
        }
    }

    func send(_ fd: Int32, _ bytes: [UInt8]) {
        XCTAssertEqual(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }

    /// Everything the server wrote back, split into frames; `closed` when it hung up.
    func receive(_ fd: Int32) -> (frames: [TTRPCFrame], closed: Bool) {
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        var r = FrameReader()
        var closed = false
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                r.append(buf[0..<n])
                continue
            }
            closed = n == 0
            break
        }
        var frames: [TTRPCFrame] = []
        while case .frame(let f) = r.next() { frames.append(f) }
        return (frames, closed)
    }

    func request(_ stream: UInt32, _ service: String, _ method: String, _ payload: [UInt8] = []) -> [UInt8] {
        TTRPCFrame(
            stream: stream, type: TTRPCFrame.request,
            payload: TTRPCRequest(service: service, method: method, payload: payload).encode()
        ).encode()
    }

    /// Frames waiting in the client socket (peeked, not consumed), and whether the server hung up.
    func pending(_ fd: Int32) -> (frames: Int, closed: Bool) {
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_DONTWAIT)) }
        if n == 0 { return (0, true) }
        guard n > 0 else { return (0, false) }
        var r = FrameReader()
        r.append(buf[0..<n])
        var count = 0
        while case .frame = r.next() { count += 1 }
        return (count, false)
    }

    func status(_ f: TTRPCFrame) -> Int32 { (try? TTRPCResponse.decode(f.payload).code) ?? -1 }

    func testUnknownServiceMethodAndMalformedPayloadGetStatusReplies() throws {
        let h = Harness()
        let c = try h.client()
        defer { close(c) }
        var connect = ProtoWriter()
        connect.string(1, "none")
        send(
            c,
            request(1, "grpc.health.v1.Health", "Check")
                + request(3, TaskService.serviceName, "Frobnicate")
                + request(5, TaskService.serviceName, "State", [0x0a, 0x7f])  // truncated string
                + TTRPCFrame(stream: 7, type: TTRPCFrame.request, payload: [0x0a, 0xff]).encode()  // bad Request
                + TTRPCFrame(stream: 9, type: 7, payload: []).encode()  // unknown frame type
                + request(11, TaskService.serviceName, "State", connect.bytes)  // no such container
                + request(13, TaskService.serviceName, "Connect", connect.bytes))
        h.spin { self.pending(c).frames >= 7 }
        let got = receive(c)
        XCTAssertFalse(got.closed)
        XCTAssertEqual(got.frames.map(\.stream), [1, 3, 5, 7, 9, 11, 13])
        XCTAssertTrue(got.frames.allSatisfy { $0.type == TTRPCFrame.response })
        XCTAssertEqual(got.frames.map(status), [12, 12, 3, 3, 3, 5, 0])
        let reply = try TTRPCResponse.decode(got.frames[6].payload)
        XCTAssertEqual(try ProtoFields(reply.payload).uint(1), UInt64(getpid()), "Connect returns the shim's pid")
    }

    func testOversizedFrameClosesOnlyThatConnection() throws {
        let h = Harness()
        let bad = try h.client()
        let good = try h.client()
        defer {
            close(bad)
            close(good)
        }
        send(bad, [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0, 1, 2, 3])
        send(good, request(1, TaskService.serviceName, "Connect"))
        h.spin { h.clients[0].closed && self.pending(good).frames >= 1 }
        let b = receive(bad)
        XCTAssertEqual(b.frames.map(status), [8])
        XCTAssertTrue(b.closed)
        let g = receive(good)
        XCTAssertEqual(g.frames.map(status), [0])
        XCTAssertFalse(g.closed)
    }

    /// A truncated frame waits for the rest; a peer that hangs up mid-frame just goes away.
    func testTruncatedFrameThenHangUp() throws {
        let h = Harness()
        let c = try h.client()
        let frame = request(1, TaskService.serviceName, "Connect")
        send(c, Array(frame.prefix(frame.count - 2)))
        h.spin(ms: 50)
        XCTAssertEqual(pending(c).frames, 0)
        XCTAssertFalse(h.clients[0].closed)
        close(c)
        h.spin { h.clients[0].closed }
        XCTAssertTrue(h.clients[0].closed)
    }

    /// Random byte streams at the live server: it answers or hangs up, and keeps serving others.
    func testLiveServerSurvivesFuzzedStreams() throws {
        let h = Harness()
        var rng = SeededRandom(seed: 0x7a7a_0018)
        let valid =
            request(1, TaskService.serviceName, "Connect")
            + request(3, TaskService.serviceName, "Pids", [0x0a, 1, 0x78])
        for _ in 0..<300 {
            let c = try h.client()
            let conn = h.clients[h.clients.count - 1]
            var b = valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            send(c, Array(b.prefix(Int.random(in: 0...b.count, using: &rng))))
            shutdown(c, Int32(SHUT_WR))
            h.spin { conn.closed }
            XCTAssertTrue(conn.closed, "the server neither finished nor dropped a connection whose peer hung up")
            close(c)
        }
        let ok = try h.client()
        defer { close(ok) }
        send(ok, request(1, TaskService.serviceName, "Connect"))
        h.spin { self.pending(ok).frames >= 1 }
        XCTAssertEqual(receive(ok).frames.map(status), [0])
    }

    // MARK: - The event publisher

    /// Without a ttrpc socket the events go through the publish binary, one process at a time, in
    /// order, each with its topic and namespace and the Any on stdin.
    func testPublisherFallsBackToTheBinaryInOrder() throws {
        let dir = try makeTempDir(prefix: "sl-pub.")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = dir + "/publish"
        try "#!/bin/sh\necho \"$*\" >> \(dir)/calls\ncat > \(dir)/event-$(wc -l < \(dir)/calls)\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let h = Harness()
        let p = EventPublisher(
            binary: script, address: "/run/c.sock", namespace: "ns", loop: h.loop, log: h.log,
            ttrpcAddress: dir + "/no-such.sock")
        let start = ShimEvent.start(id: "c", pid: 7)
        let exit = ShimEvent.exit(id: "c", execID: "", pid: 7, status: 1, at: Timestamp(seconds: 3, nanos: 0))
        p.publish(start)
        p.publish(exit)
        for _ in 0..<2 {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            XCTAssertTrue(p.reaped(pid: pid, status: status), "pid \(pid) was a publisher")
        }
        XCTAssertTrue(p.idle)
        let calls = try String(contentsOfFile: dir + "/calls", encoding: .utf8)
        XCTAssertEqual(
            calls,
            "--address /run/c.sock publish --topic /tasks/start --namespace ns\n"
                + "--address /run/c.sock publish --topic /tasks/exit --namespace ns\n")
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/event-1"))), start.any.bytes)
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/event-2"))), exit.any.bytes)
    }

    /// With containerd's ttrpc socket the events are Forward calls, the next one sent only once the
    /// previous one is answered.
    func testPublisherForwardsOverTTRPCOneAtATime() throws {
        let dir = try makeTempDir(prefix: "sl-fwd.")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let listener = try UnixSocket.listen(
            directory: dir, name: "ttrpc", type: Int32(SOCK_STREAM.rawValue), mode: 0o600)
        defer { close(listener) }
        let h = Harness()
        let p = EventPublisher(
            binary: "", address: "", namespace: "ns", loop: h.loop, log: h.log, ttrpcAddress: "unix://" + dir + "/ttrpc"
        )
        p.publish(.paused(id: "c"))
        p.publish(.resumed(id: "c"))
        let conn = accept(listener, nil, nil)  // queued: publish() connected synchronously
        XCTAssertGreaterThanOrEqual(conn, 0)
        defer { close(conn) }
        var seen: [String] = []
        for _ in 0..<2 {
            h.spin { self.pending(conn).frames >= 1 }
            let got = receive(conn).frames
            XCTAssertEqual(got.count, 1, "one event in flight at a time")
            guard let f = got.first else { return }
            let req = try TTRPCRequest.decode(f.payload)
            XCTAssertEqual(req.service, EventPublisher.forwardService)
            XCTAssertEqual(req.method, "Forward")
            XCTAssertEqual(req.metadata.map { $0.0 + "=" + $0.1 }, ["containerd-namespace-ttrpc=ns"])
            let envelope = try ProtoFields(try XCTUnwrap(try ProtoFields(req.payload).data(1)))
            XCTAssertEqual(try envelope.string(2), "ns")
            seen.append(try envelope.string(3))
            let any = try AnyMessage.decode(try XCTUnwrap(try envelope.data(4)))
            XCTAssertTrue(any.typeURL.hasPrefix("containerd.events.Task"))
            send(
                conn,
                TTRPCFrame(stream: f.stream, type: TTRPCFrame.response, payload: TTRPCResponse.encode(.success([])))
                    .encode())
        }
        h.spin { p.idle }
        XCTAssertTrue(p.idle)
        XCTAssertEqual(seen, ["/tasks/paused", "/tasks/resumed"])
    }
}
