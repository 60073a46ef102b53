import CLinux
import Glibc

/// Process helpers: fork/wait, liveness from /proc, signals, threads.
public enum Proc {
    /// Number of threads of this process. Namespace calls (unshare/setns) need exactly one.
    public static func threadCount() throws(SysError) -> Int {
        try FS.listDirectory("/proc/self/task").count
    }

    /// Fails unless the process is single-threaded (clone/setns/unshare give EINVAL otherwise).
    public static func assertSingleThreaded() throws(SysError) {
        let n = try threadCount()
        if n != 1 { throw SysError("process has \(n) threads, need 1 for namespace calls", errno: EINVAL) }
    }

    public static func fork() throws(SysError) -> pid_t {
        try sys("fork") { Glibc.fork() }
    }

    /// fork, with new namespaces made by the kernel for the child (`clone` without a new stack).
    /// As with clone3, glibc's fork handlers do not run: only for a single-threaded caller.
    public static func clone(namespaces flags: Int32) throws(SysError) -> pid_t {
        try sys("clone", "new namespaces") { sl_clone(UInt(UInt32(bitPattern: flags))) }
    }

    /// Waits for a child and returns its raw wait status.
    public static func wait(_ pid: pid_t, options: Int32 = 0) throws(SysError) -> (pid: pid_t, status: Int32) {
        var st: Int32 = 0
        let r = try sys("waitpid") { waitpid(pid, &st, options) }
        return (r, st)
    }

    /// Exit code as a shell reports it: the status, or 128+signal.
    public static func exitCode(_ status: Int32) -> Int32 {
        if sl_wifexited(status) != 0 { return sl_wexitstatus(status) }
        if sl_wifsignaled(status) != 0 { return 128 + sl_wtermsig(status) }
        return 255
    }

    /// /proc/PID/stat: the state letter and the start time (field 22, clock ticks since boot).
    public static func stat(_ pid: pid_t) -> (state: Character, startTime: UInt64)? {
        guard let s = try? FS.readString("/proc/\(pid)/stat"), let close = s.lastIndex(of: ")") else { return nil }
        let rest = s[s.index(after: close)...].split(separator: " ")
        // rest[0] is field 3 (state); field 22 is rest[19].
        guard rest.count > 19, let st = rest[0].first, let start = UInt64(rest[19]) else { return nil }
        return (st, start)
    }

    /// True if the process exists, is not a zombie, and (if given) has the recorded start time.
    public static func isAlive(_ pid: pid_t, startTime: UInt64? = nil) -> Bool {
        guard pid > 0, let s = stat(pid) else { return false }
        if s.state == "Z" || s.state == "X" { return false }
        if let startTime, startTime != s.startTime { return false }
        return true
    }

    public static func kill(_ pid: pid_t, _ sig: Int32) throws(SysError) {
        try sys("kill", "pid \(pid)") { Glibc.kill(pid, sig) }
    }

    /// Signals `pid` only while it is the live process that started at `startTime`: a pidfd pins it
    /// between the check and the signal, so a recycled pid is never hit. ESRCH when it is gone (or a
    /// zombie). Falls back to kill(2) on kernels without pidfd_open.
    public static func signal(_ pid: pid_t, startTime: UInt64, _ sig: Int32) throws(SysError) {
        let fd = OwnedFD(sl_pidfd_open(pid, 0))
        if fd.raw < 0 && errno != ENOSYS { throw SysError("pidfd_open", "pid \(pid)", errno: errno) }
        guard isAlive(pid, startTime: startTime) else { throw SysError("kill", "pid \(pid)", errno: ESRCH) }
        if fd.raw < 0 { return try kill(pid, sig) }
        try sys("pidfd_send_signal", "pid \(pid)") { sl_pidfd_send_signal(fd.raw, sig, 0) }
    }

    /// A pidfd of `pid`, checked to be the process that started at `startTime` (when given) after it
    /// was opened, so a recycled pid is never handed out.
    public static func openPidfd(_ pid: pid_t, startTime: UInt64?) throws(SysError) -> OwnedFD {
        let fd = OwnedFD(try sys("pidfd_open", "pid \(pid)") { sl_pidfd_open(pid, 0) })
        if let startTime, !isAlive(pid, startTime: startTime) {
            throw SysError("pidfd_open", "pid \(pid)", errno: ESRCH)
        }
        return fd
    }

    /// Sends a pidfd of `pid` to the AF_UNIX socket at `path` (runc's --pidfd-socket).
    public static func sendPidfd(_ pid: pid_t, startTime: UInt64?, to path: String) throws(SysError) {
        let fd = try openPidfd(pid, startTime: startTime)
        try sendFdToUnixSocket(path: path, fd: fd.raw, name: "pidfd")
    }

    /// Waits until a (possibly non-child) process has exited, up to timeoutMs; true if it did.
    public static func waitExit(_ pid: pid_t, startTime: UInt64?, timeoutMs: Int32) -> Bool {
        let fd = OwnedFD(sl_pidfd_open(pid, 0))
        if fd.raw >= 0 {
            var p = pollfd(fd: fd.raw, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, timeoutMs)
            return r > 0 || !isAlive(pid, startTime: startTime)
        }
        return !isAlive(pid, startTime: startTime)
    }

    public static func setChildSubreaper() throws(SysError) {
        try sys("prctl(PR_SET_CHILD_SUBREAPER)") { sl_prctl(SL_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }
    }

    /// Writes the process's own inode of namespace `name` (e.g. "pid"), for comparing namespaces.
    public static func namespaceInode(_ pid: String, _ name: String) -> ino_t? {
        FS.statOf("/proc/\(pid)/ns/\(name)").map { $0.st_ino }
    }
}

/// Signal names as runc accepts them (`KILL`, `SIGKILL`, `9`).
public enum Signals {
    public static let table: [(String, Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("IOT", SIGIOT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL),
        ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM),
        ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT), ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP),
        ("TSTP", SIGTSTP), ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO),
        ("POLL", SIGPOLL), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// Parses a signal name or number; nil when unknown.
    public static func parse(_ s: String) -> Int32? {
        if let n = Int32(s) { return n > 0 && n < 65 ? n : nil }
        var name = s.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if name.hasPrefix("RTMIN") || name.hasPrefix("RTMAX") {
            let base = name.hasPrefix("RTMIN") ? Int32(34) : Int32(64)
            let rest = name.dropFirst(5)
            if rest.isEmpty { return base }
            guard let off = Int32(rest), base == 34 ? off > 0 : off < 0 else { return nil }
            let n = base + off
            return n >= 34 && n <= 64 ? n : nil
        }
        return table.first { $0.0 == name }?.1
    }
}

extension Proc {
    /// Runs a program (PATH lookup) with stdout captured (up to 16 MiB); stderr passes through. For
    /// `ps`. Killed after `timeoutMs` (ps can hang on the /proc files of a process stuck in the kernel).
    public static func capture(_ args: [String], timeoutMs: Int64 = 30_000) throws(SysError) -> (
        status: Int32, output: String
    ) {
        var pipe = try OwnedPipe()
        var r = SpawnRequest(args, fds: [0, pipe.write.raw, 2])
        r.searchPath = true
        let pid = try spawn(r)
        pipe.write = OwnedFD(-1)
        let (out, timedOut) = collectOutput(
            pid, from: pipe.read.raw, deadline: Clock.monotonicMs() + timeoutMs,
            limit: 16 << 20)
        if timedOut { _ = Glibc.kill(pid, SIGKILL) }
        let (_, status) = try wait(pid)
        if timedOut { throw SysError(args[0], "killed after \(timeoutMs / 1000) s", errno: ETIMEDOUT) }
        return (exitCode(status), String(decoding: out, as: UTF8.self))
    }
}
