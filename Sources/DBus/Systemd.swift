import Glibc
import LinuxSystem

/// The calls of systemd's manager API (org.freedesktop.systemd1.Manager) the cgroup driver needs.
public struct SystemdManager {
    public let bus: DBusConnection
    static let destination = "org.freedesktop.systemd1"
    public static let managerPath = "/org/freedesktop/systemd1"
    public static let managerInterface = "org.freedesktop.systemd1.Manager"

    public init(bus: DBusConnection) { self.bus = bus }

    /// Whether this host runs systemd as its init (sd_booted: /run/systemd/system is a directory).
    public static var isBooted: Bool {
        var st = stat()
        return lstat("/run/systemd/system", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    private func manager(_ member: String, _ body: [DBusValue], deadline: Int64) throws(DBusError) -> [DBusValue] {
        try bus.call(
            destination: Self.destination, path: Self.managerPath, interface: Self.managerInterface,
            member: member, body: body, deadline: deadline)
    }

    /// StartTransientUnit(name, mode, properties, no auxiliary units): the job's object path.
    public func startTransientUnit(
        _ name: String, mode: String = "replace", properties: [(String, DBusValue)],
        deadline: Int64
    ) throws(DBusError) -> String {
        let reply = try manager(
            "StartTransientUnit",
            [.string(name), .string(mode), .properties(properties), .array(element: "(sa(sv))", [])],
            deadline: deadline)
        return reply.first?.stringValue ?? ""
    }

    /// StopUnit(name, mode): the job's object path.
    public func stopUnit(_ name: String, mode: String = "replace", deadline: Int64) throws(DBusError) -> String {
        try manager("StopUnit", [.string(name), .string(mode)], deadline: deadline).first?.stringValue ?? ""
    }

    public func resetFailedUnit(_ name: String, deadline: Int64) throws(DBusError) {
        _ = try manager("ResetFailedUnit", [.string(name)], deadline: deadline)
    }

    /// SetUnitProperties(name, runtime, properties).
    public func setUnitProperties(
        _ name: String, runtime: Bool = true, _ properties: [(String, DBusValue)],
        deadline: Int64
    ) throws(DBusError) {
        _ = try manager(
            "SetUnitProperties", [.string(name), .bool(runtime), .properties(properties)], deadline: deadline)
    }

    /// The unit's object path; the error is org.freedesktop.systemd1.NoSuchUnit when it is not loaded.
    public func getUnit(_ name: String, deadline: Int64) throws(DBusError) -> String {
        try manager("GetUnit", [.string(name)], deadline: deadline).first?.stringValue ?? ""
    }

    /// org.freedesktop.DBus.Properties.Get on an object of systemd's.
    public func property(path: String, interface: String, _ name: String, deadline: Int64) throws(DBusError)
        -> DBusValue?
    {
        try bus.call(
            destination: Self.destination, path: path, interface: "org.freedesktop.DBus.Properties", member: "Get",
            body: [.string(interface), .string(name)], deadline: deadline
        ).first
    }

    /// Waits until the job at `path` is finished (its object is gone), polling. False at the deadline.
    public func waitForJob(_ path: String, deadline: Int64) throws(DBusError) -> Bool {
        guard !path.isEmpty else { return true }
        var pause: UInt32 = 200
        while Clock.monotonicMs() < deadline {
            do {
                _ = try property(path: path, interface: "org.freedesktop.systemd1.Job", "State", deadline: deadline)
            } catch {
                if let name = error.name, name.hasPrefix("org.freedesktop.DBus.Error.Unknown") {
                    return true
                }
                throw error
            }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        return false
    }

    /// The unit's ActiveState ("active", "failed", ...), nil when systemd has no such unit loaded.
    public func activeState(_ name: String, deadline: Int64) throws(DBusError) -> String? {
        let path: String
        do { path = try getUnit(name, deadline: deadline) } catch {
            if error.name == "org.freedesktop.systemd1.NoSuchUnit" { return nil }
            throw error
        }
        return try property(path: path, interface: "org.freedesktop.systemd1.Unit", "ActiveState", deadline: deadline)?
            .stringValue
    }
}
