import CLinux
import Glibc
import LinuxSystem
import OCI

/// The agent's sync pipe (_OCI_SYNCPIPE): one JSON object per line, `{"data": N}` (api-version 1) or
/// `{"pid": N}` / `{"exit_code": N}` (legacy), with `"message"` on errors. Works over a socketpair,
/// a pipe or a FIFO.
struct SyncPipe {
    let fd: Int32
    let key: String

    static func fromEnvironment(apiVersion: Bool, exec: Bool) -> SyncPipe? {
        guard let fd = fdFromEnvironment("_OCI_SYNCPIPE") else { return nil }
        return SyncPipe(fd: fd, key: apiVersion ? "data" : (exec ? "exit_code" : "pid"))
    }

    func send(_ value: Int32, message: String? = nil) {
        var obj: JSONObject = [key: .number(String(value))]
        if let message { obj.members.append(("message", .string(message))) }
        _ = try? FS.writeAll(fd: fd, JSONValue.object(obj).serializedBytes() + [UInt8(ascii: "\n")])
    }

    func fail(_ message: String) { send(-1, message: message) }
}

enum UnixSocket {
    /// socket + bind + listen (not for SOCK_DGRAM) at `directory/name`, bound through /proc/self/fd so long bundle
    /// paths
    /// do not hit the 108-byte sun_path limit. The socket is non-blocking and close-on-exec.
    static func listen(directory: String, name: String, type: Int32, mode: mode_t) throws(SysError) -> Int32 {
        let dir = try sys("open", directory) { Glibc.open(directory, SL_O_PATH | O_DIRECTORY | O_CLOEXEC) }
        defer { close(dir) }
        let path = directory + "/" + name
        unlink(path)
        let fd = try sys("socket", path) {
            socket(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        do throws(SysError) {
            // The mode comes from the umask at bind: no chmod by path (a symlink swapped in after
            // bind would be followed). The monitor is single-threaded.
            let saved = umask(~mode & 0o777)
            defer { umask(saved) }
            try bind(fd, "/proc/self/fd/\(dir)/\(name)", shown: path)
            if type != Int32(SOCK_DGRAM.rawValue) { try sys("listen", path) { Glibc.listen(fd, 128) } }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    static func bind(_ fd: Int32, _ path: String, shown: String) throws(SysError) {
        _ = try withUnixAddress(path, op: "bind") { (addr, len) throws(SysError) in
            try sys("bind", shown) { Glibc.bind(fd, addr, len) }
        }
    }

    /// How long a listening socket is not polled after accept ran out of fds or memory.
    static let acceptBackoffMs: Int64 = 500

    /// The back-off timer of a served socket, if one is armed: whoever closes the socket while the
    /// loop goes on (a shim's control socket at Delete) cancels it, so it never re-arms a reused fd.
    final class AcceptBackoff {
        var timer: Int?
    }

    /// Accepts clients of a listening socket in the loop; `accepted` admits a client (false: it is
    /// closed), `onReadable` runs for each readable admitted client. Out of fds (EMFILE, ENFILE) or
    /// memory, the pending client stays queued and the socket readable: rather than spinning on it,
    /// the loop stops polling it for a while and keeps serving the clients it has.
    @discardableResult
    static func serve(
        _ fd: Int32, loop: EventLoop, accepted: @escaping (Int32) -> Bool,
        onReadable: @escaping (Int32) -> Void
    ) throws(SysError) -> AcceptBackoff {
        let backoff = AcceptBackoff()
        try loop.watch(fd) { _ in
            let c = sl_accept(fd)
            guard c >= 0 else {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    loop.change(fd, events: 0)
                    backoff.timer = loop.after(ms: acceptBackoffMs) {
                        backoff.timer = nil
                        loop.change(fd, events: SL_EPOLLIN)
                    }
                }
                return
            }
            guard accepted(c) else {
                Glibc.close(c)
                return
            }
            do {
                try loop.watch(c) { _ in onReadable(c) }
            } catch {
                Glibc.close(c)
            }
        }
        return backoff
    }
}

/// A temporary --console-socket: the runtime connects and passes the pty master over SCM_RIGHTS.
struct ConsoleSocket {
    let dir: String
    let path: String
    let fd: Int32

    static func make() throws(SysError) -> ConsoleSocket {
        var template = Array("/tmp/swiftlet-monitor-XXXXXX".utf8CString)
        let dir: String = try template.withUnsafeMutableBufferPointer { (buf) throws(SysError) -> String in
            guard let base = buf.baseAddress, mkdtemp(base) != nil else {
                throw SysError("mkdtemp", "/tmp", errno: errno)
            }
            return String(cString: base)
        }
        do {
            let fd = try UnixSocket.listen(
                directory: dir, name: "console.sock", type: Int32(SOCK_STREAM.rawValue), mode: 0o700)
            return ConsoleSocket(dir: dir, path: dir + "/console.sock", fd: fd)
        } catch {
            rmdir(dir)
            throw error
        }
    }

    /// The master the runtime sent (it has exited, so the connection is queued).
    func receiveMaster() -> Int32? {
        let conn = sl_accept(fd)
        guard conn >= 0 else { return nil }
        defer { Glibc.close(conn) }
        _ = fcntl(conn, F_SETFL, 0)
        var got: Int32 = -1
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { sl_recv_fd(conn, &got, $0.baseAddress, $0.count) }
        guard n >= 0, got >= 0 else { return nil }
        _ = sl_set_cloexec(got)
        return got
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
        rmdir(dir)
    }
}

/// conmon's attach socket: `<bundle>/attach`, SOCK_SEQPACKET. Output goes to every client as packets
/// `[stream][data]` (2 = stdout, 3 = stderr); client packets are raw stdin bytes.
final class AttachServer {
    static let stdoutStream: UInt8 = 2
    static let stderrStream: UInt8 = 3

    let fd: Int32
    let path: String
    unowned let monitor: Monitor
    private var clients: Set<Int32> = []

    init(directory: String, monitor: Monitor) throws(SysError) {
        self.monitor = monitor
        path = directory + "/attach"
        fd = try UnixSocket.listen(
            directory: directory, name: "attach", type: Int32(SOCK_SEQPACKET.rawValue), mode: 0o700)
        do {
            try UnixSocket.serve(
                fd, loop: monitor.loop,
                accepted: { [unowned self] c in
                    self.clients.insert(c)
                    return true
                },
                onReadable: { [unowned self] c in self.receive(c) })
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Clients still in the listen backlog: at exit they must get the last output too (a client that
    /// connected just before a short-lived container ran would otherwise miss all of it).
    func acceptPending() {
        while true {
            let c = sl_accept(fd)
            guard c >= 0 else { return }
            clients.insert(c)
        }
    }

    private func receive(_ c: Int32) {
        var buf = [UInt8](repeating: 0, count: 8192)
        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            monitor.writeStdin(buf[0..<n])
        } else if n == 0 {
            // The client shut down its sending side (stdin ended) but still reads the output.
            monitor.loop.unwatch(c)
            monitor.attachClientClosed()
        } else if errno != EAGAIN && errno != EINTR {
            drop(c)
            monitor.attachClientClosed()
        }
    }

    private func drop(_ c: Int32) {
        monitor.loop.unwatch(c)
        Glibc.close(c)
        clients.remove(c)
    }

    func broadcast(_ chunk: ArraySlice<UInt8>, stream: Stream) {
        guard !clients.isEmpty else { return }
        let packet = [stream == .stdout ? Self.stdoutStream : Self.stderrStream] + chunk
        for c in clients {
            let n = packet.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0 && errno != EAGAIN { drop(c) }
        }
    }

    func close() {
        for c in clients {
            shutdown(c, Int32(SHUT_RDWR))
            Glibc.close(c)
        }
        clients = []
        monitor.loop.unwatch(fd)
        Glibc.close(fd)
    }
}
