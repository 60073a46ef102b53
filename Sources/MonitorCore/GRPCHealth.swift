/// The least of HTTP/2 (cleartext, prior knowledge) needed for one `grpc.health.v1.Health/Check`
/// call: the client preface, an empty SETTINGS frame, one HEADERS frame (HPACK literals, no Huffman,
/// no dynamic table) and one DATA frame; the answer is read from the DATA frame's
/// HealthCheckResponse (field 1, status; 1 = SERVING). Header blocks from the server are not
/// decoded: a stream that ends without a response message counts as not serving.
struct GRPCHealthClient {
    enum Outcome: Equatable {
        case serving
        case notServing(String)
        case needMore
    }

    private var acked = false
    private var ackDue = false

    static let frameData: UInt8 = 0, frameHeaders: UInt8 = 1, frameRSTStream: UInt8 = 3, frameSettings: UInt8 = 4,
        frameGoAway: UInt8 = 7
    static let flagEndStream: UInt8 = 1, flagEndHeaders: UInt8 = 4, flagAck: UInt8 = 1

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [
            UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff), type, flags,
            UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff),
        ] + payload
    }

    /// HPACK string literal, no Huffman coding (7-bit prefix length integer).
    static func hpackString(_ s: String) -> [UInt8] {
        hpackInteger(s.utf8.count, prefixBits: 7, firstByte: 0) + Array(s.utf8)
    }

    static func hpackInteger(_ value: Int, prefixBits: Int, firstByte: UInt8) -> [UInt8] {
        let max = (1 << prefixBits) - 1
        if value < max { return [firstByte | UInt8(value)] }
        var out = [firstByte | UInt8(max)]
        var v = value - max
        while v >= 128 {
            out.append(UInt8(v & 0x7f | 0x80))
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    /// Everything the client sends, in one write.
    func request(authority: String, service: String) -> [UInt8] {
        var headers: [UInt8] = [0x83, 0x86]  // :method POST, :scheme http
        headers += [0x04] + Self.hpackString("/grpc.health.v1.Health/Check")  // :path (static index 4)
        headers += [0x01] + Self.hpackString(authority)  // :authority (static index 1)
        for (name, value) in [("content-type", "application/grpc"), ("te", "trailers")] {
            headers += [0x00] + Self.hpackString(name) + Self.hpackString(value)
        }
        var message: [UInt8] = []
        if !service.isEmpty {
            let s = Array(service.utf8)
            message = [0x0a] + varint(s.count) + s  // HealthCheckRequest.service = 1
        }
        let n = message.count
        let grpcMessage =
            [0, UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + message
        return Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
            + Self.frame(type: Self.frameSettings, flags: 0, stream: 0, [])
            + Self.frame(type: Self.frameHeaders, flags: Self.flagEndHeaders, stream: 1, headers)
            + Self.frame(type: Self.frameData, flags: Self.flagEndStream, stream: 1, grpcMessage)
    }

    /// A SETTINGS acknowledgement once the server's SETTINGS arrived.
    mutating func pendingAck() -> [UInt8]? {
        guard ackDue && !acked else { return nil }
        acked = true
        return Self.frame(type: Self.frameSettings, flags: Self.flagAck, stream: 0, [])
    }

    /// Looks at every complete frame received so far.
    mutating func parse(_ bytes: [UInt8]) -> Outcome {
        var i = 0
        while bytes.count - i >= 9 {
            let length = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            let type = bytes[i + 3]
            let flags = bytes[i + 4]
            let stream =
                (UInt32(bytes[i + 5]) & 0x7f) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8
                | UInt32(bytes[i + 8])
            guard bytes.count - i - 9 >= length else { break }
            let payload = Array(bytes[(i + 9)..<(i + 9 + length)])
            i += 9 + length
            switch type {
            case Self.frameSettings where flags & Self.flagAck == 0:
                ackDue = true
            case Self.frameData where stream == 1:
                guard payload.count >= 5 else { return .notServing("short gRPC message") }
                if let status = Self.healthStatus(Array(payload[5...])) {
                    return status == 1 ? .serving : .notServing("status \(Self.statusName(status))")
                }
                return .notServing("SERVICE_UNKNOWN or empty health response")
            case Self.frameHeaders where stream == 1 && flags & Self.flagEndStream != 0:
                return .notServing("call ended without a response (service unknown or health service missing)")
            case Self.frameRSTStream where stream == 1:
                return .notServing("stream reset by the server")
            case Self.frameGoAway:
                return .notServing("server sent GOAWAY")
            default:
                break
            }
        }
        return .needMore
    }

    /// HealthCheckResponse.status (field 1, varint); nil if absent (proto3 default UNKNOWN = 0).
    static func healthStatus(_ message: [UInt8]) -> Int? {
        var i = 0
        while i < message.count {
            let tag = message[i]
            i += 1
            guard tag & 7 == 0 else { return nil }  // only varint fields are expected
            var value = 0
            var shift = 0
            while i < message.count {
                let b = message[i]
                i += 1
                value |= Int(b & 0x7f) << shift
                shift += 7
                if b & 0x80 == 0 { break }
            }
            if tag >> 3 == 1 { return value }
        }
        return 0
    }

    static func statusName(_ s: Int) -> String {
        switch s {
        case 0: return "UNKNOWN"
        case 1: return "SERVING"
        case 2: return "NOT_SERVING"
        case 3: return "SERVICE_UNKNOWN"
        default: return String(s)
        }
    }
}

func varint(_ value: Int) -> [UInt8] {
    var out: [UInt8] = []
    var v = value
    while v >= 128 {
        out.append(UInt8(v & 0x7f | 0x80))
        v >>= 7
    }
    out.append(UInt8(v))
    return out
}
