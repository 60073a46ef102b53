import CLinux
import Glibc
import LinuxSystem

/// A stdio URI as containerd passes it in stdout/stderr (`ctr run --log-uri`): a plain path (a FIFO),
/// `file:///path` or `binary:///path?key=value&...`. Parsed as Go's url.Parse does for these: the
/// authority (`//host`) is skipped, the path and the query are percent-decoded.
struct LogURI: Equatable {
    var scheme: String
    var path: String
    /// The query's keys in order, each with its first value ("" when it has none).
    var query: [(key: String, value: String)]

    static func == (a: LogURI, b: LogURI) -> Bool {
        a.scheme == b.scheme && a.path == b.path
            && a.query.map { [$0.key, $0.value] } == b.query.map { [$0.key, $0.value] }
    }

    /// nil for a plain path (no scheme): containerd's FIFOs.
    init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":"), let first = text.first, first.isLetter else { return nil }
        let scheme = text[..<colon]
        guard scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else {
            return nil
        }
        self.scheme = scheme.lowercased()
        var rest = Substring(text[text.index(after: colon)...])
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var rawQuery = Substring("")
        if let q = rest.firstIndex(of: "?") {
            rawQuery = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            rest = rest.firstIndex(of: "/").map { rest[$0...] } ?? ""
        }
        path = Self.unescape(rest, plusIsSpace: false)
        var seen: Set<String> = []
        query = []
        for pair in rawQuery.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.unescape(kv[0], plusIsSpace: true)
            guard seen.insert(key).inserted else { continue }
            query.append((key, kv.count > 1 ? Self.unescape(kv[1], plusIsSpace: true) : ""))
        }
    }

    /// %XX escapes (a malformed one is kept as is); `+` is a space in a query.
    static func unescape(_ s: Substring, plusIsSpace: Bool) -> String {
        let b = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count,
                let v = UInt8(String(decoding: b[i + 1...i + 2], as: UTF8.self), radix: 16)
            {
                out.append(v)
                i += 3
                continue
            }
            out.append(plusIsSpace && b[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : b[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A `binary://` logger, containerd's contract for shim logging binaries: the binary runs with the
/// process's stdout as fd 3 and stderr as fd 4 (read ends of pipes whose write ends the process
/// gets), the write end of a ready pipe as fd 5, the query as arguments (`key value`...), and only
/// CONTAINER_ID and CONTAINER_NAMESPACE in its environment. The shim waits until the binary writes
/// to or closes fd 5, at most readyTimeoutMs (containerd waits without a bound); a binary that cannot
/// run or never signals is the Create's error, and is killed (its process group) and reaped.
/// At Delete it gets SIGTERM, and SIGKILL if it is still there stopTimeoutMs later (through a pidfd:
/// once the reaper took it, its pid may be someone else's).
final class BinaryLogger {
    static let readyTimeoutMs: Int32 = 10_000
    static let stopTimeoutMs: Int64 = 12_000
    let pid: pid_t
    /// The write ends for the process: its stdout and stderr.
    let stdout: Int32
    let stderr: Int32
    private var pidfd: Int32

    private init(pid: pid_t, pidfd: Int32, stdout: Int32, stderr: Int32) {
        self.pid = pid
        self.pidfd = pidfd
        self.stdout = stdout
        self.stderr = stderr
    }

    static func start(_ uri: LogURI, containerID: String, namespace: String) throws(SysError) -> BinaryLogger {
        guard uri.path.hasPrefix("/") else {
            throw SysError("start the logging binary (binary:// needs an absolute path)", uri.path, errno: EINVAL)
        }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        func pipe() throws(SysError) -> (r: Int32, w: Int32) {
            var p: [Int32] = [-1, -1]
            try sys("pipe") { sl_pipe2(&p, O_CLOEXEC) }
            fds += p
            return (p[0], p[1])
        }
        let out = try pipe()
        let err = try pipe()
        let ready = try pipe()
        var args = [uri.path]
        for (k, v) in uri.query { args += [k, v] }
        var spec = SpawnRequest(
            args, env: ["CONTAINER_ID=" + containerID, "CONTAINER_NAMESPACE=" + namespace],
            fds: [-1, -1, -1, out.r, err.r, ready.w])
        spec.ownProcessGroup = true
        let pid = try Proc.spawn(spec)
        let pidfd = sl_pidfd_open(pid, 0)
        close(ready.w)
        fds.removeAll { $0 == ready.w }
        if let e = waitReady(ready.r) {
            _ = Glibc.kill(-pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            if pidfd >= 0 { close(pidfd) }
            throw SysError(e.op, uri.path, errno: e.errno)
        }
        fds.removeAll { $0 == out.w || $0 == err.w }
        return BinaryLogger(pid: pid, pidfd: pidfd, stdout: out.w, stderr: err.w)
    }

    /// nil once the binary wrote a byte to fd 5 or closed it; else what went wrong.
    private static func waitReady(_ fd: Int32) -> (op: String, errno: Int32)? {
        let deadline = Clock.monotonicMs() + Int64(readyTimeoutMs)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline - Clock.monotonicMs()
            if left <= 0 {
                return ("wait for the logging binary's ready signal on fd 5 (\(readyTimeoutMs / 1000) s)", ETIMEDOUT)
            }
            let r = poll(&p, 1, Int32(left))
            if r < 0 && errno == EINTR { continue }
            if r < 0 { return ("poll the logging binary's ready pipe", errno) }
            if r > 0 { break }
        }
        var b: UInt8 = 0
        var n: Int
        repeat { n = read(fd, &b, 1) } while n < 0 && errno == EINTR
        return n < 0 ? ("read the logging binary's ready pipe", errno) : nil
    }

    /// SIGTERM now, SIGKILL after stopTimeoutMs unless it has exited.
    func stop(_ loop: EventLoop) {
        guard pidfd >= 0 else {
            _ = Glibc.kill(pid, SIGTERM)
            return
        }
        _ = sl_pidfd_send_signal(pidfd, SIGTERM, 0)
        loop.after(ms: Self.stopTimeoutMs) { [self] in
            _ = sl_pidfd_send_signal(pidfd, SIGKILL, 0)
            close(pidfd)
            pidfd = -1
        }
    }
}
