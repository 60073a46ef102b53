import CLinux
import Glibc
import LinuxSystem
import OCI

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
        var input = try OwnedPipe()
        var output = try OwnedPipe()
        var r = SpawnRequest(
            (h.args?.isEmpty ?? true) ? [h.path] : h.args ?? [], env: h.env ?? inheritedEnv,
            fds: [input.read.raw, output.write.raw, output.write.raw])
        r.program = h.path
        r.dieWithParent = true  // a hook dies with the runtime
        let pid: pid_t
        do { pid = try Proc.spawn(r) } catch { throw SysError("\(what): \(error.op)", error.path, errno: error.errno) }
        output.write = OwnedFD(-1)
        // Our copy of the read end stays open while we write: a hook that exits without reading its
        // stdin must not get us SIGPIPE (or EPIPE); the write is non-blocking, so a full pipe cannot
        // block us either.
        _ = fcntl(input.write.raw, F_SETFL, O_NONBLOCK)
        _ = Array(state.utf8).withUnsafeBytes { write(input.write.raw, $0.baseAddress, $0.count) }
        input = OwnedPipe.closed

        let deadline = h.timeout.map { Clock.monotonicMs() + Int64($0) * 1000 }
        let (out, timedOut) = Proc.collectOutput(pid, from: output.read.raw, deadline: deadline)
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
