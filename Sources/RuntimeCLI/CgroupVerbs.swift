import Argv
import Cgroups
import Glibc
import LinuxSystem
import OCI
import RuntimeCore

/// `ps`: with --format json the pids; else ps(1) (default -ef) filtered to the container's pids.
func psVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    let id = o.positionals[0]
    let pids = try containerProcesses(root: g.root, id: id)
    switch o.string("format") ?? "table" {
    case "json":
        printOut(encodeJSON(pids.map { Int($0) }))
        return 0
    case "table":
        let psArgs = o.positionals.count > 1 ? Array(o.positionals.dropFirst()) : ["-ef"]
        let (status, output) = try Proc.capture(["ps"] + psArgs)
        guard status == 0 else {
            throw RuntimeError(.internal, "ps \(psArgs.joined(separator: " ")) exited with status \(status)")
        }
        var lines = output.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard !lines.isEmpty else { return 0 }
        let header = lines.removeFirst()
        guard let column = header.split(separator: " ").firstIndex(of: "PID") else {
            throw RuntimeError(.invalidArgument, "ps output has no PID column")
        }
        let wanted = Set(pids)
        printOut(
            ([header]
                + lines.filter { line in
                    let fields = line.split(separator: " ")
                    return fields.count > column && pid_t(fields[column]).map(wanted.contains) == true
                }).joined(separator: "\n"))
        return 0
    case let other:
        throw RuntimeError(.invalidArgument, "invalid format option \(other)")
    }
}

/// `update`: -r FILE (or - for stdin) replaces linux.resources fields given there; else the flags.
func updateVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    let id = o.positionals[0]
    if o.has("l3-cache-schema") || o.has("mem-bw-schema") {
        throw RuntimeError(.unsupported, "update: Intel RDT is not supported by swiftlet")
    }
    // As runc 1.1+: accepted, with a warning (kernel memory accounting is gone from the kernel).
    if o.has("kernel-memory") || o.has("kernel-memory-tcp") {
        g.log.warning("kernel memory settings are ignored and will be removed")
    }
    var fromFile: Resources?
    if let path = o.string("resources"), !path.isEmpty {
        let bytes: [UInt8]
        do { bytes = path == "-" ? try FS.readAll(fd: 0, path: "stdin") : try FS.readFile(path) } catch {
            throw RuntimeError(.invalidArgument, "update --resources", cause: error)
        }
        do { fromFile = try decodeJSON(Resources.self, from: bytes) } catch {
            throw RuntimeError(.invalidArgument, "update --resources \(path)", cause: error)
        }
    }
    let flags = try UpdateFlags(o)
    try updateContainer(root: g.root, id: id) { current throws(RuntimeError) -> Resources in
        if let r = fromFile { return merged(current, with: r) }
        return flags.apply(to: current)
    }
    return 0
}

/// Fields of `new` that are set replace those of `current` (per resource group).
func merged(_ current: Resources, with new: Resources) -> Resources {
    var r = current
    if let m = new.memory { r.memory = m }
    if let c = new.cpu { r.cpu = c }
    // As runc (1.1 to 1.3): for `update`, a pids limit of 0 leaves the limit as it is.
    if let p = new.pids, p.limit != 0 { r.pids = p }
    if let b = new.blockIO { r.blockIO = b }
    if let h = new.hugepageLimits { r.hugepageLimits = h }
    if let n = new.network { r.network = n }
    if let u = new.unified { r.unified = u }
    if let rd = new.rdma { r.rdma = rd }
    return r
}

/// runc's per-field update flags.
struct UpdateFlags {
    var memory, memoryReservation, memorySwap: Int64?
    var cpuShares, cpuPeriod, cpuRtPeriod, cpuBurst: UInt64?
    var cpuQuota, cpuRtRuntime, cpuIdle: Int64?
    var cpus, mems: String?
    var pidsLimit: Int64?
    var blkioWeight: UInt16?

    init(_ o: ParsedOptions) throws(RuntimeError) {
        func bytes(_ name: String) throws(RuntimeError) -> Int64? {
            guard let v = o.string(name), !v.isEmpty else { return nil }
            guard let n = parseByteSize(v) else {
                throw RuntimeError(.invalidArgument, "invalid value for --\(name): \(v)")
            }
            return n
        }
        func number<T: FixedWidthInteger>(_ name: String, _: T.Type) throws(RuntimeError) -> T? {
            guard let v = o.string(name), !v.isEmpty else { return nil }
            guard let n = T(v) else { throw RuntimeError(.invalidArgument, "invalid value for --\(name): \(v)") }
            return n
        }
        memory = try bytes("memory")
        memoryReservation = try bytes("memory-reservation")
        memorySwap = try bytes("memory-swap")
        cpuShares = try number("cpu-share", UInt64.self)
        cpuPeriod = try number("cpu-period", UInt64.self)
        cpuRtPeriod = try number("cpu-rt-period", UInt64.self)
        cpuQuota = try number("cpu-quota", Int64.self)
        cpuRtRuntime = try number("cpu-rt-runtime", Int64.self)
        cpuBurst = try number("cpu-burst", UInt64.self)
        cpuIdle = try number("cpu-idle", Int64.self)
        cpus = o.string("cpuset-cpus").flatMap { $0.isEmpty ? nil : $0 }
        mems = o.string("cpuset-mems").flatMap { $0.isEmpty ? nil : $0 }
        if o.has("pids-limit") { pidsLimit = try number("pids-limit", Int64.self) }
        if o.has("blkio-weight") { blkioWeight = try number("blkio-weight", UInt16.self) }
    }

    func apply(to current: Resources) -> Resources {
        var r = current
        if memory != nil || memoryReservation != nil || memorySwap != nil {
            var m = r.memory ?? Resources.Memory()
            if let memory { m.limit = memory }
            if let memoryReservation { m.reservation = memoryReservation }
            if let memorySwap { m.swap = memorySwap }
            // As runc: unlimited memory without --memory-swap lifts the swap limit too (a memsw
            // limit below the new memory limit would make the kernel refuse it, EINVAL).
            if memory == -1 && memorySwap == nil { m.swap = -1 }
            r.memory = m
        }
        if cpuShares != nil || cpuPeriod != nil || cpuQuota != nil || cpuRtPeriod != nil || cpuRtRuntime != nil
            || cpus != nil
            || mems != nil || cpuBurst != nil || cpuIdle != nil
        {
            var c = r.cpu ?? Resources.CPU()
            if let cpuShares { c.shares = cpuShares }
            if let cpuPeriod { c.period = cpuPeriod }
            if let cpuQuota { c.quota = cpuQuota }
            if let cpuRtPeriod { c.realtimePeriod = cpuRtPeriod }
            if let cpuRtRuntime { c.realtimeRuntime = cpuRtRuntime }
            if let cpus { c.cpus = cpus }
            if let mems { c.mems = mems }
            if let cpuBurst { c.burst = cpuBurst }
            if let cpuIdle { c.idle = cpuIdle }
            r.cpu = c
        }
        if let pidsLimit, pidsLimit != 0 { r.pids = Resources.Pids(limit: pidsLimit) }
        if let blkioWeight {
            var b = r.blockIO ?? Resources.BlockIO()
            b.weight = blkioWeight
            r.blockIO = b
        }
        return r
    }
}

/// "512m", "1G", "100k", "4096", "-1" (unlimited) -> bytes, like runc (units.RAMInBytes).
func parseByteSize(_ s: String) -> Int64? {
    if s == "-1" { return -1 }
    var digits = s.lowercased()
    if digits.hasSuffix("b") { digits.removeLast() }
    var mult: Int64 = 1
    if let last = digits.last, let i = "kmgtp".firstIndex(of: last) {
        mult = Int64(1) << (10 * ("kmgtp".distance(from: "kmgtp".startIndex, to: i) + 1))
        digits.removeLast()
    }
    guard let n = Int64(digits), n >= 0 else { return nil }
    let (v, overflow) = n.multipliedReportingOverflow(by: mult)
    return overflow ? nil : v
}

/// One line of `events`: {"type":"stats","id":...,"data":{...}}.
struct StatsEvent: Encodable {
    var type = "stats"
    var id: String
    var data: CgroupStats
}

/// `events`: with --stats one sample; else a stats event every --interval and an `oom` event
/// whenever the kernel OOM-kills a process of the container, until the container stops.
func eventsVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    let id = o.positionals[0]
    if o.bool("stats") {
        printOut(encodeJSON(StatsEvent(id: id, data: try containerStats(root: g.root, id: id))))
        return 0
    }
    let interval = try o.duration("interval") ?? .seconds(5)
    guard interval > .zero else { throw RuntimeError(.invalidArgument, "duration interval must be greater than 0") }
    let (sec, atto) = interval.components
    let intervalMs = Int64(sec) * 1000 + Int64(atto / 1_000_000_000_000_000)
    let oom = try? containerOOMWatcher(root: g.root, id: id)
    while true {
        let stats: CgroupStats
        do { stats = try containerStats(root: g.root, id: id) } catch {
            if error.kind == .invalidState { return 0 }  // stopped: the stream ends
            throw error
        }
        printOut(encodeJSON(StatsEvent(id: id, data: stats)))
        let deadline = Clock.monotonicMs() + max(1, intervalMs)
        while case let left = deadline - Clock.monotonicMs(), left > 0 {
            if let oom {
                if oom.wait(timeoutMs: Int32(clamping: left)) { printOut(encodeJSON(OOMEvent(id: id))) }
            } else {
                usleep(UInt32(clamping: left * 1000))
            }
        }
    }
}

/// {"type":"oom","id":...}, as runc prints it.
struct OOMEvent: Encodable {
    var type = "oom"
    var id: String
}
