import CLinux
import Glibc
import LinuxSystem

/// A single-threaded epoll loop: fd handlers plus one-shot timers. With no timers armed it sleeps in
/// epoll_wait without a timeout, so an idle monitor never wakes up.
final class EventLoop {
    private let epfd: Int32
    private var handlers: [Int32: (UInt32) -> Void] = [:]
    private var timers: [(deadline: Int64, id: Int, action: () -> Void)] = []
    private var nextTimerID = 1
    var running = true

    /// epoll_create1 fails only without memory or fds; then `watch` reports the error.
    init() {
        epfd = sl_epoll_create()
    }

    deinit { if epfd >= 0 { close(epfd) } }

    func watch(_ fd: Int32, events: UInt32 = SL_EPOLLIN, _ handler: @escaping (UInt32) -> Void) throws(SysError) {
        try sys("epoll_ctl add") { sl_epoll_add(epfd, fd, events) }
        handlers[fd] = handler
    }

    func change(_ fd: Int32, events: UInt32) {
        _ = sl_epoll_mod(epfd, fd, events)
    }

    /// Stops watching `fd` (the caller closes it).
    func unwatch(_ fd: Int32) {
        _ = sl_epoll_del(epfd, fd)
        handlers[fd] = nil
    }

    @discardableResult
    func after(ms: Int64, _ action: @escaping () -> Void) -> Int {
        let id = nextTimerID
        nextTimerID += 1
        timers.append((Clock.monotonicMs() + ms, id, action))
        return id
    }

    func cancel(_ id: Int) {
        timers.removeAll { $0.id == id }
    }

    func run() {
        while running {
            var timeout: Int32 = -1
            if let next = timers.min(by: { $0.deadline < $1.deadline }) {
                timeout = Int32(clamping: max(0, next.deadline - Clock.monotonicMs()))
            }
            var fd: Int32 = -1
            var events: UInt32 = 0
            let n = sl_epoll_wait1(epfd, &fd, &events, timeout)
            if n == 1, let h = handlers[fd] { h(events) }
            fireDueTimers()
        }
    }

    private func fireDueTimers() {
        let now = Clock.monotonicMs()
        while let i = timers.firstIndex(where: { $0.deadline <= now }) {
            let t = timers.remove(at: i)
            t.action()
        }
    }
}
