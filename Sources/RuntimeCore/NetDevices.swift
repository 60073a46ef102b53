import Glibc
import LinuxSystem
import OCI

/// linux.netDevices (runtime-spec 1.3): host network devices moved into the container's network
/// namespace, renamed when asked, with their permanent global addresses and up. Never moved back: the
/// kernel returns physical devices to the host when the namespace dies and destroys virtual ones.
struct NetDevicePlan: Sendable, Equatable {
    var hostName: String
    var name: String?

    /// Validated before anything is made: the container has a network namespace of its own, every
    /// device exists on the host, every new name is a valid interface name.
    static func plan(_ linux: Linux) throws(RuntimeError) -> [NetDevicePlan] {
        guard let devices = linux.netDevices, !devices.isEmpty else { return [] }
        guard (linux.namespaces ?? []).contains(where: { $0.type == .network }) else {
            throw RuntimeError(
                .invalidArgument,
                "config.json: linux.netDevices: the container has no network namespace of its own; moving devices "
                    + "would take them from the host"
            )
        }
        var out: [NetDevicePlan] = []
        for hostName in devices.keys.sorted() {
            let field = "config.json: linux.netDevices[\"\(hostName)\"]"
            guard validInterfaceName(hostName), if_nametoindex(hostName) != 0 else {
                throw RuntimeError(.invalidArgument, "\(field): no such network device on the host")
            }
            let name = devices[hostName]?.name.flatMap { $0.isEmpty ? nil : $0 }
            if let name, !validInterfaceName(name) {
                throw RuntimeError(
                    .invalidArgument,
                    "\(field).name: \"\(name)\" is not a valid interface name (1-15 bytes, no '/', ':' or white space)")
            }
            out.append(NetDevicePlan(hostName: hostName, name: name))
        }
        return out
    }

    static func validInterfaceName(_ n: String) -> Bool {
        let b = Array(n.utf8)
        return !b.isEmpty && b.count < 16 && n != "." && n != ".."
            && !b.contains { $0 == 0x2f || $0 == 0x3a || $0 <= 0x20 }
    }
}

/// Moves the devices into the network namespace of `pid` (container init, before it runs anything
/// of the container's) and sets them up there.
func moveNetDevices(_ devices: [NetDevicePlan], pid: pid_t) throws(SysError) {
    let nsPath = "/proc/\(pid)/ns/net"
    let ns = try sys("open", nsPath) { open(nsPath, O_RDONLY | O_CLOEXEC) }
    defer { close(ns) }
    var host = try RouteNetlink()
    var inside = try RouteNetlink(inNamespace: ns)
    // The kernel would move a device and only then fail to rename it: check every name first.
    for d in devices {
        let want = d.name ?? d.hostName
        if !want.contains("%"), try inside.link(named: want) != nil {
            throw SysError(
                "linux.netDevices[\"\(d.hostName)\"]: the container's network namespace already has a device \(want)",
                errno: EEXIST)
        }
    }
    var moved: [(index: Int32, addresses: [RouteNetlink.Address], device: NetDevicePlan)] = []
    for d in devices {
        guard let link = try host.link(named: d.hostName) else {
            throw SysError("linux.netDevices: network device \(d.hostName) is gone", errno: ENODEV)
        }
        let addresses = try host.addresses(ofLink: link.index).filter(\.isPermanentGlobal)
        do { try host.move(index: link.index, toNamespace: ns, name: d.name) } catch {
            throw SysError(
                "linux.netDevices: move \(d.hostName) into the container's network namespace"
                    + (d.name.map { " as \($0)" } ?? ""), errno: error.errno)
        }
        moved.append((link.index, addresses, d))
    }
    for m in moved {
        let want = m.device.name ?? m.device.hostName
        // A name template (`eth%d`) is completed by the kernel; the index survives the move unless taken.
        let link = want.contains("%") ? try inside.link(index: m.index) : try inside.link(named: want)
        guard let link else { throw SysError("linux.netDevices: \(want) not found after the move", errno: ENODEV) }
        for a in m.addresses { try inside.add(a, toLink: link.index) }
        try inside.setUp(index: link.index)
    }
}
