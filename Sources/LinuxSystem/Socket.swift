import CLinux
import Glibc

/// One end of a SOCK_SEQPACKET socketpair: whole messages, optional fd attached.
public struct SeqPacket: Sendable {
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }

    public static func pair() throws(SysError) -> (SeqPacket, SeqPacket) {
        var fds: [Int32] = [-1, -1]
        try sys("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (SeqPacket(fd: fds[0]), SeqPacket(fd: fds[1]))
    }

    public func send(_ bytes: [UInt8], fd attached: Int32? = nil) throws(SysError) {
        let payload = bytes.isEmpty ? [0] : bytes
        if let attached {
            _ = try sys("sendmsg") { payload.withUnsafeBytes { sl_send_fd(fd, attached, $0.baseAddress, $0.count) } }
        } else {
            _ = try sys("send") {
                payload.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// Receives one message; nil at EOF (peer closed, e.g. after a successful exec).
    /// A peer that closed with a message of ours unread makes the next recvmsg fail with ECONNRESET
    /// before the messages it sent are returned (the kernel reports the socket error first, once):
    /// read again, so an error the peer sent before exiting is not lost (issue 14 item 3).
    public func receive() throws(SysError) -> (bytes: [UInt8], fd: Int32?)? {
        var buf = [UInt8](repeating: 0, count: 65536)
        var got: Int32 = -1
        let n: Int
        do {
            n = try sys("recvmsg") { buf.withUnsafeMutableBytes { sl_recv_fd(fd, &got, $0.baseAddress, $0.count) } }
        } catch {
            guard error.errno == ECONNRESET else { throw error }
            n = try sys("recvmsg") { buf.withUnsafeMutableBytes { sl_recv_fd(fd, &got, $0.baseAddress, $0.count) } }
        }
        if n == 0 { return nil }
        return (Array(buf[0..<n]), got >= 0 ? got : nil)
    }

    public func close() { _ = Glibc.close(fd) }
}

/// Connects to a unix stream socket (e.g. --console-socket) and sends one fd with a name.
public func sendFdToUnixSocket(path: String, fd: Int32, name: String) throws(SysError) {
    let s = try sys("socket", path) { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    defer { close(s) }
    _ = try withUnixAddress(path, op: "connect") { (addr, len) throws(SysError) in
        try sys("connect", path) { connect(s, addr, len) }
    }
    _ = try sys("sendmsg", path) { Array(name.utf8).withUnsafeBytes { sl_send_fd(s, fd, $0.baseAddress, $0.count) } }
}

/// Calls `body` with a sockaddr_un for `path` (ENAMETOOLONG beyond the 108-byte sun_path).
public func withUnixAddress<T>(
    _ path: String, op: String,
    _ body: (UnsafePointer<sockaddr>, socklen_t) throws(SysError) -> T
) throws(SysError) -> T {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw SysError(op, path, errno: ENAMETOOLONG) }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    return try withUnsafePointer(to: &addr) { (p) throws(SysError) -> T in
        try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SysError) -> T in
            try body(sa, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
}
