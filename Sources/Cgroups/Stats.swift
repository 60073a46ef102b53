// The `data` object of `runc events --stats`: runc's types/events.go, key for key. Go's `omitempty`
// (zero numbers, empty arrays/maps, nil pointers) and `omitzero` (all-zero structs) are reproduced by
// the hand-written encode(to:) methods, so that the JSON matches runc's byte for byte in key order.

public struct CgroupStats: Encodable, Sendable, Equatable {
    public var cpu = CPUStats()
    public var cpuset = CPUSetStats()
    public var memory = MemoryStats()
    public var pids = PidsStats()
    public var blkio = BlkioStats()
    /// Page size ("2MB", "1GB") -> usage.
    public var hugetlb: [String: HugetlbStats] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case cpu, cpuset, memory, pids, blkio, hugetlb
        case intelRdt = "intel_rdt"
        case networkInterfaces = "network_interfaces"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cpu, forKey: .cpu)
        try c.encode(cpuset, forKey: .cpuset)
        try c.encode(memory, forKey: .memory)
        try c.encode(pids, forKey: .pids)
        try c.encode(blkio, forKey: .blkio)
        try c.encode(hugetlb, forKey: .hugetlb)
        // Not cgroup data, but part of runc's object: Intel RDT is not supported (an empty object as
        // runc prints without RDT) and network interfaces are not collected (null, as runc).
        try c.encode([String: String](), forKey: .intelRdt)
        try c.encodeNil(forKey: .networkInterfaces)
    }
}

/// Pressure stall information of one resource (cpu.pressure, memory.pressure, io.pressure).
public struct PSIStats: Encodable, Sendable, Equatable {
    public var some = PSIData()
    public var full = PSIData()
    public init() {}

    enum CodingKeys: String, CodingKey { case some, full }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !some.isZero { try c.encode(some, forKey: .some) }
        if !full.isZero { try c.encode(full, forKey: .full) }
    }
}

public struct PSIData: Encodable, Sendable, Equatable {
    public var avg10: Double = 0
    public var avg60: Double = 0
    public var avg300: Double = 0
    public var total: UInt64 = 0
    public init() {}
    var isZero: Bool { self == PSIData() }
}

public struct CPUStats: Encodable, Sendable, Equatable {
    public var usage = CPUUsage()
    public var throttling = Throttling()
    public var psi: PSIStats?
    public init() {}

    enum CodingKeys: String, CodingKey { case usage, throttling, psi }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if usage != CPUUsage() { try c.encode(usage, forKey: .usage) }
        if throttling != Throttling() { try c.encode(throttling, forKey: .throttling) }
        try c.encodeIfPresent(psi, forKey: .psi)
    }
}

/// Nanoseconds.
public struct CPUUsage: Encodable, Sendable, Equatable {
    public var total: UInt64 = 0
    public var percpu: [UInt64] = []
    public var percpuKernel: [UInt64] = []
    public var percpuUser: [UInt64] = []
    public var kernel: UInt64 = 0
    public var user: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey {
        case total, percpu
        case percpuKernel = "percpu_kernel"
        case percpuUser = "percpu_user"
        case kernel, user
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if total != 0 { try c.encode(total, forKey: .total) }
        if !percpu.isEmpty { try c.encode(percpu, forKey: .percpu) }
        if !percpuKernel.isEmpty { try c.encode(percpuKernel, forKey: .percpuKernel) }
        if !percpuUser.isEmpty { try c.encode(percpuUser, forKey: .percpuUser) }
        try c.encode(kernel, forKey: .kernel)
        try c.encode(user, forKey: .user)
    }
}

public struct Throttling: Encodable, Sendable, Equatable {
    public var periods: UInt64 = 0
    public var throttledPeriods: UInt64 = 0
    /// Nanoseconds.
    public var throttledTime: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey { case periods, throttledPeriods, throttledTime }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if periods != 0 { try c.encode(periods, forKey: .periods) }
        if throttledPeriods != 0 { try c.encode(throttledPeriods, forKey: .throttledPeriods) }
        if throttledTime != 0 { try c.encode(throttledTime, forKey: .throttledTime) }
    }
}

public struct CPUSetStats: Encodable, Sendable, Equatable {
    public var cpus: [UInt16] = []
    public var cpuExclusive: UInt64 = 0
    public var mems: [UInt16] = []
    public var memHardwall: UInt64 = 0
    public var memExclusive: UInt64 = 0
    public var memoryMigrate: UInt64 = 0
    public var memorySpreadPage: UInt64 = 0
    public var memorySpreadSlab: UInt64 = 0
    public var memoryPressure: UInt64 = 0
    public var schedLoadBalance: UInt64 = 0
    public var schedRelaxDomainLevel: Int64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey {
        case cpus
        case cpuExclusive = "cpu_exclusive"
        case mems
        case memHardwall = "mem_hardwall"
        case memExclusive = "mem_exclusive"
        case memoryMigrate = "memory_migrate"
        case memorySpreadPage = "memory_spread_page"
        case memorySpreadSlab = "memory_spread_slab"
        case memoryPressure = "memory_pressure"
        case schedLoadBalance = "sched_load_balance"
        case schedRelaxDomainLevel = "sched_relax_domain_level"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if !cpus.isEmpty { try c.encode(cpus, forKey: .cpus) }
        try c.encode(cpuExclusive, forKey: .cpuExclusive)
        if !mems.isEmpty { try c.encode(mems, forKey: .mems) }
        try c.encode(memHardwall, forKey: .memHardwall)
        try c.encode(memExclusive, forKey: .memExclusive)
        try c.encode(memoryMigrate, forKey: .memoryMigrate)
        try c.encode(memorySpreadPage, forKey: .memorySpreadPage)
        try c.encode(memorySpreadSlab, forKey: .memorySpreadSlab)
        try c.encode(memoryPressure, forKey: .memoryPressure)
        try c.encode(schedLoadBalance, forKey: .schedLoadBalance)
        try c.encode(schedRelaxDomainLevel, forKey: .schedRelaxDomainLevel)
    }
}

/// Bytes. `max` is the peak usage; a limit of "max" reads as UInt64.max (as runc prints it).
public struct MemoryEntry: Encodable, Sendable, Equatable {
    public var limit: UInt64 = 0
    public var usage: UInt64 = 0
    public var max: UInt64 = 0
    public var failcnt: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey { case limit, usage, max, failcnt }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(limit, forKey: .limit)
        if usage != 0 { try c.encode(usage, forKey: .usage) }
        if max != 0 { try c.encode(max, forKey: .max) }
        try c.encode(failcnt, forKey: .failcnt)
    }
}

public struct MemoryStats: Encodable, Sendable, Equatable {
    public var cache: UInt64 = 0
    public var usage = MemoryEntry()
    /// memory + swap (v1 memsw; v2 memory.current + memory.swap.current).
    public var swap = MemoryEntry()
    public var kernel = MemoryEntry()
    public var kernelTCP = MemoryEntry()
    /// memory.stat as is.
    public var raw: [String: UInt64] = [:]
    public var psi: PSIStats?
    public init() {}

    enum CodingKeys: String, CodingKey { case cache, usage, swap, kernel, kernelTCP, raw, psi }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if cache != 0 { try c.encode(cache, forKey: .cache) }
        if usage != MemoryEntry() { try c.encode(usage, forKey: .usage) }
        if swap != MemoryEntry() { try c.encode(swap, forKey: .swap) }
        if kernel != MemoryEntry() { try c.encode(kernel, forKey: .kernel) }
        if kernelTCP != MemoryEntry() { try c.encode(kernelTCP, forKey: .kernelTCP) }
        if !raw.isEmpty { try c.encode(raw, forKey: .raw) }
        try c.encodeIfPresent(psi, forKey: .psi)
    }
}

public struct PidsStats: Encodable, Sendable, Equatable {
    public var current: UInt64 = 0
    /// 0 when unlimited.
    public var limit: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey { case current, limit }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if current != 0 { try c.encode(current, forKey: .current) }
        if limit != 0 { try c.encode(limit, forKey: .limit) }
    }
}

public struct BlkioEntry: Encodable, Sendable, Equatable {
    public var major: UInt64
    public var minor: UInt64
    /// "Read", "Write", "Sync", "Async", "Discard", "Total" (v1), "Read"/"Write" (v2), "" for sectors.
    public var op: String
    public var value: UInt64

    public init(major: UInt64, minor: UInt64, op: String, value: UInt64) {
        self.major = major
        self.minor = minor
        self.op = op
        self.value = value
    }

    enum CodingKeys: String, CodingKey { case major, minor, op, value }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if major != 0 { try c.encode(major, forKey: .major) }
        if minor != 0 { try c.encode(minor, forKey: .minor) }
        if !op.isEmpty { try c.encode(op, forKey: .op) }
        if value != 0 { try c.encode(value, forKey: .value) }
    }
}

public struct BlkioStats: Encodable, Sendable, Equatable {
    public var ioServiceBytesRecursive: [BlkioEntry] = []
    public var ioServicedRecursive: [BlkioEntry] = []
    public var ioQueuedRecursive: [BlkioEntry] = []
    public var ioServiceTimeRecursive: [BlkioEntry] = []
    public var ioWaitTimeRecursive: [BlkioEntry] = []
    public var ioMergedRecursive: [BlkioEntry] = []
    public var ioTimeRecursive: [BlkioEntry] = []
    public var sectorsRecursive: [BlkioEntry] = []
    public var psi: PSIStats?
    public init() {}

    enum CodingKeys: String, CodingKey {
        case ioServiceBytesRecursive, ioServicedRecursive
        case ioQueuedRecursive = "ioQueueRecursive"
        case ioServiceTimeRecursive, ioWaitTimeRecursive, ioMergedRecursive, ioTimeRecursive, sectorsRecursive, psi
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let lists: [(CodingKeys, [BlkioEntry])] = [
            (.ioServiceBytesRecursive, ioServiceBytesRecursive), (.ioServicedRecursive, ioServicedRecursive),
            (.ioQueuedRecursive, ioQueuedRecursive), (.ioServiceTimeRecursive, ioServiceTimeRecursive),
            (.ioWaitTimeRecursive, ioWaitTimeRecursive), (.ioMergedRecursive, ioMergedRecursive),
            (.ioTimeRecursive, ioTimeRecursive), (.sectorsRecursive, sectorsRecursive),
        ]
        for (key, list) in lists where !list.isEmpty { try c.encode(list, forKey: key) }
        try c.encodeIfPresent(psi, forKey: .psi)
    }
}

public struct HugetlbStats: Encodable, Sendable, Equatable {
    public var usage: UInt64 = 0
    /// Peak usage (v1 only).
    public var max: UInt64 = 0
    public var failcnt: UInt64 = 0
    public init() {}

    enum CodingKeys: String, CodingKey { case usage, max, failcnt }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if usage != 0 { try c.encode(usage, forKey: .usage) }
        if max != 0 { try c.encode(max, forKey: .max) }
        try c.encode(failcnt, forKey: .failcnt)
    }
}
