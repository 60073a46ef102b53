import Glibc
import LinuxSystem

/// The monitor's control API (Spec/monitor.md, "Control API") for one container of the shim:
/// `<bundle>/monitor.sock`, served by the monitor's ControlServer with its probes on the shim's event
/// loop. Made at Create (before the runtime runs, so a failed Create closes it), closed at Delete.
/// Exec processes get none, as under the monitor.
final class ShimControl: ControlledContainer {
    /// The container's init process: its pid and exit as the shim records them.
    let process: ShimProcess
    let runtime: ShimRuntime
    weak var service: TaskService?
    let loop: EventLoop
    let startedAt = Clock.rfc3339Nano()
    private(set) var oomKilled = false
    private(set) var server: ControlServer?

    init(_ c: ShimContainer, service: TaskService) throws(RPCError) {
        process = c.initProcess
        runtime = c.runtime
        self.service = service
        loop = service.loop
        do { server = try ControlServer(container: self, bundle: c.bundle) } catch {
            throw RPCError(.internalError, "control socket in \(c.bundle): \(error)")
        }
    }

    var cid: String { process.containerID }
    var containerPid: pid_t { process.pid }
    var exitCode: Int32? { process.exited ? Int32(bitPattern: process.exitStatus) : nil }
    var bundle: String? { process.bundle }
    var displayName: String { process.containerID }
    var controlIdleTimeout: Int { MonitorOptions().controlIdleTimeout }
    var childEnv: [String] { Spawn.childEnvironment() }

    /// Without `--log`: the runtime's errors reach the caller through the captured stderr, and a
    /// failing probe does not grow the bundle's log.json.
    func runtimeArgv(_ verb: [String]) -> [String] { runtime.command(verb, bundle: process.bundle, log: false) }

    func spawnChild(_ spec: SpawnSpec, onExit: @escaping (Int32) -> Void) throws(SysError) -> pid_t {
        guard let service else { throw SysError("spawn", spec.args.first ?? "", errno: ESRCH) }
        return try service.spawnChild(spec, onExit: onExit)
    }

    func noteOOM() {
        oomKilled = true
        server?.broadcast(["event": .string("oom")])
    }

    func containerExited() { server?.containerExited() }

    func close() {
        server?.close()
        server = nil
    }
}
