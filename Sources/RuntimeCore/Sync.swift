import Glibc
import LinuxSystem
import OCI

/// Messages between the runtime (parent) and its children over a SOCK_SEQPACKET pair.
/// The table is in Spec/sync-protocol.md. One byte of kind, then the payload.
enum SyncKind: UInt8 {
    case mapIDs = 0x55  // "U" child -> parent: write uid_map/gid_map for me
    case ack = 0x41  // "A" parent -> child: done, go on
    case initPid = 0x50  // "P" middle -> parent: payload = the pid (host view) of the process it forked
    case cloned = 0x49  // "I" stage 1 -> parent: I am init (the clone made me); no payload
    case go = 0x47  // "G" parent -> init (create): in your cgroup, go on; payload = state JSON for hooks
    case joined = 0x4A  // "J" parent -> exec's process: in the container's cgroup, go on; no payload
    case runHooks = 0x48  // "H" init -> parent: run prestart + createRuntime hooks now
    case pty = 0x54  // "T" init -> parent: pty master attached (SCM_RIGHTS)
    case ready = 0x52  // "R" init -> parent: set up; about to block on the exec fifo
    case seccompFd = 0x53  // "S" init/exec -> parent: seccomp notify fd attached (SCM_RIGHTS), for the listener
    case error = 0x45  // "E" child -> parent: payload = "<errno>\0<message>"
    case start = 0x58  // "X" parent -> init, `run` only: exec now (instead of the exec fifo)
}

struct SyncMessage {
    var kind: SyncKind
    var payload: [UInt8]
    var fd: Int32?

    var text: String { String(decoding: payload, as: UTF8.self) }

    /// The payload of an `error` packet for `error`: "<errno>\0<message>", errno 0 when the chain
    /// carries none.
    static func errorPayload(_ error: any Error) -> String {
        "\(errnoInChain(error) ?? 0)\u{0}\(error)"
    }

    /// The child's error an `error` packet carries, its errno kept as a number.
    var childError: ChildError {
        let parts = payload.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count > 1 else { return ChildError(errno: nil, message: text) }
        let errno = Int32(String(decoding: parts[0], as: UTF8.self)).flatMap { $0 > 0 ? $0 : nil }
        return ChildError(errno: errno, message: String(decoding: parts[1], as: UTF8.self))
    }

    /// The message of an `error` packet.
    var errorText: String { childError.message }

    /// The RuntimeError for an `error` packet: `context` caused by the child's error.
    func childFailure(_ context: String) -> RuntimeError {
        RuntimeError(.internal, context, cause: childError)
    }
}

/// An error a child (container init, exec's process) reported over the sync socket: its text (the
/// child's whole chain, rendered there) and its errno.
struct ChildError: ChainedError {
    var errno: Int32?
    var message: String
    var ownErrno: Int32? { errno }
    var description: String { message }
}

extension SeqPacket {
    func send(_ kind: SyncKind, _ text: String = "", fd: Int32? = nil) throws(SysError) {
        try send([kind.rawValue] + Array(text.utf8), fd: fd)
    }

    /// Next message; nil at EOF. A message of unknown kind is an error.
    func next() throws(SysError) -> SyncMessage? {
        guard let (bytes, fd) = try receive() else { return nil }
        guard let first = bytes.first, let kind = SyncKind(rawValue: first) else {
            throw SysError("sync: unexpected message", errno: EPROTO)
        }
        return SyncMessage(kind: kind, payload: Array(bytes.dropFirst()), fd: fd)
    }

    /// Next message within `timeoutMs` (else ETIMEDOUT naming `step`, what we were waiting for); nil
    /// at EOF. Every read of the sync protocol goes through here (Spec/sync-protocol.md, deadlines).
    func next(waitingFor step: String, timeoutMs: Int = syncStepTimeoutMs) throws(SysError) -> SyncMessage? {
        try waitReadable(step, timeoutMs: timeoutMs)
        do { return try next() } catch {
            // A peer that exits with a packet of ours still unread in its queue makes the kernel
            // report ECONNRESET once, ahead of the packets it sent us before (e.g. init's own error
            // message): that error is consumed by this read, the next one returns them, then EOF.
            guard error.errno == ECONNRESET else { throw error }
            return try next()
        }
    }

    /// Waits for `kind` from the parent (in a child); anything else is a protocol error.
    func expect(_ kind: SyncKind, timeoutMs: Int = syncStepTimeoutMs) throws(SysError) -> SyncMessage {
        guard let m = try next(waitingFor: "the runtime's \(kind) message", timeoutMs: timeoutMs) else {
            throw SysError("sync: parent closed the socket while waiting", errno: EPIPE)
        }
        guard m.kind == kind else { throw SysError("sync: unexpected message \(m.kind)", errno: EPROTO) }
        return m
    }

    private func waitReadable(_ step: String, timeoutMs: Int) throws(SysError) {
        let deadline = Clock.monotonicMs() + Int64(timeoutMs)
        while true {
            let left = deadline - Clock.monotonicMs()
            if left <= 0 {
                throw SysError("sync: timed out after \(timeoutMs / 1000) s waiting for \(step)", errno: ETIMEDOUT)
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, Int32(min(left, Int64(Int32.max))))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw SysError("poll", "sync socket", errno: errno) }
        }
    }
}

/// How long one step of the sync protocol may take: generous (a loaded machine can take seconds to
/// build a rootfs), but bounded. Hooks run inside a step add their own timeouts (`hookAllowanceMs`).
let syncStepTimeoutMs = 60_000

/// The time hooks run inside one sync step may take on top of `syncStepTimeoutMs`: the sum of their
/// timeouts (a hook without one gets the step timeout again).
func hookAllowanceMs(_ hooks: [Hook]?) -> Int {
    (hooks ?? []).reduce(0) { $0 + ($1.timeout.map { $0 * 1000 } ?? syncStepTimeoutMs) }
}
