import Glibc
import LinuxSystem

/// Messages between the runtime (parent) and its children over a SOCK_SEQPACKET pair.
/// The table is in Spec/sync-protocol.md. One byte of kind, then the payload.
enum SyncKind: UInt8 {
    case mapIDs = 0x55       // "U" child -> parent: write uid_map/gid_map for me
    case ack = 0x41          // "A" parent -> child: done, go on
    case initPid = 0x50      // "P" middle -> parent: payload = the new process's pid (host view)
    case go = 0x47           // "G" parent -> init: start setting up; payload = state JSON for hooks
    case runHooks = 0x48     // "H" init -> parent: run prestart + createRuntime hooks now
    case pty = 0x54          // "T" init -> parent: pty master attached (SCM_RIGHTS)
    case ready = 0x52        // "R" init -> parent: set up; about to block on the exec fifo
    case seccompFd = 0x53    // "S" init/exec -> parent: seccomp notify fd attached (SCM_RIGHTS), for the listener
    case error = 0x45        // "E" child -> parent: payload = "<errno>\0<message>"
    case start = 0x58        // "X" parent -> init, `run` only: exec now (instead of the exec fifo)
}

struct SyncMessage {
    var kind: SyncKind
    var payload: [UInt8]
    var fd: Int32?

    var text: String { String(decoding: payload, as: UTF8.self) }

    /// The message of an `error` packet ("<errno>\0<message>").
    var errorText: String {
        let parts = payload.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : text
    }
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

    /// Waits for `kind` from the parent (in a child); anything else is a protocol error.
    func expect(_ kind: SyncKind) throws(SysError) -> SyncMessage {
        guard let m = try next() else { throw SysError("sync: parent closed the socket while waiting", errno: EPIPE) }
        guard m.kind == kind else { throw SysError("sync: unexpected message \(m.kind)", errno: EPROTO) }
        return m
    }
}
