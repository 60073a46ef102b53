import CLinux
import Glibc
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
    /// The program to execute when it differs from args[0] (the shim re-enters /proc/self/exe by its name).
    var program: String?
}

enum Spawn {
    /// `Proc.spawn`: returns the child's pid once it has exec'd (a program that cannot run is an
    /// error here, not an exit status later); the event loop is not otherwise held up.
    static func start(_ s: SpawnSpec) throws(SysError) -> pid_t {
        var r = SpawnRequest(s.args, env: s.env, fds: [s.stdin, s.stdout, s.stderr])
        r.inheritOtherFds = !s.closeOtherFds
        r.ownProcessGroup = s.ownProcessGroup
        r.dieWithParent = s.dieWithMonitor
        r.cwd = s.cwd
        r.program = s.program
        r.pidVariable = s.replaceListenPid ? "LISTEN_PID" : nil
        return try Proc.spawn(r)
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
