import CLinux
import Checkpoint
import Glibc
import LinuxSystem

// ttrpc (github.com/containerd/ttrpc), the protocol containerd speaks to its shims: frames of a 10-byte
// header (payload length u32, stream id u32, type u8, flags u8, all big-endian) and a protobuf payload.
// Requests (type 1) carry Request{service=1, method=2, payload=3, timeout_nano=4, metadata=5}; the
// reply on the same stream id (type 2) carries Response{status=1 (google.rpc.Status), payload=2}.

/// gRPC status codes (google.rpc.Code) as ttrpc carries them.
enum RPCCode: Int32 {
    case ok = 0
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case resourceExhausted = 8
    case failedPrecondition = 9
    case internalError = 13
    case unimplemented = 12
}

struct RPCError: Error, Equatable {
    var code: RPCCode
    var message: String
    init(_ code: RPCCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

struct TTRPCRequest: Equatable {
    var service = ""
    var method = ""
    var payload: [UInt8] = []
    var timeoutNano: Int64 = 0
    var metadata: [(String, String)] = []

    static func == (a: TTRPCRequest, b: TTRPCRequest) -> Bool {
        a.service == b.service && a.method == b.method && a.payload == b.payload && a.timeoutNano == b.timeoutNano
            && a.metadata.map { $0.0 + "=" + $0.1 } == b.metadata.map { $0.0 + "=" + $0.1 }
    }

    static func decode(_ bytes: [UInt8]) throws(ProtoError) -> TTRPCRequest {
        var r = TTRPCRequest()
        for (field, value) in try ProtoReader.fields(bytes) {
            switch field {
            case 1: r.service = try Proto.string(value, "service")
            case 2: r.method = try Proto.string(value, "method")
            case 3: r.payload = try Proto.data(value, "payload")
            case 4: r.timeoutNano = Int64(bitPattern: try Proto.varint(value, "timeout_nano"))
            case 5:
                var k = ""
                var v = ""
                for (f, kv) in try ProtoReader.fields(try Proto.data(value, "metadata")) {
                    if f == 1 { k = try Proto.string(kv, "metadata.key") }
                    if f == 2 { v = try Proto.string(kv, "metadata.value") }
                }
                r.metadata.append((k, v))
            default: break
            }
        }
        return r
    }

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.string(1, service)
        w.string(2, method)
        if !payload.isEmpty { w.bytes(3, payload) }
        if timeoutNano != 0 { w.int64(4, timeoutNano) }
        for (k, v) in metadata {
            w.message(5) {
                $0.string(1, k)
                $0.string(2, v)
            }
        }
        return w.bytes
    }
}

enum TTRPCResponse {
    static func encode(_ result: Result<[UInt8], RPCError>) -> [UInt8] {
        var w = ProtoWriter()
        switch result {
        case .success(let payload):
            if !payload.isEmpty { w.bytes(2, payload) }
        case .failure(let e):
            w.message(1) { s in
                s.int32(1, e.code.rawValue)
                s.string(2, e.message)
            }
        }
        return w.bytes
    }

    /// (status code, message, payload) of an encoded response; for tests and clients.
    static func decode(_ bytes: [UInt8]) throws(ProtoError) -> (code: Int32, message: String, payload: [UInt8]) {
        var code: Int32 = 0
        var message = ""
        var payload: [UInt8] = []
        for (f, v) in try ProtoReader.fields(bytes) {
            if f == 2 { payload = try Proto.data(v, "payload") }
            if f == 1 {
                for (sf, sv) in try ProtoReader.fields(try Proto.data(v, "status")) {
                    if sf == 1 { code = Int32(truncatingIfNeeded: Int64(bitPattern: try Proto.varint(sv, "code"))) }
                    if sf == 2 { message = try Proto.string(sv, "message") }
                }
            }
        }
        return (code, message, payload)
    }
}

/// Typed access to decoded fields: a wrong wire type is a malformed message naming the field.
enum Proto {
    static func string(_ v: ProtoValue, _ name: String) throws(ProtoError) -> String {
        guard let s = v.string else { throw ProtoError("field \(name) is not length-delimited", offset: 0) }
        return s
    }
    static func data(_ v: ProtoValue, _ name: String) throws(ProtoError) -> [UInt8] {
        guard let d = v.data else { throw ProtoError("field \(name) is not length-delimited", offset: 0) }
        return d
    }
    static func varint(_ v: ProtoValue, _ name: String) throws(ProtoError) -> UInt64 {
        guard let n = v.uint64 else { throw ProtoError("field \(name) is not a varint", offset: 0) }
        return n
    }
}

struct TTRPCFrame: Equatable {
    static let headerSize = 10
    /// ttrpc's own limit (messageLengthMax).
    static let maxPayload = 4 << 20
    static let request: UInt8 = 1
    static let response: UInt8 = 2

    var stream: UInt32
    var type: UInt8
    var flags: UInt8 = 0
    var payload: [UInt8]

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + payload.count)
        for v in [UInt32(payload.count), stream] {
            out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
        }
        out += [type, flags]
        return out + payload
    }
}

/// Splits a byte stream into frames. A header announcing more than maxPayload is fatal for the
/// connection (its payload cannot be skipped without reading it all): `oversized` names its stream.
struct FrameReader {
    private var buffer: [UInt8] = []
    private var start = 0

    enum Next: Equatable {
        case frame(TTRPCFrame)
        case needMore
        case oversized(stream: UInt32, length: UInt32)
    }

    mutating func append(_ bytes: ArraySlice<UInt8>) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    var buffered: Int { buffer.count - start }

    mutating func next() -> Next {
        guard buffer.count - start >= TTRPCFrame.headerSize else { return .needMore }
        func u32(_ i: Int) -> UInt32 {
            UInt32(buffer[i]) << 24 | UInt32(buffer[i + 1]) << 16 | UInt32(buffer[i + 2]) << 8 | UInt32(buffer[i + 3])
        }
        let length = u32(start)
        let stream = u32(start + 4)
        guard length <= UInt32(TTRPCFrame.maxPayload) else { return .oversized(stream: stream, length: length) }
        let total = TTRPCFrame.headerSize + Int(length)
        guard buffer.count - start >= total else { return .needMore }
        let frame = TTRPCFrame(
            stream: stream, type: buffer[start + 8], flags: buffer[start + 9],
            payload: Array(buffer[(start + TTRPCFrame.headerSize)..<(start + total)]))
        start += total
        if start > 65536 {
            buffer.removeFirst(start)
            start = 0
        }
        return .frame(frame)
    }
}

/// A pending reply: the handler answers now or later (Wait answers when the process exits).
struct RPCReply {
    let connection: TTRPCConnection
    let stream: UInt32

    func send(_ result: Result<[UInt8], RPCError>) {
        connection.send(TTRPCFrame(stream: stream, type: TTRPCFrame.response, payload: TTRPCResponse.encode(result)))
    }
}

typealias RPCHandler = (TTRPCRequest, RPCReply) -> Void

/// One client connection in the event loop: reads frames, writes replies without blocking (what the
/// socket does not take waits for EPOLLOUT). A peer that stops reading cannot grow the queue past
/// maxQueued: it is disconnected.
final class TTRPCConnection {
    static let maxQueued = 16 << 20
    let fd: Int32
    private let loop: EventLoop
    private let handler: RPCHandler
    private var reader = FrameReader()
    private var out: [UInt8] = []
    private(set) var closed = false
    var onClose: (() -> Void)?

    init(fd: Int32, loop: EventLoop, handler: @escaping RPCHandler) {
        self.fd = fd
        self.loop = loop
        self.handler = handler
    }

    func start() throws(SysError) {
        try loop.watch(fd, events: SL_EPOLLIN) { [weak self] ev in self?.onEvents(ev) }
    }

    private func onEvents(_ events: UInt32) {
        if events & SL_EPOLLOUT != 0 { flush() }
        if closed { return }
        if events & (SL_EPOLLIN | SL_EPOLLHUP | SL_EPOLLERR) != 0 { readAvailable() }
    }

    private func readAvailable() {
        while !closed {
            let (buf, n) = FS.readChunk(fd, max: 65536)
            if n > 0 {
                reader.append(buf[...])
                dispatchFrames()
                continue
            }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            close()
            return
        }
    }

    private func dispatchFrames() {
        while !closed {
            switch reader.next() {
            case .needMore:
                return
            case .oversized(let stream, let length):
                send(
                    TTRPCFrame(
                        stream: stream, type: TTRPCFrame.response,
                        payload: TTRPCResponse.encode(
                            .failure(
                                RPCError(
                                    .resourceExhausted,
                                    "message length \(length) exceeds the maximum of \(TTRPCFrame.maxPayload)")))))
                flush()
                close()
                return
            case .frame(let f):
                handle(f)
            }
        }
    }

    private func handle(_ f: TTRPCFrame) {
        let reply = RPCReply(connection: self, stream: f.stream)
        guard f.type == TTRPCFrame.request else {
            reply.send(.failure(RPCError(.invalidArgument, "unexpected message type \(f.type)")))
            return
        }
        let request: TTRPCRequest
        do {
            request = try TTRPCRequest.decode(f.payload)
        } catch {
            reply.send(.failure(RPCError(.invalidArgument, "ttrpc request: \(error)")))
            return
        }
        handler(request, reply)
    }

    func send(_ frame: TTRPCFrame) {
        guard !closed else { return }
        let wasEmpty = out.isEmpty
        out += frame.encode()
        if out.count > Self.maxQueued {
            close()
            return
        }
        if wasEmpty { flush() }
    }

    private func flush() {
        while !out.isEmpty && !closed {
            let n = out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n > 0 {
                out.removeFirst(n)
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                loop.change(fd, events: SL_EPOLLIN | SL_EPOLLOUT)
                return
            } else {
                close()
                return
            }
        }
        if !closed { loop.change(fd, events: SL_EPOLLIN) }
    }

    func close() {
        guard !closed else { return }
        closed = true
        loop.unwatch(fd)
        Glibc.close(fd)
        out = []
        onClose?()
    }
}

/// Accepts ttrpc clients on a listening unix socket.
final class TTRPCServer {
    let loop: EventLoop
    let handler: RPCHandler
    private(set) var connections: [Int32: TTRPCConnection] = [:]

    init(loop: EventLoop, handler: @escaping RPCHandler) {
        self.loop = loop
        self.handler = handler
    }

    func serve(listener: Int32) throws(SysError) {
        _ = sl_set_nonblock(listener)
        // Inherited as fd 3 from `start`; no child of the shim (runtime calls, the publish binary,
        // loggers, probes) gets it.
        _ = sl_set_cloexec(listener)
        try loop.watch(listener) { [unowned self] _ in
            while true {
                let c = sl_accept(listener)
                guard c >= 0 else {
                    // Out of fds or memory the client stays queued and the socket readable: rather
                    // than spin, stop polling it for a while (as UnixSocket.serve does).
                    let e = errno
                    if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                        loop.change(listener, events: 0)
                        loop.after(ms: UnixSocket.acceptBackoffMs) { [loop] in loop.change(listener, events: SL_EPOLLIN)
                        }
                    }
                    return
                }
                let conn = TTRPCConnection(fd: c, loop: loop, handler: handler)
                conn.onClose = { [unowned self] in self.connections[c] = nil }
                do {
                    try conn.start()
                    connections[c] = conn
                } catch {
                    Glibc.close(c)
                }
            }
        }
    }
}
