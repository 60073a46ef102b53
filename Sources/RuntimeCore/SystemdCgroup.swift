import Cgroups
import DBus
import Glibc
import LinuxSystem
import OCI

/// The systemd cgroup driver (`--systemd-cgroup`, Spec/cgroups.md): the container's cgroup is a
/// transient unit of systemd's, made over D-Bus once init's pid is known; every other verb works on
/// the unit's cgroup directories as with the cgroupfs driver.
public final class SystemdUnit: Sendable {
    /// `swiftlet-ID.scope`, or the `.slice` the cgroupsPath names.
    public let name: String
    /// The slice the unit is placed in (`system.slice` by default).
    public let slice: String
    /// The unit's cgroup path inside every hierarchy: the slice expanded, then the unit (on the
    /// user bus under the user instance's own cgroup, `/user.slice/user-UID.slice/user@UID.service`).
    public let cgroupPath: String
    /// Rootless (Rootless.swift): the unit belongs to systemd's user instance, on the user's bus.
    public let userBus: Bool
    /// On the user bus: the user instance's cgroup, whose controllers are the delegated ones.
    let instanceCgroup: String

    /// Unit properties from `org.systemd.property.NAME` annotations, sent after ours (so they win).
    let annotationProperties: [(String, DBusValue)]

    var isSlice: Bool { name.hasSuffix(".slice") }

    /// How long systemd may take to answer and to run a job (runc waits 30 s for a job).
    static let busTimeoutMs: Int64 = 10_000
    static let jobTimeoutMs: Int64 = 30_000

    /// linux.cgroupsPath as runc reads it with --systemd-cgroup: `slice:prefix:name`; an empty
    /// slice is system.slice; the unit is `prefix-name.scope`, or `name` when it ends in `.slice`.
    /// No cgroupsPath at all is `:swiftlet:ID`. On the user bus (`userBus`) the default slice is
    /// user.slice (as runc's), inside the user instance's cgroup, which is asked for over D-Bus.
    public init(
        cgroupsPath: String?, id: String, annotations: [String: String]? = nil, userBus: Bool = false
    ) throws(RuntimeError) {
        let text = cgroupsPath ?? ""
        let parts =
            text.isEmpty
            ? ["", "swiftlet", id] : text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else {
            throw RuntimeError(
                .invalidArgument,
                "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"\(text)\" "
                    + "instead"
            )
        }
        slice = parts[0].isEmpty ? (userBus ? "user.slice" : "system.slice") : parts[0]
        name = parts[2].hasSuffix(".slice") ? parts[2] : "\(parts[1])-\(parts[2]).scope"
        let parent = try SystemdUnit.expandSlice(slice)
        annotationProperties = try SystemdUnit.annotationProperties(annotations ?? [:])
        self.userBus = userBus
        instanceCgroup = userBus ? try SystemdUnit.userInstanceCgroup(unit: name) : ""
        cgroupPath = instanceCgroup + (parent == "/" ? "" : parent) + "/" + name
    }

    static let propertyAnnotation = "org.systemd.property."

    /// `org.systemd.property.NAME=VALUE` annotations as unit properties (as runc): NAME is letters
    /// only, VALUE in GVariant's text format (`uint64 123`, `'inactive-or-failed'`, `true`); a NAME
    /// ending in `Sec` (not `USec`) becomes NAMEUSec with the whole seconds in microseconds.
    static func annotationProperties(_ annotations: [String: String]) throws(RuntimeError) -> [(String, DBusValue)] {
        var props: [(String, DBusValue)] = []
        for (key, text) in annotations.sorted(by: { $0.key < $1.key }) where key.hasPrefix(propertyAnnotation) {
            var name = String(key.dropFirst(propertyAnnotation.count))
            guard name.count >= 3,
                name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) })
            else {
                throw RuntimeError(
                    .invalidArgument,
                    "annotation \(key): invalid systemd property name \"\(name)\" (letters only, at least 3)")
            }
            var value: DBusValue
            do { value = try VariantText.parse(text) } catch {
                throw RuntimeError(.invalidArgument, "annotation \(key)=\(text): value parse error: \(error)")
            }
            if name.hasSuffix("Sec") && !name.hasSuffix("USec") {
                let seconds: UInt64? =
                    switch value {
                    case .byte(let v): UInt64(v)
                    case .int32(let v): v >= 0 ? UInt64(v) : nil
                    case .uint32(let v): UInt64(v)
                    case .int64(let v): v >= 0 ? UInt64(v) : nil
                    case .uint64(let v): v
                    default: nil
                    }
                let (usec, overflow) = (seconds ?? 0).multipliedReportingOverflow(by: 1_000_000)
                guard seconds != nil, !overflow else {
                    throw RuntimeError(.invalidArgument, "annotation \(key)=\(text): a number of seconds is expected")
                }
                name = name.dropLast(3) + "USec"
                value = .uint64(usec)
            }
            props.append((name, value))
        }
        return props
    }

    /// A unit recorded in a container's state.
    init(name: String, userBus: Bool = false) {
        self.name = name
        self.userBus = userBus
        slice = ""
        cgroupPath = ""
        instanceCgroup = ""
        annotationProperties = []
    }

    /// `a-b-c.slice` -> `/a.slice/a-b.slice/a-b-c.slice` (`-.slice` is the root). Refused: no
    /// `.slice` suffix, a `/`, an empty component (`a--b.slice`, `-a.slice`, `a-.slice`).
    static func expandSlice(_ slice: String) throws(RuntimeError) -> String {
        let invalid = RuntimeError(.invalidArgument, "invalid slice name: \(slice)")
        guard slice.hasSuffix(".slice"), slice.count > ".slice".count, !slice.contains("/") else { throw invalid }
        let base = slice.dropLast(".slice".count)
        if base == "-" { return "/" }
        var path = ""
        var prefix = ""
        for component in base.split(separator: "-", omittingEmptySubsequences: false) {
            guard !component.isEmpty else { throw invalid }
            path += "/" + prefix + component + ".slice"
            prefix += component + "-"
        }
        return path
    }

    /// The container's cgroup: the unit's directory in every hierarchy (made by systemd).
    func manager(layout: CgroupLayout) -> CgroupManager { CgroupManager(layout: layout, path: cgroupPath) }

    private static func manager(userBus: Bool) throws(RuntimeError) -> SystemdManager {
        do {
            let bus =
                userBus
                ? try DBusConnection.user(timeoutMs: busTimeoutMs) : try DBusConnection.system(timeoutMs: busTimeoutMs)
            return SystemdManager(bus: bus)
        } catch {
            throw RuntimeError(.internal, "systemd cgroup driver", cause: error)
        }
    }

    private func manager() throws(RuntimeError) -> SystemdManager { try SystemdUnit.manager(userBus: userBus) }

    /// The user instance's own cgroup (its ControlGroup, `/user.slice/user-UID.slice/user@UID.service`).
    private static func userInstanceCgroup(unit: String) throws(RuntimeError) -> String {
        let context = "unable to start unit \"\(unit)\""
        let systemd: SystemdManager
        do { systemd = try manager(userBus: true) } catch { throw error.context(context) }
        do {
            let value = try systemd.property(
                path: SystemdManager.managerPath, interface: SystemdManager.managerInterface, "ControlGroup",
                deadline: Clock.monotonicMs() + busTimeoutMs)
            guard let cgroup = value?.stringValue, cgroup.hasPrefix("/") else {
                throw RuntimeError(.internal, "\(context): systemd's user instance has no ControlGroup")
            }
            return cgroup == "/" ? "" : cgroup
        } catch let e as RuntimeError {
            throw e
        } catch {
            throw RuntimeError(.internal, "\(context): systemd's user instance", cause: error)
        }
    }

    /// Rootless, before anything is made: the user instance works on cgroup v2 only (as runc's),
    /// and every controller a limit of linux.resources needs must be delegated to it (its cgroup's
    /// cgroup.controllers; user@.service delegates `pids memory cpu` by default). An error names
    /// the limit and the controllers the instance has.
    func checkDelegation(_ resources: Resources?, layout: CgroupLayout) throws(RuntimeError) {
        guard userBus else { return }
        guard case .v2(let mountPoint) = layout else {
            throw RuntimeError(
                .invalidArgument, "cannot use the rootless systemd cgroup driver (the user bus) on cgroup v1")
        }
        let file = mountPoint + instanceCgroup + "/cgroup.controllers"
        let text: String
        do { text = try FS.readString(file) } catch { throw RuntimeError.sys(error, "systemd's user instance") }
        let have = Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        for need in cgroupV2ControllersNeeded(resources) where !have.contains(need.controller) {
            throw RuntimeError(
                .invalidArgument,
                "config.json: linux.resources.\(need.field): cannot set \(need.limit) limit: the "
                    + "\(need.controller) controller is not delegated to systemd's user instance "
                    + "(\(instanceCgroup) has: \(have.sorted().joined(separator: " ")))")
        }
    }

    // MARK: - Verbs

    /// StartTransientUnit with the container's pid (scopes) and the resources systemd knows, then
    /// waits for the job. A unit of that name that exists already is an error (it is not ours: it is
    /// left alone). On any other failure the unit is stopped again.
    func start(pid: pid_t, id: String, resources: Resources, layout: CgroupLayout) throws(RuntimeError) {
        let systemd: SystemdManager
        do { systemd = try manager() } catch { throw error.context("unable to start unit \"\(name)\"") }
        var props: [(String, DBusValue)] = [("Description", .string("swiftlet container \(id)"))]
        if isSlice {
            props.append(("Wants", .array(element: "s", [.string(slice)])))
        } else {
            props += [("Slice", .string(slice)), ("Delegate", .bool(true)), ("PIDs", .uint32s([UInt32(pid)]))]
        }
        let v2: Bool = if case .v2 = layout { true } else { false }
        props += [
            ("MemoryAccounting", .bool(true)), ("CPUAccounting", .bool(true)),
            (v2 ? "IOAccounting" : "BlockIOAccounting", .bool(true)), ("TasksAccounting", .bool(true)),
            ("DefaultDependencies", .bool(false)),
        ]
        props += try SystemdUnit.resourceProperties(resources, layout: layout)
        props += annotationProperties
        let deadline = Clock.monotonicMs() + SystemdUnit.jobTimeoutMs
        var job = ""
        for attempt in 1...2 {
            do {
                job = try systemd.startTransientUnit(name, properties: props, deadline: deadline)
                break
            } catch {
                let exists = error.name == "org.freedesktop.systemd1.UnitExists"
                if exists && attempt == 1 {
                    // Maybe a failed leftover: reset it (a no-op for a unit that is not failed) and retry once.
                    try? systemd.resetFailedUnit(name, deadline: deadline)
                    continue
                }
                throw RuntimeError(exists ? .exists : .internal, "unable to start unit \"\(name)\"", cause: error)
            }
        }
        do {
            guard try systemd.waitForJob(job, deadline: deadline) else {
                throw RuntimeError(.internal, "timeout waiting for systemd to create unit \"\(name)\"")
            }
            let state = try systemd.activeState(name, deadline: deadline)
            guard state == "active" else {
                throw RuntimeError(
                    .internal, "error creating systemd unit \"\(name)\": its state is \(state ?? "gone")")
            }
        } catch let e as RuntimeError {
            stop()
            throw e
        } catch {
            stop()
            throw RuntimeError(.internal, "unit \"\(name)\"", cause: error)
        }
    }

    /// StopUnit and wait for it; a unit systemd no longer has is fine (a scope whose processes are
    /// all gone is stopped by systemd itself). A failed unit is reset so that systemd forgets it.
    /// Errors are reported, but the caller goes on removing what is left.
    @discardableResult
    func stop() -> RuntimeError? {
        do {
            let systemd = try manager()
            let deadline = Clock.monotonicMs() + SystemdUnit.jobTimeoutMs
            do {
                let job = try systemd.stopUnit(name, deadline: deadline)
                if try !systemd.waitForJob(job, deadline: deadline) {
                    return RuntimeError(.internal, "timeout waiting for systemd to stop unit \"\(name)\"")
                }
            } catch {
                if error.name != "org.freedesktop.systemd1.NoSuchUnit" {
                    return RuntimeError(.internal, "unable to stop unit \"\(name)\"", cause: error)
                }
            }
            try? systemd.resetFailedUnit(name, deadline: deadline)
            return nil
        } catch {
            return error
        }
    }

    /// `update`: SetUnitProperties (runtime) with what systemd knows of the new resources.
    func update(_ resources: Resources, layout: CgroupLayout) throws(RuntimeError) {
        let props = try SystemdUnit.resourceProperties(resources, layout: layout)
        guard !props.isEmpty else { return }
        let systemd = try manager()
        do {
            try systemd.setUnitProperties(name, props, deadline: Clock.monotonicMs() + SystemdUnit.busTimeoutMs)
        } catch {
            throw RuntimeError(.internal, "unable to set properties of unit \"\(name)\"", cause: error)
        }
    }

    // MARK: - Resources as unit properties

    /// The linux.resources systemd has properties for (cgroup v2; on v1 and hybrid layouts all
    /// resources are written to the cgroup files only). The files are written afterwards as with
    /// the cgroupfs driver, so what systemd cannot express still applies.
    static func resourceProperties(_ r: Resources, layout: CgroupLayout) throws(RuntimeError) -> [(String, DBusValue)] {
        guard case .v2 = layout else { return [] }
        func bytes(_ v: Int64) -> DBusValue { .uint64(v < 0 ? .max : UInt64(v)) }
        var p: [(String, DBusValue)] = []
        if let m = r.memory {
            let limit = m.limit ?? 0
            let swap = m.swap ?? 0
            if limit != 0 { p.append(("MemoryMax", bytes(limit))) }
            if let low = m.reservation, low != 0 { p.append(("MemoryLow", bytes(low))) }
            if let swapMax = try? CgroupManager.swapMax(swap: swap, limit: limit), swapMax != 0 {
                p.append(("MemorySwapMax", bytes(swapMax)))
            }
        }
        if let c = r.cpu {
            if let shares = c.shares, shares != 0 {
                p.append(("CPUWeight", .uint64(CgroupManager.cpuWeight(shares: shares))))
            }
            p += cpuQuotaProperties(quota: c.quota ?? 0, period: c.period ?? 0)
            if let cpus = c.cpus, !cpus.isEmpty {
                p.append(("AllowedCPUs", .bytes(try bitmask(cpus, field: "cpu.cpus"))))
            }
            if let mems = c.mems, !mems.isEmpty {
                p.append(("AllowedMemoryNodes", .bytes(try bitmask(mems, field: "cpu.mems"))))
            }
        }
        if let limit = r.pids?.limit, limit != 0 { p.append(("TasksMax", bytes(limit))) }
        if let w = r.blockIO?.weight, w != 0 { p.append(("IOWeight", .uint64(CgroupManager.ioWeight(blkioWeight: w)))) }
        if let rules = r.devices { p += deviceProperties(rules) }
        return p
    }

    /// DevicePolicy and DeviceAllow from the device rules (the last rule matching a device decides,
    /// as in DeviceFilter). After a deny-all rule (or none): `strict` and one DeviceAllow entry per
    /// allow rule, less the access later deny rules of the same device take away. An allow-all
    /// rule makes the list a deny list, which systemd cannot express: `auto` with no entries (the
    /// denials are enforced by our own eBPF program, attached beside systemd's). DeviceAllow is
    /// always sent, empty first, so that `update` replaces the unit's list instead of adding to it.
    static func deviceProperties(_ rules: [DeviceCgroup], procDevices: String? = try? FS.readString("/proc/devices"))
        -> [(String, DBusValue)]
    {
        func matchesAll(_ d: DeviceCgroup) -> Bool {
            (d.type ?? "a") == "a" && (d.major ?? -1) < 0 && (d.minor ?? -1) < 0 && Set(d.access ?? "rwm") == Set("rwm")
        }
        let start = rules.lastIndex(where: matchesAll)
        if let start, rules[start].allow {
            return [("DevicePolicy", .string("auto")), ("DeviceAllow", .array(element: "(ss)", []))]
        }
        var allowed: [(path: String, access: Set<Character>)] = []
        for rule in rules[(start.map { $0 + 1 } ?? 0)...] {
            let paths = deviceAllowPaths(rule, procDevices: procDevices ?? "")
            let access = Set(rule.access ?? "rwm")
            for path in paths {
                if let i = allowed.firstIndex(where: { $0.path == path }) {
                    if rule.allow { allowed[i].access.formUnion(access) } else { allowed[i].access.subtract(access) }
                } else if rule.allow {
                    allowed.append((path, access))
                }
            }
        }
        let entries: [DBusValue] = allowed.filter { !$0.access.isEmpty }.map { entry in
            .structure([.string(entry.path), .string(String("rwm".filter { entry.access.contains($0) }))])
        }
        return [
            ("DevicePolicy", .string("strict")), ("DeviceAllow", .array(element: "(ss)", [])),
            ("DeviceAllow", .array(element: "(ss)", entries)),
        ]
    }

    /// systemd's names for the devices a rule matches: `/dev/char/1:3`, `char-pts` (a major's
    /// group in /proc/devices), `char-*` (every major); type `a` is both block and char. A major
    /// without a group in /proc/devices gets `char-*` (systemd's program must not deny what the
    /// rules allow; our eBPF program, which both must pass, keeps the rule exact).
    static func deviceAllowPaths(_ rule: DeviceCgroup, procDevices: String) -> [String] {
        let kinds: [String] =
            switch rule.type ?? "a" {
            case "c": ["char"]
            case "b": ["block"]
            default: ["char", "block"]
            }
        return kinds.map { kind in
            guard let major = rule.major, major >= 0 else { return "\(kind)-*" }
            if let minor = rule.minor, minor >= 0 { return "/dev/\(kind)/\(major):\(minor)" }
            return "\(kind)-" + (deviceGroup(kind: kind, major: major, procDevices: procDevices) ?? "*")
        }
    }

    /// The name of a major in /proc/devices' "Character devices:" or "Block devices:" section.
    static func deviceGroup(kind: String, major: Int64, procDevices: String) -> String? {
        var inSection = false
        for line in procDevices.split(separator: "\n") {
            if line.hasSuffix("devices:") {
                inSection = line.lowercased().hasPrefix(kind == "char" ? "character" : "block")
                continue
            }
            let fields = line.split(separator: " ")
            if inSection, fields.count == 2, Int64(fields[0]) == major { return String(fields[1]) }
        }
        return nil
    }

    /// CPUQuotaPeriodUSec and CPUQuotaPerSecUSec (runc's conversion: the quota per second of CPU,
    /// rounded up to whole percent, which is what systemd keeps).
    static func cpuQuotaProperties(quota: Int64, period: UInt64) -> [(String, DBusValue)] {
        var p: [(String, DBusValue)] = []
        if period != 0 { p.append(("CPUQuotaPeriodUSec", .uint64(period))) }
        guard quota != 0 || period != 0 else { return p }
        var perSec = UInt64.max
        if quota > 0 {
            let q = UInt64(quota)
            let per = period == 0 ? 100_000 : period
            let (product, overflow) = q.multipliedReportingOverflow(by: 1_000_000)
            perSec = overflow ? .max : product / per
            if perSec != .max && perSec % 10_000 != 0 { perSec = (perSec / 10_000 + 1) * 10_000 }
        }
        p.append(("CPUQuotaPerSecUSec", .uint64(perSec)))
        return p
    }

    /// A cpuset list (`0-2,5`) as systemd's byte mask: bit n of byte n/8 for CPU (or node) n.
    static func bitmask(_ list: String, field: String) throws(RuntimeError) -> [UInt8] {
        var mask: [UInt8] = []
        for item in list.split(separator: ",") {
            let ends = item.trimmingSpaces.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(ends.count), let lo = Int(ends[0]), let hi = Int(ends[ends.count - 1]), lo >= 0,
                lo <= hi,
                hi < 8192
            else {
                throw RuntimeError(.invalidArgument, "linux.resources.\(field): invalid list \"\(list)\"")
            }
            for n in lo...hi {
                while mask.count <= n / 8 { mask.append(0) }
                mask[n / 8] |= 1 << UInt8(n % 8)
            }
        }
        return mask
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}

/// Whether the systemd driver can work here: systemd is PID 1 and its manager answers on D-Bus
/// (`userBus`: the user's instance on the user's bus, as a rootless runtime would reach it).
public func systemdCgroupDriverAvailable(userBus: Bool = false) -> Bool {
    guard SystemdManager.isBooted else { return false }
    let timeout = SystemdUnit.busTimeoutMs
    let connect = userBus ? DBusConnection.user : DBusConnection.system
    guard let bus = try? connect(timeout) else { return false }
    let systemd = SystemdManager(bus: bus)
    let reply = try? systemd.property(
        path: "/org/freedesktop/systemd1", interface: "org.freedesktop.systemd1.Manager", "Version",
        deadline: Clock.monotonicMs() + timeout)
    return reply != nil
}

extension StoredState {
    /// The systemd unit of a container created with --systemd-cgroup.
    var unit: SystemdUnit? { systemdUnit.map { SystemdUnit(name: $0, userBus: systemdUserBus ?? false) } }
}

/// create, once init's pid is known (init waits): the unit with the pid in it, then what is left
/// of linux.resources written to its cgroup files (and the v1 hierarchies of a hybrid layout
/// joined) as with the cgroupfs driver.
func startSystemdCgroup(
    _ unit: SystemdUnit, manager: CgroupManager, pid: pid_t, id: String, spec: Spec,
    started: inout Bool
) throws(RuntimeError) -> CgroupManager {
    var resources = effectiveResources(spec)
    if unit.userBus { resources.devices = nil }  // rootless: device rules need privileges (Rootless.swift)
    try unit.start(pid: pid, id: id, resources: resources, layout: manager.layout)
    started = true
    // Not setUpCgroup: its check that the cgroup holds no process yet is done by systemd here (a unit
    // that exists is refused), and init is in it already.
    do throws(RuntimeError) {
        do throws(CgroupError) {
            try manager.create()
            try manager.set(resources, initial: true)
            try manager.add(pid: pid, to: .all)
        } catch { throw RuntimeError.cgroup(error, "cgroup of unit \(unit.name)") }
        return manager
    } catch {
        // init is in the unit's cgroup: kill it and remove the directories (hybrid: the v1 ones are
        // ours); the caller then stops the unit.
        _ = try? tearDownCgroup(manager)
        throw error
    }
}
