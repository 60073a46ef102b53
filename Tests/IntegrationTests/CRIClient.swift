// A minimal, test-only gRPC client over HTTP/2 cleartext on a unix socket (RFC 9113, "prior knowledge"):
// enough to act as the kubelet towards containerd's CRI plugin (CRISmokeTests.swift). One call at a time
// on one connection, one stream per call:
//   client: preface, SETTINGS; per call HEADERS (HPACK literals, END_HEADERS) + DATA (5-byte gRPC prefix,
//           END_STREAM); SETTINGS/PING acks and WINDOW_UPDATEs for whatever DATA arrives.
//   server: HEADERS (:status), DATA (the reply), HEADERS with END_STREAM (grpc-status, grpc-message), or
//           a trailers-only HEADERS. Every read is bounded by the call's deadline (poll).

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

struct GRPCError: Error, CustomStringConvertible {
    var status: Int  // the grpc-status, or -1 for a transport failure
    var message: String
    var description: String { status < 0 ? "gRPC transport: \(message)" : "gRPC status \(status): \(message)" }
}

final class GRPCClient {
    private let fd: Int32
    private var decoder = HPACKDecoder()
    private var nextStream: UInt32 = 1
    private var buffer: [UInt8] = []
    private let path: String

    static let maxFrame = 16384  // SETTINGS_MAX_FRAME_SIZE default, both ways

    init(socketPath: String) throws {
        path = socketPath
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw GRPCError(status: -1, message: "socket: \(String(cString: strerror(errno)))") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close(fd)
            throw GRPCError(status: -1, message: "socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw GRPCError(status: -1, message: "connect \(socketPath): \(String(cString: strerror(e)))")
        }
        // Preface, then our SETTINGS: no push (2 = 0), a 1 MiB stream window (4); the connection window
        // grows by a WINDOW_UPDATE on stream 0 to the same size.
        var out = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        var settings: [UInt8] = []
        for (id, value) in [(UInt16(2), UInt32(0)), (4, 1 << 20)] {
            settings += [UInt8(id >> 8), UInt8(id & 0xff)] + be32(value)
        }
        out += frame(type: 4, flags: 0, stream: 0, settings)
        out += frame(type: 8, flags: 0, stream: 0, be32((1 << 20) - 65535))
        try send(out)
    }

    deinit { close(fd) }

    /// Calls /SERVICE/METHOD with a serialized request; returns the serialized reply, or throws the
    /// grpc-status and grpc-message of a failed call.
    func call(_ method: String, _ request: [UInt8], timeout: Double = 60) throws -> [UInt8] {
        let stream = nextStream
        nextStream += 2
        let deadline = Date().addingTimeInterval(timeout)
        let headers = HPACK.encode([
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "\(Int(timeout))S"),
        ])
        precondition(headers.count <= GRPCClient.maxFrame, "request headers larger than one frame")
        var out = frame(type: 1, flags: 0x4, stream: stream, headers)  // END_HEADERS
        let message = [0] + be32(UInt32(request.count)) + request  // uncompressed
        precondition(message.count < 65535, "request larger than the initial flow-control window")
        var rest = message[...]
        repeat {
            let chunk = rest.prefix(GRPCClient.maxFrame)
            rest = rest.dropFirst(chunk.count)
            out += frame(type: 0, flags: rest.isEmpty ? 0x1 : 0, stream: stream, Array(chunk))  // END_STREAM
        } while !rest.isEmpty
        try send(out)
        return try receive(stream: stream, method: method, deadline: deadline)
    }

    // MARK: - Receiving

    private func receive(stream: UInt32, method: String, deadline: Date) throws -> [UInt8] {
        var data: [UInt8] = []
        var fields: [(String, String)] = []
        var block: [UInt8] = []  // a header block spread over HEADERS + CONTINUATION
        var blockEndsStream = false
        while true {
            let (type, flags, sid, payload) = try readFrame(deadline: deadline)
            switch type {
            case 0 where sid == stream:  // DATA
                data += try unpad(payload, flags: flags)
                if !payload.isEmpty {  // give the window back, connection and stream
                    try send(
                        frame(type: 8, flags: 0, stream: 0, be32(UInt32(payload.count)))
                            + frame(type: 8, flags: 0, stream: stream, be32(UInt32(payload.count))))
                }
                if flags & 0x1 != 0 { throw GRPCError(status: -1, message: "\(method): stream ended without trailers") }
            case 1 where sid == stream, 9 where sid == stream:  // HEADERS, CONTINUATION
                var p = type == 1 ? try unpad(payload, flags: flags) : payload
                if type == 1 {
                    if flags & 0x20 != 0 { p = Array(p.dropFirst(5)) }  // PRIORITY fields
                    blockEndsStream = flags & 0x1 != 0
                }
                block += p
                if flags & 0x4 != 0 {  // END_HEADERS
                    fields += try decoder.decode(block)
                    block = []
                    if blockEndsStream { return try finish(method: method, fields: fields, data: data) }
                }
            case 3 where sid == stream:  // RST_STREAM
                throw GRPCError(status: -1, message: "\(method): stream reset, HTTP/2 error \(u32(payload, 0))")
            case 4 where flags & 0x1 == 0:  // SETTINGS (not an ACK): acknowledge
                try send(frame(type: 4, flags: 0x1, stream: 0, []))
            case 6 where flags & 0x1 == 0:  // PING: answer with the same payload
                try send(frame(type: 6, flags: 0x1, stream: 0, payload))
            case 7:  // GOAWAY
                let text = String(decoding: payload.dropFirst(8), as: UTF8.self)
                throw GRPCError(status: -1, message: "\(method): GOAWAY, error \(u32(payload, 4)) \(text)")
            default:
                break  // WINDOW_UPDATE, acks, PRIORITY, frames of other streams
            }
        }
    }

    private func finish(method: String, fields: [(String, String)], data: [UInt8]) throws -> [UInt8] {
        let status = fields.first { $0.0 == ":status" }?.1
        guard status == "200" else {
            throw GRPCError(status: -1, message: "\(method): HTTP status \(status ?? "none")")
        }
        guard let grpcStatus = fields.last(where: { $0.0 == "grpc-status" }).flatMap({ Int($0.1) }) else {
            throw GRPCError(status: -1, message: "\(method): no grpc-status in the trailers")
        }
        guard grpcStatus == 0 else {
            let raw = fields.last { $0.0 == "grpc-message" }?.1 ?? ""
            throw GRPCError(status: grpcStatus, message: "\(method): " + (raw.removingPercentEncoding ?? raw))
        }
        // One length-prefixed message: compressed flag 0, big-endian length.
        guard data.count >= 5, data[0] == 0, Int(u32(data, 1)) == data.count - 5 else {
            throw GRPCError(status: -1, message: "\(method): malformed gRPC message (\(data.count) bytes)")
        }
        return Array(data[5...])
    }

    private func unpad(_ p: [UInt8], flags: UInt8) throws -> [UInt8] {
        guard flags & 0x8 != 0 else { return p }  // PADDED
        guard let padLength = p.first, Int(padLength) < p.count else {
            throw GRPCError(status: -1, message: "bad padding")
        }
        return Array(p[1..<(p.count - Int(padLength))])
    }

    private func readFrame(deadline: Date) throws -> (UInt8, UInt8, UInt32, [UInt8]) {
        let header = try read(9, deadline: deadline)
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        guard length <= GRPCClient.maxFrame else { throw GRPCError(status: -1, message: "frame of \(length) bytes") }
        let sid = u32(header, 5) & 0x7fff_ffff
        return (header[3], header[4], sid, try read(length, deadline: deadline))
    }

    private func read(_ n: Int, deadline: Date) throws -> [UInt8] {
        while buffer.count < n {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw GRPCError(status: -1, message: "no reply from \(path) in time") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let rc = poll(&pfd, 1, Int32(min(left, 5) * 1000) + 1)
            if rc < 0 && errno == EINTR { continue }
            guard rc >= 0 else { throw GRPCError(status: -1, message: "poll: \(String(cString: strerror(errno)))") }
            if rc == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let got = Glibc.read(fd, &chunk, chunk.count)
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw GRPCError(
                    status: -1, message: got == 0 ? "connection closed" : "read: \(String(cString: strerror(errno)))")
            }
            buffer += chunk[0..<got]
        }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    private func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw GRPCError(status: -1, message: "send: \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    private func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags] + be32(stream) + payload
    }

    private func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
    }
    private func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        guard b.count >= at + 4 else { return 0 }
        return UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
}
