import CLinux
import Glibc
import LinuxSystem

/// The fields conmon attaches to every journal entry of a container.
public struct JournalIdentity: Sendable {
    public var containerID: String
    public var name: String?
    public var tag: String?

    public init(containerID: String, name: String?, tag: String?) {
        self.containerID = containerID
        self.name = name
        self.tag = tag
    }

    /// conmon's precedence: the --log-tag, else the name, else the 12-character id.
    public var syslogIdentifier: String { tag ?? name ?? String(containerID.prefix(12)) }
}

/// Entries in systemd's native journal protocol, one datagram each: `KEY=value\n`, or for a value
/// holding a newline `KEY\n<64-bit little-endian length><value>\n` (what sd_journal_sendv sends).
public enum JournalFormat {
    public static func appendField(_ out: inout [UInt8], _ key: String, _ value: some Collection<UInt8>) {
        out += key.utf8
        if value.contains(UInt8(ascii: "\n")) {
            out.append(UInt8(ascii: "\n"))
            withUnsafeBytes(of: UInt64(value.count).littleEndian) { out += $0 }
        } else {
            out.append(UInt8(ascii: "="))
        }
        out += value
        out.append(UInt8(ascii: "\n"))
    }

    /// One entry, fields in conmon's order.
    public static func entry(
        message: some Collection<UInt8>, stream: Stream, partial: Bool, identity id: JournalIdentity
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 256)
        appendField(&out, "MESSAGE", message)
        appendField(&out, "CONTAINER_ID_FULL", id.containerID.utf8)
        appendField(&out, "PRIORITY", (stream == .stderr ? "3" : "6").utf8)
        appendField(&out, "CONTAINER_ID", id.containerID.prefix(12).utf8)
        if let tag = id.tag { appendField(&out, "CONTAINER_TAG", tag.utf8) }
        if let name = id.name { appendField(&out, "CONTAINER_NAME", name.utf8) }
        appendField(&out, "SYSLOG_IDENTIFIER", id.syslogIdentifier.utf8)
        if partial { appendField(&out, "CONTAINER_PARTIAL_MESSAGE", "true".utf8) }
        return out
    }
}

/// Splits container output into journal messages as conmon does: one message per line (with its
/// newline); a piece without a newline is held back (per stream, up to `holdLimit - 1` bytes) until
/// the rest of its line arrives; when it cannot be held, or at exit (`flush`), it goes out as a
/// partial message. A message is therefore at most 2 × 8 KiB.
public struct JournalLineSplitter {
    public static let holdLimit = 8192
    private var held: [Stream: [UInt8]] = [:]

    public init() {}

    /// The messages `chunk` completes: (text, partial).
    public mutating func messages(_ chunk: ArraySlice<UInt8>, stream: Stream) -> [([UInt8], Bool)] {
        var out: [([UInt8], Bool)] = []
        var pending = held[stream] ?? []
        var rest = chunk
        while !rest.isEmpty {
            if let nl = rest.firstIndex(of: UInt8(ascii: "\n")) {
                out.append((pending + rest[...nl], false))
                rest = rest[(nl + 1)...]
            } else if rest.count < Self.holdLimit - pending.count {
                held[stream] = pending + rest
                return out
            } else {
                out.append((pending + rest, true))
                rest = []
            }
            pending = []
        }
        held[stream] = nil
        return out
    }

    /// What is held back for `stream`, as a partial message.
    public mutating func flush(_ stream: Stream) -> [UInt8]? {
        guard let pending = held.removeValue(forKey: stream), !pending.isEmpty else { return nil }
        return pending
    }
}

/// The journald log driver: entries to the journal's native socket (a SOCK_DGRAM). Sends never
/// block the container: an entry the journal does not take at once (socket missing, queue full)
/// is dropped and counted, as a failing k8s-file write is.
final class JournalLog {
    /// Test-only override of the journal socket (tests bind their own SOCK_DGRAM socket).
    static let socketEnvironment = "SWIFTLET_JOURNAL_SOCKET"
    static let defaultSocket = "/run/systemd/journal/socket"

    let path: String
    let identity: JournalIdentity
    private let fd: Int32
    private var splitter = JournalLineSplitter()
    private(set) var droppedRecords = 0
    private(set) var lastError: String?

    init(identity: JournalIdentity) throws(SysError) {
        self.identity = identity
        if let p = getenv(Self.socketEnvironment), p.pointee != 0 {
            path = String(cString: p)
        } else {
            path = Self.defaultSocket
        }
        fd = try sys("socket", path) {
            socket(
                AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        // Room for a burst, as libsystemd asks for (the kernel caps it at wmem_max).
        var size: Int32 = 8 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    func write(_ chunk: ArraySlice<UInt8>, stream: Stream) {
        for (text, partial) in splitter.messages(chunk, stream: stream) { send(text, stream: stream, partial: partial) }
    }

    /// At exit: a held-back piece goes out as a partial message.
    func flush(_ stream: Stream) {
        if let text = splitter.flush(stream) { send(text, stream: stream, partial: true) }
    }

    private func send(_ text: [UInt8], stream: Stream, partial: Bool) {
        let entry = JournalFormat.entry(message: text, stream: stream, partial: partial, identity: identity)
        do {
            try withUnixAddress(path, op: "sendto") { (addr, len) throws(SysError) in
                _ = try sys("sendto", path) {
                    entry.withUnsafeBytes {
                        sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), addr, len)
                    }
                }
            }
        } catch {
            droppedRecords += 1
            lastError = "\(error)"
        }
    }
}
