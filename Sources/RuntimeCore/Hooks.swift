import Glibc
import CLinux
import OCI
import LinuxSystem

/// OCI hooks: each runs with the container state JSON on stdin; a non-zero exit or a timeout fails it.
/// A hook gets stdio and no other descriptor (as in runc; CVE-2024-21626 family). A hook without
/// `env` inherits the environment of whoever runs it, as runc's do: the runtime's for the runtime's
/// hooks, the container process's for startContainer (Spec/cli.md).
enum Hooks {
    static func run(_ hooks: [Hook]?, kind: String, state: String) throws(RuntimeError) {
        for (i, h) in (hooks ?? []).enumerated() {
            do { try runOne(h, kind: kind, index: i, state: state) } catch { throw RuntimeError.wrapping(error) }
        }
    }

    /// Runs every hook even if one fails; failures come back as warnings.
    static func runWarning(_ hooks: [Hook]?, kind: String, state: String) -> [String] {
        var warnings: [String] = []
        for (i, h) in (hooks ?? []).enumerated() {
            do { try runOne(h, kind: kind, index: i, state: state) } catch { warnings.append("\(error)") }
        }
        return warnings
    }

    /// `inheritedEnv`: the environment a hook without `env` gets; nil: the runtime's own.
    static func runOne(_ h: Hook, kind: String, index: Int, state: String, inheritedEnv: [String]? = nil) throws {
        let what = "hooks.\(kind)[\(index)] (\(h.path))"
        if access(h.path, X_OK) != 0 { throw SysError("\(what): cannot execute", errno: errno) }
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1]
        try sys("pipe", what) { sl_pipe2(&input, O_CLOEXEC) }
        defer { close(input[0]); close(input[1]) }
        try sys("pipe", what) { sl_pipe2(&output, O_CLOEXEC) }
        var outRead = output[0]
        defer { close(outRead) }
        let argv = ((h.args?.isEmpty ?? true) ? [h.path] : h.args ?? []).map { strdup($0) } + [nil]
        let envp = (h.env ?? inheritedEnv).map { $0.map { strdup($0) } + [nil] }
        let pid = try Proc.fork()
        if pid == 0 {
            _ = sl_prctl(SL_PR_SET_PDEATHSIG, UInt(SIGKILL), 0, 0, 0)   // a hook dies with the runtime
            dup2(input[0], 0); dup2(output[1], 1); dup2(output[1], 2)
            do { try FS.closeFrom(3) } catch {
                let msg = "\(what): \(error)\n"
                _ = msg.withCString { write(2, $0, strlen($0)) }
                _exit(127)
            }
            _ = sl_signal_default_all(); _ = sl_sigmask_unblock_all()
            if let envp { execve(h.path, argv, envp) } else { execve(h.path, argv, environ) }
            _exit(127)
        }
        close(output[1])
        _ = fcntl(input[1], F_SETFL, O_NONBLOCK)
        _ = Array(state.utf8).withUnsafeBytes { write(input[1], $0.baseAddress, $0.count) }
        close(input[1]); input[1] = -1

        // Collect output until the hook exits (or the timeout passes).
        let deadline = h.timeout.map { Clock.monotonicMs() + Int64($0) * 1000 }
        let pidfd = sl_pidfd_open(pid, 0)
        defer { if pidfd >= 0 { close(pidfd) } }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        var timedOut = false
        while true {
            var fds = [pollfd(fd: outRead, events: Int16(POLLIN), revents: 0), pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            let wait = deadline.map { Int32(clamping: max(0, $0 - Clock.monotonicMs())) } ?? -1
            let r = poll(&fds, outRead >= 0 ? 2 : 1, wait)
            if r == 0 { timedOut = true; break }
            if r < 0 { if errno == EINTR { continue }; break }
            if fds[0].revents != 0 {
                let n = read(outRead, &buf, buf.count)
                if n > 0 { if out.count < 65536 { out += buf[0..<n] } } else { close(outRead); outRead = -1 }
            }
            if fds[1].revents != 0 || outRead < 0 { break }
        }
        if timedOut { kill(pid, SIGKILL) }
        let (_, status) = try Proc.wait(pid)
        if timedOut { throw SysError("\(what): timeout after \(h.timeout ?? 0)s", errno: ETIMEDOUT) }
        let code = Proc.exitCode(status)
        if code != 0 {
            let text = trimmed(String(decoding: out, as: UTF8.self))
            throw RuntimeError(.internal, "\(what): exit status \(code)\(text.isEmpty ? "" : ", output: \(text)")")
        }
    }
}

