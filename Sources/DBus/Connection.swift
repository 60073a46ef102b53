import Glibc
import LinuxSystem

/// A connection to the system bus or to systemd's private socket: SASL EXTERNAL authentication,
/// method calls and their replies. Single-threaded and blocking; every read and write is bounded
/// by a deadline.
public final class DBusConnection {
    public let address: String
    private let fd: Int32
    private var serial: UInt32 = 0
    private var buffer: [UInt8] = []
    /// The unique name the bus gave us (Hello); nil on systemd's private socket (no bus daemon).
    public private(set) var uniqueName: String?

    /// The system bus: $DBUS_SYSTEM_BUS_ADDRESS (`unix:path=...`) or /run/dbus/system_bus_socket;
    /// when that cannot be reached and we are root, systemd's own /run/systemd/private (as
    /// go-systemd does: no bus daemon needed, no Hello).
    public static func system(timeoutMs: Int64 = 5000) throws(DBusError) -> DBusConnection {
        var path = "/run/dbus/system_bus_socket"
        if let env = getenv("DBUS_SYSTEM_BUS_ADDRESS").map({ String(cString: $0) }), let p = unixPath(env) {
            path = p
        }
        let deadline = Clock.monotonicMs() + timeoutMs
        do {
            let c = try DBusConnection.open(path: path, deadline: deadline)
            try c.hello(deadline: deadline)
            return c
        } catch {
            guard geteuid() == 0 else { throw error }
            do { return try DBusConnection.open(path: "/run/systemd/private", deadline: deadline) } catch let second {
                throw DBusError("connect to the system bus: \(error); \(second)")
            }
        }
    }

    /// systemd's user instance's bus (rootless): $DBUS_SESSION_BUS_ADDRESS, else
    /// `unix:path=$XDG_RUNTIME_DIR/bus`. EXTERNAL sends the uid the bus daemon sees: ours as the
    /// parent user namespace sees it (under rootless podman, root in its namespace is the user).
    /// Every error names the address.
    public static func user(timeoutMs: Int64 = 5000) throws(DBusError) -> DBusConnection {
        let address = try userBusAddress()
        guard let path = unixPath(address) else {
            throw DBusError("systemd's user bus \(address): only unix:path= addresses are supported")
        }
        let deadline = Clock.monotonicMs() + timeoutMs
        do {
            let c = try DBusConnection.open(path: path, uid: Kernel.parentUid(geteuid()), deadline: deadline)
            try c.hello(deadline: deadline)
            return c
        } catch { throw DBusError("systemd's user bus \(address): \(error)", name: error.name) }
    }

    /// $DBUS_SESSION_BUS_ADDRESS, else `unix:path=$XDG_RUNTIME_DIR/bus` (as runc looks for it).
    public static func userBusAddress() throws(DBusError) -> String {
        if let env = getenv("DBUS_SESSION_BUS_ADDRESS").map({ String(cString: $0) }), !env.isEmpty { return env }
        if let xdg = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !xdg.isEmpty {
            return "unix:path=\(xdg)/bus"
        }
        throw DBusError(
            "systemd's user bus: neither $DBUS_SESSION_BUS_ADDRESS nor $XDG_RUNTIME_DIR is set "
                + "(a login session, or loginctl enable-linger, gives the user a systemd instance and its bus)")
    }

    /// The socket path of the first `unix:path=` entry of a D-Bus address (`;`-separated entries,
    /// `,`-separated keys, %XX escapes); nil when there is none.
    public static func unixPath(_ address: String) -> String? {
        for entry in address.split(separator: ";") where entry.hasPrefix("unix:") {
            for kv in entry.dropFirst("unix:".count).split(separator: ",") where kv.hasPrefix("path=") {
                return unescape(kv.dropFirst("path=".count))
            }
        }
        return nil
    }

    private static func unescape(_ value: Substring) -> String {
        var out: [UInt8] = []
        var bytes = Array(value.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2,
                let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16)
            {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Connects to the unix socket at `path` and authenticates (EXTERNAL with `uid` in hex: by
    /// default our effective uid).
    public static func open(path: String, uid: UInt32 = geteuid(), deadline: Int64) throws(DBusError)
        -> DBusConnection
    {
        let fd: Int32
        do throws(SysError) {
            fd = try sys("socket", path) {
                socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
            do throws(SysError) {
                _ = try withUnixAddress(path, op: "connect") { (addr, len) throws(SysError) in
                    try sys("connect", path) { connect(fd, addr, len) }
                }
            } catch {
                Glibc.close(fd)
                throw error
            }
        } catch { throw DBusError("D-Bus \(error)") }
        let c = DBusConnection(fd: fd, address: path)
        try c.authenticate(uid: uid, deadline: deadline)  // on failure `c` goes away and closes fd
        return c
    }

    private init(fd: Int32, address: String) {
        self.fd = fd
        self.address = address
    }

    deinit { Glibc.close(fd) }

    private func authenticate(uid: UInt32, deadline: Int64) throws(DBusError) {
        let hex = String(uid).utf8.map { b in String(b, radix: 16) }.joined()
        try send([0] + Array("AUTH EXTERNAL \(hex)\r\n".utf8), deadline: deadline)
        let line = try readLine(deadline: deadline)
        guard line.hasPrefix("OK ") else { throw DBusError("D-Bus authentication on \(address) refused: \(line)") }
        try send(Array("BEGIN\r\n".utf8), deadline: deadline)
    }

    private func hello(deadline: Int64) throws(DBusError) {
        let reply = try call(
            destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus",
            member: "Hello", deadline: deadline)
        uniqueName = reply.first?.stringValue
    }

    /// Calls a method and returns the reply's body; an error reply becomes a DBusError naming the
    /// method, the D-Bus error name and its message. Signals and other traffic are skipped.
    public func call(
        destination: String?, path: String, interface: String, member: String, body: [DBusValue] = [],
        deadline: Int64
    ) throws(DBusError) -> [DBusValue] {
        serial &+= 1
        if serial == 0 { serial = 1 }
        let message = DBusMessage.methodCall(
            serial: serial, destination: destination, path: path, interface: interface,
            member: member, body: body)
        let method = "\(interface).\(member)"
        do { try send(message.encode(), deadline: deadline) } catch { throw DBusError("\(method): \(error)") }
        while true {
            let reply: DBusMessage
            do { reply = try receive(deadline: deadline) } catch { throw DBusError("\(method): \(error)") }
            guard reply.replySerial == message.serial else { continue }
            if reply.kind == .error {
                let name = reply.errorName ?? "(no error name)"
                let text = reply.body.first?.stringValue.map { ": \($0)" } ?? ""
                throw DBusError("\(method): \(name)\(text)", name: name)
            }
            guard reply.kind == .methodReturn else { continue }
            return reply.body
        }
    }

    /// One whole message from the socket.
    public func receive(deadline: Int64) throws(DBusError) -> DBusMessage {
        try fill(16, deadline: deadline)
        let length = try DBusMessage.frameLength(head: buffer.prefix(16))
        try fill(length, deadline: deadline)
        let bytes = Array(buffer.prefix(length))
        buffer.removeFirst(length)
        return try DBusMessage.decode(bytes)
    }

    // MARK: - I/O with deadlines

    private func readLine(deadline: Int64) throws(DBusError) -> String {
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeFirst(nl + 1)
                return line.hasSuffix("\r") ? String(line.dropLast()) : line
            }
            guard buffer.count < 4096 else {
                throw DBusError("D-Bus authentication on \(address): reply line too long")
            }
            try readMore(deadline: deadline)
        }
    }

    private func fill(_ count: Int, deadline: Int64) throws(DBusError) {
        while buffer.count < count { try readMore(deadline: deadline) }
    }

    private func wait(_ events: Int16, deadline: Int64) throws(DBusError) {
        while true {
            let left = deadline - Clock.monotonicMs()
            guard left > 0 else { throw DBusError("timed out waiting for \(address)") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, Int32(min(left, 60_000)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw DBusError("D-Bus \(SysError("poll", address, errno: errno))") }
        }
    }

    private func readMore(deadline: Int64) throws(DBusError) {
        try wait(Int16(POLLIN), deadline: deadline)
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { return }
            throw DBusError("D-Bus \(SysError("read", address, errno: errno))")
        }
        guard n > 0 else { throw DBusError("D-Bus connection to \(address) closed by the peer") }
        buffer += chunk[..<n]
    }

    private func send(_ bytes: [UInt8], deadline: Int64) throws(DBusError) {
        var offset = 0
        while offset < bytes.count {
            try wait(Int16(POLLOUT), deadline: deadline)
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw DBusError("D-Bus \(SysError("write", address, errno: errno))")
            }
            offset += n
        }
    }
}
