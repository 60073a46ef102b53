import CLinux
import Glibc

/// A minimal rtnetlink client: just what moving a network device into a container needs
/// (linux.netDevices): look up a link, list and add its addresses, move, rename and bring it up.
/// One request at a time, each acknowledged; errors carry the request and the kernel's errno.
public struct RouteNetlink: ~Copyable {
    let fd: Int32
    var seq: UInt32 = 0

    // Message types, flags and attributes of linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h.
    static let RTM_NEWLINK: UInt16 = 16, RTM_GETLINK: UInt16 = 18, RTM_NEWADDR: UInt16 = 20, RTM_GETADDR: UInt16 = 22
    static let NLMSG_ERROR: UInt16 = 2, NLMSG_DONE: UInt16 = 3
    static let NLM_F_REQUEST: UInt16 = 0x1, NLM_F_ACK: UInt16 = 0x4, NLM_F_DUMP: UInt16 = 0x300
    static let NLM_F_CREATE: UInt16 = 0x400, NLM_F_EXCL: UInt16 = 0x200
    static let IFLA_IFNAME: UInt16 = 3, IFLA_NET_NS_FD: UInt16 = 28
    static let IFA_ADDRESS: UInt16 = 1, IFA_LOCAL: UInt16 = 2, IFA_BROADCAST: UInt16 = 4, IFA_FLAGS: UInt16 = 8
    public static let IFA_F_PERMANENT: UInt32 = 0x80
    public static let RT_SCOPE_UNIVERSE: UInt8 = 0
    static let IFF_UP: UInt32 = 1

    /// A netlink socket in the caller's network namespace.
    public init() throws(SysError) {
        fd = try sys("socket", "netlink route") {
            socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        }
    }

    /// A netlink socket in the network namespace `nsFd` (a socket keeps the namespace it was made in,
    /// so the caller only visits it for socket(2)). The caller must be single-threaded.
    public init(inNamespace nsFd: Int32) throws(SysError) {
        let home = try sys("open", "/proc/self/ns/net") { open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) }
        defer { close(home) }
        try sys("setns", "network namespace") { sl_setns(nsFd, SL_CLONE_NEWNET) }
        let made: Result<Int32, SysError>
        do {
            made = .success(
                try sys("socket", "netlink route") {
                    socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                })
        } catch { made = .failure(error) }
        // Back home whatever happened; staying in the container's namespace is not an option.
        if sl_setns(home, SL_CLONE_NEWNET) != 0 {
            if case .success(let s) = made { close(s) }
            throw SysError("setns back to the runtime's network namespace", errno: errno)
        }
        fd = try made.get()
    }

    deinit { close(fd) }

    /// A link's index and name, or nil when there is no such link.
    public mutating func link(named name: String) throws(SysError) -> (index: Int32, name: String)? {
        try link(request: Self.ifinfo(index: 0) + Self.attribute(Self.IFLA_IFNAME, Array(name.utf8) + [0]), what: name)
    }

    public mutating func link(index: Int32) throws(SysError) -> (index: Int32, name: String)? {
        try link(request: Self.ifinfo(index: index), what: "index \(index)")
    }

    private mutating func link(request: [UInt8], what: String) throws(SysError) -> (index: Int32, name: String)? {
        let replies: [[UInt8]]
        do { replies = try roundTrip(Self.RTM_GETLINK, Self.NLM_F_REQUEST, request, op: "get link \(what)") } catch {
            if error.errno == ENODEV { return nil }
            throw error
        }
        for r in replies where r.count >= 16 {
            let index = Int32(bitPattern: Self.u32(r, 4))
            let name = Self.attributes(r, from: 16).first { $0.type == Self.IFLA_IFNAME }.map { Self.cString($0.data) }
            return (index, name ?? "")
        }
        return nil
    }

    /// An address of a link as the kernel reported it (family, prefix, flags, scope and raw attributes).
    public struct Address: Sendable {
        public var family: UInt8
        public var prefixLength: UInt8
        public var flags: UInt32
        public var scope: UInt8
        var attributes: [(type: UInt16, data: [UInt8])]
        public var isPermanentGlobal: Bool {
            flags & RouteNetlink.IFA_F_PERMANENT != 0 && scope == RouteNetlink.RT_SCOPE_UNIVERSE
        }
    }

    public mutating func addresses(ofLink index: Int32) throws(SysError) -> [Address] {
        let req: [UInt8] = [0, 0, 0, 0] + Self.le32(0)  // ifaddrmsg, AF_UNSPEC: every family
        let replies = try roundTrip(Self.RTM_GETADDR, Self.NLM_F_REQUEST | Self.NLM_F_DUMP, req, op: "list addresses")
        var out: [Address] = []
        for r in replies where r.count >= 8 && Int32(bitPattern: Self.u32(r, 4)) == index {
            let attrs = Self.attributes(r, from: 8)
            var flags = UInt32(r[2])
            if let f = attrs.first(where: { $0.type == Self.IFA_FLAGS }), f.data.count >= 4 {
                flags = Self.u32(f.data, 0)
            }
            let kept = attrs.filter { [Self.IFA_ADDRESS, Self.IFA_LOCAL, Self.IFA_BROADCAST].contains($0.type) }
            out.append(Address(family: r[0], prefixLength: r[1], flags: flags, scope: r[3], attributes: kept))
        }
        return out
    }

    /// Moves link `index` into the network namespace `nsFd`, renamed to `name` when given
    /// (a name ending in `%d` is a template the kernel completes).
    public mutating func move(index: Int32, toNamespace nsFd: Int32, name: String?) throws(SysError) {
        var req = Self.ifinfo(index: index) + Self.attribute(Self.IFLA_NET_NS_FD, Self.le32(UInt32(bitPattern: nsFd)))
        if let name { req += Self.attribute(Self.IFLA_IFNAME, Array(name.utf8) + [0]) }
        _ = try roundTrip(Self.RTM_NEWLINK, Self.NLM_F_REQUEST | Self.NLM_F_ACK, req, op: "move link \(index)")
    }

    public mutating func add(_ a: Address, toLink index: Int32) throws(SysError) {
        var req: [UInt8] =
            [a.family, a.prefixLength, UInt8(truncatingIfNeeded: a.flags), a.scope]
            + Self.le32(UInt32(bitPattern: index))
        for attr in a.attributes { req += Self.attribute(attr.type, attr.data) }
        req += Self.attribute(Self.IFA_FLAGS, Self.le32(a.flags))
        _ = try roundTrip(
            Self.RTM_NEWADDR, Self.NLM_F_REQUEST | Self.NLM_F_ACK | Self.NLM_F_CREATE | Self.NLM_F_EXCL, req,
            op: "add address to link \(index)")
    }

    public mutating func setUp(index: Int32) throws(SysError) {
        let req = Self.ifinfo(index: index, flags: Self.IFF_UP, change: Self.IFF_UP)
        _ = try roundTrip(Self.RTM_NEWLINK, Self.NLM_F_REQUEST | Self.NLM_F_ACK, req, op: "set link \(index) up")
    }

    // MARK: wire format

    /// Sends one request and reads its answer: the payloads of the data messages (a dump's, or a
    /// get's single reply), until the ack, NLMSG_DONE or the reply of a non-dump request.
    private mutating func roundTrip(_ type: UInt16, _ flags: UInt16, _ payload: [UInt8], op: String) throws(SysError)
        -> [[UInt8]]
    {
        seq &+= 1
        let msg =
            Self.le32(UInt32(16 + payload.count)) + Self.le16(type) + Self.le16(flags) + Self.le32(seq) + Self.le32(0)
            + payload
        _ = try sys("send", op) { msg.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) } }
        var data: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try sys("recv", op) { buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            var off = 0
            while off + 16 <= n {
                let len = Int(Self.u32(buf, off))
                let kind = Self.u16(buf, off + 4)
                let s = Self.u32(buf, off + 8)
                guard len >= 16, off + len <= n else { throw SysError(op + ": malformed netlink reply", errno: EPROTO) }
                let body = Array(buf[(off + 16)..<(off + len)])
                off += (len + 3) & ~3
                guard s == seq else { continue }
                switch kind {
                case Self.NLMSG_ERROR:
                    let code = body.count >= 4 ? Int32(bitPattern: Self.u32(body, 0)) : -EPROTO
                    if code != 0 { throw SysError(op, errno: -code) }
                    return data
                case Self.NLMSG_DONE:
                    return data
                default:
                    data.append(body)
                    if flags & Self.NLM_F_DUMP == 0 { return data }
                }
            }
        }
    }

    static func ifinfo(index: Int32, flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [0, 0] + le16(0) + le32(UInt32(bitPattern: index)) + le32(flags) + le32(change)
    }

    static func attribute(_ type: UInt16, _ data: [UInt8]) -> [UInt8] {
        let a = le16(UInt16(4 + data.count)) + le16(type) + data
        return a + [UInt8](repeating: 0, count: (4 - a.count % 4) % 4)
    }

    static func attributes(_ b: [UInt8], from start: Int) -> [(type: UInt16, data: [UInt8])] {
        var out: [(UInt16, [UInt8])] = []
        var off = start
        while off + 4 <= b.count {
            let len = Int(u16(b, off))
            let type = u16(b, off + 2) & 0x3fff
            guard len >= 4, off + len <= b.count else { break }
            out.append((type, Array(b[(off + 4)..<(off + len)])))
            off += (len + 3) & ~3
        }
        return out
    }

    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * UInt32($0))) & 0xff) } }
    static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) }
    }
    static func cString(_ b: [UInt8]) -> String { String(decoding: b.prefix { $0 != 0 }, as: UTF8.self) }
}
