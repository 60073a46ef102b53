import CLinux
import Glibc

/// What `Proc.spawn` starts: a program, its arguments and environment, and exactly which
/// descriptors it gets.
public struct SpawnRequest: Sendable {
    /// argv; argv[0] is the program unless `program` is set.
    public var args: [String]
    public var program: String?
    /// nil: ours (`environ`).
    public var env: [String]?
    /// Look the program up in PATH (execvp) instead of taking it as a path; only with `env` nil.
    public var searchPath = false
    /// fds[i] becomes descriptor i of the child; -1 for 0, 1 or 2 is /dev/null, -1 above that is closed.
    public var fds: [Int32] = [-1, -1, -1]
    /// Also pass every inherited descriptor without FD_CLOEXEC (the monitor's, podman's preserved
    /// fds). false: the child gets `fds` and nothing else (CVE-2024-21626 family).
    public var inheritOtherFds = false
    public var ownProcessGroup = false
    /// SIGKILL the child when we die (PR_SET_PDEATHSIG).
    public var dieWithParent = false
    public var cwd: String?
    /// An environment variable set to the child's own pid (socket activation's LISTEN_PID).
    public var pidVariable: String?

    public init(_ args: [String], env: [String]? = nil, fds: [Int32] = [-1, -1, -1]) {
        self.args = args
        self.env = env
        self.fds = fds
    }
}

extension Proc {
    /// fork + exec, for single-threaded callers (the runtime, the monitor). Every C string is made
    /// before the fork. A child that cannot set itself up or exec reports the step and errno over a
    /// close-on-exec pipe: that is thrown here (the child reaped), not seen later as exit status 127.
    /// Returns once the child has exec'd: the only wait is for the child's own exec (at most
    /// `execTimeoutMs`; a child stuck before it, say in chdir on a dead NFS server, is killed).
    public static func spawn(_ r: SpawnRequest) throws(SysError) -> pid_t {
        guard let program = r.program ?? r.args.first, !(r.searchPath && r.env != nil) else {
            throw SysError("spawn", "no program, or a PATH search with an environment", errno: EINVAL)
        }
        let c = SpawnStrings(r, program: program)
        defer { c.free() }
        let devnull = OwnedFD(Glibc.open("/dev/null", O_RDWR | O_CLOEXEC))
        var report = try OwnedPipe()
        let pid = try fork()
        if pid == 0 { childSide(r, c, devnull: devnull.raw, report: report.write.raw) }
        report.write = OwnedFD(-1)
        if let (step, err) = readReport(report.read.raw, pid: pid) {
            var st: Int32 = 0
            while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
            throw SysError(step, program, errno: err)
        }
        return pid
    }

    /// In the child: the descriptors, the process attributes, exec. Never returns.
    private static func childSide(_ r: SpawnRequest, _ c: SpawnStrings, devnull: Int32, report: Int32) -> Never {
        func fail(_ step: Int32) -> Never {
            var msg: (Int32, Int32) = (step, errno)
            _ = write(report, &msg, MemoryLayout<(Int32, Int32)>.size)
            _exit(127)
        }
        // Move every source above the targets first, so that no dup2 overwrites a later source.
        let n = Int32(max(r.fds.count, 3))
        for (i, fd) in r.fds.enumerated() {
            let src = fd >= 0 ? fd : (i < 3 ? devnull : -1)
            c.high[i] = src >= 0 ? fcntl(src, F_DUPFD_CLOEXEC, n) : -1
            if src >= 0 && c.high[i] < 0 { fail(0) }
        }
        for i in 0..<r.fds.count {
            if c.high[i] >= 0 { if dup2(c.high[i], Int32(i)) < 0 { fail(0) } } else { Glibc.close(Int32(i)) }
        }
        // Close-on-exec rather than closed: the report pipe must stay open until the exec.
        if !r.inheritOtherFds {
            do { try FS.closeFrom(n, cloexec: true) } catch {
                errno = error.errno
                fail(1)
            }
        }
        if r.ownProcessGroup { _ = setpgid(0, 0) }
        if r.dieWithParent { _ = sl_prctl(SL_PR_SET_PDEATHSIG, UInt(SIGKILL), 0, 0, 0) }
        if let cwd = c.cwd, chdir(cwd) != 0 { fail(2) }
        if let name = r.pidVariable, let envp = c.envp, let i = r.env?.firstIndex(where: { $0.hasPrefix(name + "=") }) {
            envp[i] = strdup("\(name)=\(getpid())")
        }
        _ = sl_signal_default_all()
        _ = sl_sigmask_unblock_all()
        if r.searchPath {
            execvp(c.program, c.argv)
        } else if let envp = c.envp {
            execve(c.program, c.argv, envp)
        } else {
            execv(c.program, c.argv)
        }
        fail(3)
    }

    private static let steps = ["dup2", "close_range", "chdir", "exec"]

    static let execTimeoutMs: Int32 = 10_000

    /// The child's report: (step, errno) when it failed, nil on EOF (it exec'd).
    private static func readReport(_ fd: Int32, pid: pid_t) -> (String, Int32)? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Clock.monotonicMs() + Int64(execTimeoutMs)
        var ready: Int32
        repeat {
            ready = poll(&p, 1, Int32(clamping: max(0, deadline - Clock.monotonicMs())))
        } while ready < 0 && errno == EINTR
        if ready == 0 {
            _ = Glibc.kill(pid, SIGKILL)
            return ("exec (the child did not get there)", ETIMEDOUT)
        }
        var msg: (Int32, Int32) = (0, 0)
        var n: Int
        repeat { n = read(fd, &msg, MemoryLayout<(Int32, Int32)>.size) } while n < 0 && errno == EINTR
        guard n == MemoryLayout<(Int32, Int32)>.size else { return nil }
        return (steps.indices.contains(Int(msg.0)) ? steps[Int(msg.0)] : "spawn", msg.1)
    }
}

extension Proc {
    /// What a child writes to `fd` (up to `limit` bytes) until it exits or `deadline` (monotonic ms)
    /// passes (timedOut; the caller kills it). Once it has exited, what is in the pipe is read without
    /// waiting for EOF: a grandchild that kept the write end must not hold us up.
    public static func collectOutput(
        _ pid: pid_t, from fd: Int32, deadline: Int64?,
        limit: Int = 65536
    ) -> (output: [UInt8], timedOut: Bool) {
        let pidfd = OwnedFD(sl_pidfd_open(pid, 0))
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        /// One read: > 0 bytes kept (up to the limit), 0 at EOF, < 0 on an error.
        func take() -> Int {
            let n = read(fd, &buf, buf.count)
            if n > 0 { out += buf[0..<min(n, max(0, limit - out.count))] }
            return n
        }
        while true {
            var fds = [
                pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: pidfd.raw, events: Int16(POLLIN), revents: 0),
            ]
            let wait = deadline.map { Int32(clamping: max(0, $0 - Clock.monotonicMs())) } ?? -1
            let r = poll(&fds, 2, wait)
            if r == 0 { return (out, true) }
            if r < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[0].revents != 0, case let n = take(), n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                break
            }
            if fds[1].revents != 0 {
                // Exited: what is in the pipe now, without waiting for EOF.
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                while case let n = take(), n > 0 || (n < 0 && errno == EINTR) {}
                break
            }
        }
        return (out, false)
    }
}

/// The C strings and scratch space a child needs, allocated before the fork.
private struct SpawnStrings {
    let program: UnsafeMutablePointer<CChar>
    let argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    let cwd: UnsafeMutablePointer<CChar>?
    let high: UnsafeMutableBufferPointer<Int32>

    init(_ r: SpawnRequest, program: String) {
        func strings(_ list: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
            let b = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: list.count + 1)
            for (i, s) in list.enumerated() { b[i] = strdup(s) }
            b[list.count] = nil
            return b
        }
        self.program = strdup(program)
        argv = strings(r.args)
        envp = r.env.map(strings)
        cwd = r.cwd.flatMap { strdup($0) }
        high = .allocate(capacity: max(r.fds.count, 1))
    }

    func free() {
        Glibc.free(program)
        for list in [argv, envp] {
            guard let list else { continue }
            var p = list
            while let s = p.pointee {
                Glibc.free(s)
                p += 1
            }
            list.deallocate()
        }
        Glibc.free(cwd)
        high.deallocate()
    }
}
