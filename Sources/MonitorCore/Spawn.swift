import Glibc
import CLinux
import LinuxSystem

/// How to start a child of the monitor: the runtime (create, exec, restore), an exec probe, the exit
/// command. The child inherits fds without FD_CLOEXEC (podman's preserved fds), gets the given stdio,
/// unblocked signals and, when asked, its own process group (so a timeout can kill the whole group).
struct SpawnSpec {
    var args: [String]
    var env: [String]
    var stdin: Int32 = -1
    var stdout: Int32 = -1
    var stderr: Int32 = -1
    var ownProcessGroup = false
    var dieWithMonitor = true
    /// Close every fd above stderr (the exit command must not keep podman's port fds busy).
    var closeOtherFds = false
    /// --replace-listen-pid: LISTEN_PID (socket activation) names the child itself.
    var replaceListenPid = false
    var cwd: String?
}

enum Spawn {
    /// fork + execve; returns the child's pid. The monitor is single-threaded, so fork is safe; every
    /// C string is built before the fork.
    static func start(_ s: SpawnSpec) throws(SysError) -> pid_t {
        guard let program = s.args.first else { throw SysError("spawn", nil, errno: EINVAL) }
        let argv = s.args.map { strdup($0) } + [nil]
        var envp = s.env.map { strdup($0) } + [nil]
        let listenPid = s.replaceListenPid ? s.env.firstIndex { $0.hasPrefix("LISTEN_PID=") } : nil
        let cwd = s.cwd.flatMap { strdup($0) }
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
            if let cwd { free(cwd) }
        }
        let devnull = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        let pid = try Proc.fork()
        if pid == 0 {
            // dup2 clears FD_CLOEXEC on the target, so stdio survives execve.
            _ = dup2(s.stdin >= 0 ? s.stdin : devnull, 0)
            _ = dup2(s.stdout >= 0 ? s.stdout : devnull, 1)
            _ = dup2(s.stderr >= 0 ? s.stderr : devnull, 2)
            if s.closeOtherFds {
                do { try FS.closeFrom(3) } catch { _exit(127) }
            }
            if s.ownProcessGroup { _ = setpgid(0, 0) }
            if s.dieWithMonitor { _ = sl_prctl(SL_PR_SET_PDEATHSIG, UInt(SIGKILL), 0, 0, 0) }
            if let cwd, chdir(cwd) != 0 { _exit(127) }
            if let listenPid { envp[listenPid] = strdup("LISTEN_PID=\(getpid())") }
            _ = sl_signal_default_all()
            _ = sl_sigmask_unblock_all()
            execve(program, argv, envp)
            _exit(127)
        }
        return pid
    }

    /// The environment for children: ours without the pipe fds meant for the monitor alone.
    static func childEnvironment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if !s.hasPrefix("_OCI_SYNCPIPE=") && !s.hasPrefix("_OCI_STARTPIPE=") && !s.hasPrefix("_OCI_ATTACHPIPE=") {
                out.append(s)
            }
            p += 1
        }
        return out
    }
}

/// A pipe whose monitor-side end is non-blocking and close-on-exec.
struct Pipe {
    var read: Int32
    var write: Int32

    static func make() throws(SysError) -> Pipe {
        var fds: [Int32] = [-1, -1]
        try sys("pipe") { sl_pipe2(&fds, O_CLOEXEC) }
        return Pipe(read: fds[0], write: fds[1])
    }
}
