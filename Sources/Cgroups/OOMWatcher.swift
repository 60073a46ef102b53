import CLinux
import Glibc
import LinuxSystem

/// Notices OOM kills in a container's cgroup: v1 through an eventfd registered on
/// memory.oom_control (cgroup.event_control), v2 through inotify on memory.events. Either way the
/// `oom_kill` counter decides, so a wake-up without a new kill reports nothing.
public final class OOMWatcher {
    public let fd: Int32
    let counterFile: String
    var last: UInt64

    public init(_ manager: CgroupManager) throws(CgroupError) {
        if let memory = manager.paths["memory"] {
            counterFile = memory + "/memory.oom_control"
            let efd = sl_eventfd()
            guard efd >= 0 else { throw CgroupError("eventfd: \(errnoString(errno))", errno: errno) }
            let control = Glibc.open(counterFile, O_RDONLY | O_CLOEXEC)
            guard control >= 0 else {
                close(efd)
                throw CgroupError("open \(counterFile): \(errnoString(errno))", errno: errno)
            }
            defer { close(control) }  // the registration keeps its own reference
            do { try FS.writeFile(memory + "/cgroup.event_control", "\(efd) \(control)", create: false) } catch {
                close(efd)
                throw CgroupError("register OOM notification in \(memory): \(error)", errno: error.errno)
            }
            fd = efd
        } else if let unified = manager.paths[""] {
            counterFile = unified + "/memory.events"
            let ifd = sl_inotify_modify_watch(counterFile)
            guard ifd >= 0 else { throw CgroupError("inotify \(counterFile): \(errnoString(errno))", errno: errno) }
            fd = ifd
        } else {
            throw CgroupError("no memory controller for OOM notifications")
        }
        last = 0
        last = count()
    }

    deinit { close(fd) }

    /// The `oom_kill N` line of memory.oom_control / memory.events.
    func count() -> UInt64 {
        guard let text = try? FS.readString(counterFile) else { return last }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return line.split(separator: " ").last.flatMap { UInt64($0) } ?? last
        }
        return last
    }

    /// Waits up to `timeoutMs`; true when an OOM kill happened since the last call.
    public func wait(timeoutMs: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, timeoutMs) > 0 {
            var buf = [UInt8](repeating: 0, count: 4096)
            _ = read(fd, &buf, buf.count)  // drain the eventfd counter or inotify events
        }
        let now = count()
        defer { last = now }
        return now > last
    }
}
