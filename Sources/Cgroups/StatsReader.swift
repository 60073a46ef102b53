import Glibc
import LinuxSystem

// Reading CgroupStats from the control files, as runc's fs (v1) and fs2 (v2) managers do. A section
// whose controller is absent (no hierarchy, controller not enabled) stays empty; a file that exists
// but cannot be read or parsed is an error naming it. In a hybrid layout the PSI files come from the
// unified tree (runc reads none there).

extension CgroupManager {
    public func stats() throws(CgroupError) -> CgroupStats {
        guard exists() else { throw CgroupError("cgroup \(primaryDir ?? "") does not exist", errno: ENOENT) }
        var s = CgroupStats()
        if isV2 {
            if let d = unifiedDir { try statsV2(d, &s) }
        } else {
            try statsV1(&s)
        }
        return s
    }

    // MARK: - v1

    private func statsV1(_ s: inout CgroupStats) throws(CgroupError) {
        if let d = paths["cpu"] { try cpuThrottlingV1(d, &s.cpu.throttling) }
        if let d = paths["cpuacct"] { try cpuacctV1(d, &s.cpu.usage) }
        if let d = paths["cpuset"] { try cpusetV1(d, &s.cpuset) }
        if let d = paths["memory"] { try memoryV1(d, &s.memory) }
        if let d = paths["pids"] { try pidsStats(d, &s.pids) }
        if let d = paths["blkio"] { try blkioV1(d, &s.blkio) }
        if let d = paths["hugetlb"] {
            try hugetlbStats(d, v2: false, &s.hugetlb)
        } else if let d = unifiedDir {
            try hugetlbStats(d, v2: true, &s.hugetlb)
        }
        if let d = unifiedDir {
            s.cpu.psi = try psi(d + "/cpu.pressure")
            s.memory.psi = try psi(d + "/memory.pressure")
            s.blkio.psi = try psi(d + "/io.pressure")
        }
    }

    private func cpuThrottlingV1(_ d: String, _ t: inout Throttling) throws(CgroupError) {
        guard let content = try optionalFile(d + "/cpu.stat") else { return }
        for (key, value) in parseFlatKeyed(content) {
            switch key {
            case "nr_periods": t.periods = value
            case "nr_throttled": t.throttledPeriods = value
            case "throttled_time": t.throttledTime = value
            default: break
            }
        }
    }

    private func cpuacctV1(_ d: String, _ u: inout CPUUsage) throws(CgroupError) {
        guard let stat = try optionalFile(d + "/cpuacct.stat") else { return }
        // user/system are in clock ticks.
        let ticks = UInt64(Swift.max(sysconf(Int32(_SC_CLK_TCK)), 1))
        for (key, value) in parseFlatKeyed(stat) {
            if key == "user" { u.user = value * 1_000_000_000 / ticks }
            if key == "system" { u.kernel = value * 1_000_000_000 / ticks }
        }
        u.total = try readUInt(d + "/cpuacct.usage")
        let percpuFile = d + "/cpuacct.usage_percpu"
        for field in try readFile(percpuFile).split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            guard let v = UInt64(field) else { throw CgroupError.parse(percpuFile, String(field)) }
            u.percpu.append(v)
        }
        // "cpu user system" header, then one line per CPU (nanoseconds).
        guard let all = try optionalFile(d + "/cpuacct.usage_all") else { return }
        for line in all.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            guard f.count >= 3, let user = UInt64(f[1]), let system = UInt64(f[2]) else { continue }
            u.percpuUser.append(user)
            u.percpuKernel.append(system)
        }
    }

    private func cpusetV1(_ d: String, _ c: inout CPUSetStats) throws(CgroupError) {
        if let v = try optionalFile(d + "/cpuset.cpus") {
            c.cpus = try parseCPUList(trimmed(v), file: d + "/cpuset.cpus")
        }
        if let v = try optionalFile(d + "/cpuset.mems") {
            c.mems = try parseCPUList(trimmed(v), file: d + "/cpuset.mems")
        }
        let numbers: [(String, WritableKeyPath<CPUSetStats, UInt64>)] = [
            ("cpu_exclusive", \.cpuExclusive), ("mem_hardwall", \.memHardwall), ("mem_exclusive", \.memExclusive),
            ("memory_migrate", \.memoryMigrate), ("memory_spread_page", \.memorySpreadPage),
            ("memory_spread_slab", \.memorySpreadSlab), ("memory_pressure", \.memoryPressure),
            ("sched_load_balance", \.schedLoadBalance),
        ]
        for (name, key) in numbers where FS.exists(d + "/cpuset." + name) {
            c[keyPath: key] = try readUInt(d + "/cpuset." + name)
        }
        if FS.exists(d + "/cpuset.sched_relax_domain_level") {
            c.schedRelaxDomainLevel = try readInt(d + "/cpuset.sched_relax_domain_level")
        }
    }

    private func memoryV1(_ d: String, _ m: inout MemoryStats) throws(CgroupError) {
        guard let stat = try optionalFile(d + "/memory.stat") else { return }
        for (key, value) in parseFlatKeyed(stat) { m.raw[key] = value }
        m.cache = m.raw["cache"] ?? 0
        m.usage = try memoryEntryV1(d, "memory") ?? MemoryEntry()
        m.swap = try memoryEntryV1(d, "memory.memsw") ?? MemoryEntry()
        m.kernel = try memoryEntryV1(d, "memory.kmem") ?? MemoryEntry()
        m.kernelTCP = try memoryEntryV1(d, "memory.kmem.tcp") ?? MemoryEntry()
    }

    /// PREFIX.usage_in_bytes, .max_usage_in_bytes, .failcnt, .limit_in_bytes; nil if there is no usage file.
    private func memoryEntryV1(_ d: String, _ prefix: String) throws(CgroupError) -> MemoryEntry? {
        let base = d + "/" + prefix
        guard FS.exists(base + ".usage_in_bytes") else { return nil }
        var e = MemoryEntry()
        e.usage = try readUInt(base + ".usage_in_bytes")
        e.max = try readUInt(base + ".max_usage_in_bytes")
        e.failcnt = try readUInt(base + ".failcnt")
        if FS.exists(base + ".limit_in_bytes") { e.limit = try readUInt(base + ".limit_in_bytes") }
        return e
    }

    /// pids.current and pids.max ("max" reported as 0); without the pids controller (v2), the number
    /// of processes in cgroup.procs.
    private func pidsStats(_ d: String, _ p: inout PidsStats) throws(CgroupError) {
        guard FS.exists(d + "/pids.current") else {
            if isV2, let procs = try optionalFile(d + "/cgroup.procs") {
                p.current = UInt64(procs.split(separator: "\n").count)
            }
            return
        }
        p.current = try readUInt(d + "/pids.current")
        let limit = try readUInt(d + "/pids.max")
        p.limit = limit == UInt64.max ? 0 : limit
    }

    /// The first group of files that exists and has entries, in runc's order of preference.
    private func blkioV1(_ d: String, _ b: inout BlkioStats) throws(CgroupError) {
        typealias Field = WritableKeyPath<BlkioStats, [BlkioEntry]>
        let recursive: [(String, Field)] = [
            ("sectors_recursive", \.sectorsRecursive), ("io_service_time_recursive", \.ioServiceTimeRecursive),
            ("io_wait_time_recursive", \.ioWaitTimeRecursive), ("io_merged_recursive", \.ioMergedRecursive),
            ("io_queued_recursive", \.ioQueuedRecursive), ("time_recursive", \.ioTimeRecursive),
            ("io_serviced_recursive", \.ioServicedRecursive), ("io_service_bytes_recursive", \.ioServiceBytesRecursive),
        ]
        let groups: [[(String, Field)]] = [
            recursive.map { ("blkio.bfq." + $0.0, $0.1) },
            [
                ("blkio.bfq.io_serviced_recursive", \.ioServicedRecursive),
                ("blkio.bfq.io_service_bytes_recursive", \.ioServiceBytesRecursive),
            ],
            recursive.map { ("blkio." + $0.0, $0.1) },
            [
                ("blkio.throttle.io_serviced_recursive", \.ioServicedRecursive),
                ("blkio.throttle.io_service_bytes_recursive", \.ioServiceBytesRecursive),
            ],
            [
                ("blkio.throttle.io_serviced", \.ioServicedRecursive),
                ("blkio.throttle.io_service_bytes", \.ioServiceBytesRecursive),
            ],
        ]
        for group in groups {
            guard let first = group.first, let entries = try blkioFile(d + "/" + first.0), !entries.isEmpty else {
                continue
            }
            b[keyPath: first.1] = entries
            for (file, field) in group.dropFirst() { b[keyPath: field] = try blkioFile(d + "/" + file) ?? [] }
            return
        }
    }

    /// `8:0 Read 1282048` lines (`8:0 6792` for sectors); `Total N` lines are skipped.
    private func blkioFile(_ path: String) throws(CgroupError) -> [BlkioEntry]? {
        guard let content = try optionalFile(path) else { return nil }
        var out: [BlkioEntry] = []
        for line in content.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == ":" })
            if f.count == 2 && f[0] == "Total" { continue }
            guard f.count == 3 || f.count == 4, let major = UInt64(f[0]), let minor = UInt64(f[1]),
                let value = UInt64(f[f.count - 1])
            else { throw CgroupError.parse(path, String(line)) }
            out.append(BlkioEntry(major: major, minor: minor, op: f.count == 4 ? String(f[2]) : "", value: value))
        }
        return out
    }

    /// Per page size: v1 hugetlb.SIZE[.rsvd].usage_in_bytes/.max_usage_in_bytes/.failcnt; v2
    /// hugetlb.SIZE[.rsvd].current and the `max` count of hugetlb.SIZE.events. The .rsvd files are
    /// preferred when present, as runc does. Sizes without files (controller not enabled) are skipped.
    private func hugetlbStats(_ d: String, v2: Bool, _ out: inout [String: HugetlbStats]) throws(CgroupError) {
        for size in hugePageSizes(fsRoot: fsRoot) {
            let plain = d + "/hugetlb." + size
            let reserved = plain + ".rsvd"
            var h = HugetlbStats()
            if v2 {
                let usageFile = FS.exists(reserved + ".current") ? reserved + ".current" : plain + ".current"
                guard FS.exists(usageFile) else { continue }
                h.usage = try readUInt(usageFile)
                h.failcnt = keyedValue(plain + ".events", "max") ?? 0
            } else {
                let prefix = FS.exists(reserved + ".usage_in_bytes") ? reserved : plain
                guard FS.exists(prefix + ".usage_in_bytes") else { continue }
                h.usage = try readUInt(prefix + ".usage_in_bytes")
                h.max = try readUInt(prefix + ".max_usage_in_bytes")
                h.failcnt = try readUInt(prefix + ".failcnt")
            }
            out[size] = h
        }
    }

    // MARK: - v2

    private func statsV2(_ d: String, _ s: inout CgroupStats) throws(CgroupError) {
        try pidsStats(d, &s.pids)
        try memoryV2(d, &s.memory)
        s.memory.psi = try psi(d + "/memory.pressure")
        try ioV2(d, &s.blkio)
        s.blkio.psi = try psi(d + "/io.pressure")
        try cpuV2(d, &s.cpu)
        s.cpu.psi = try psi(d + "/cpu.pressure")
        try hugetlbStats(d, v2: true, &s.hugetlb)
    }

    private func memoryV2(_ d: String, _ m: inout MemoryStats) throws(CgroupError) {
        guard let stat = try optionalFile(d + "/memory.stat") else { return }
        for (key, value) in parseFlatKeyed(stat) { m.raw[key] = value }
        m.cache = m.raw["file"] ?? 0
        guard FS.exists(d + "/memory.current") else { return }
        m.usage.usage = try readUInt(d + "/memory.current")
        m.usage.limit = try readUInt(d + "/memory.max")
        if FS.exists(d + "/memory.peak") { m.usage.max = try readUInt(d + "/memory.peak") }
        // runc reports swap as memory + swap, like v1's memsw, and no peak.
        var swap = MemoryEntry()
        if FS.exists(d + "/memory.swap.current") {
            swap.usage = try readUInt(d + "/memory.swap.current")
            swap.limit = try readUInt(d + "/memory.swap.max")
        }
        swap.usage += m.usage.usage
        if swap.limit != UInt64.max {
            let (sum, overflow) = swap.limit.addingReportingOverflow(m.usage.limit)
            swap.limit = overflow ? UInt64.max : sum
        }
        m.swap = swap
    }

    /// io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` per device.
    private func ioV2(_ d: String, _ b: inout BlkioStats) throws(CgroupError) {
        guard let content = try optionalFile(d + "/io.stat") else { return }
        for line in content.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let device = fields.first else { continue }
            let mm = device.split(separator: ":")
            guard mm.count == 2, let major = UInt64(mm[0]), let minor = UInt64(mm[1]) else {
                throw CgroupError.parse(d + "/io.stat", String(line))
            }
            for item in fields.dropFirst() {
                let kv = item.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, let value = UInt64(kv[1]) else { continue }
                let entry: (String, WritableKeyPath<BlkioStats, [BlkioEntry]>)?
                switch kv[0] {
                case "rbytes": entry = ("Read", \.ioServiceBytesRecursive)
                case "wbytes": entry = ("Write", \.ioServiceBytesRecursive)
                case "rios": entry = ("Read", \.ioServicedRecursive)
                case "wios": entry = ("Write", \.ioServicedRecursive)
                default: entry = nil
                }
                if let (op, field) = entry {
                    b[keyPath: field].append(BlkioEntry(major: major, minor: minor, op: op, value: value))
                }
            }
        }
    }

    /// cpu.stat in microseconds -> nanoseconds.
    private func cpuV2(_ d: String, _ c: inout CPUStats) throws(CgroupError) {
        guard let content = try optionalFile(d + "/cpu.stat") else { return }
        for (key, value) in parseFlatKeyed(content) {
            switch key {
            case "usage_usec": c.usage.total = value * 1000
            case "user_usec": c.usage.user = value * 1000
            case "system_usec": c.usage.kernel = value * 1000
            case "nr_periods": c.throttling.periods = value
            case "nr_throttled": c.throttling.throttledPeriods = value
            case "throttled_usec": c.throttling.throttledTime = value * 1000
            default: break
            }
        }
    }

    // MARK: - Shared

    /// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and the same for `full`; nil when the file is
    /// missing or PSI is disabled (EOPNOTSUPP on read).
    func psi(_ path: String) throws(CgroupError) -> PSIStats? {
        let content: String
        do throws(SysError) {
            content = try FS.readString(path)
        } catch {
            if error.errno == ENOENT || error.errno == EOPNOTSUPP || error.errno == ENOTSUP { return nil }
            throw CgroupError("read \(path): \(errnoString(error.errno))", errno: error.errno)
        }
        var stats = PSIStats()
        for line in content.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first, kind == "some" || kind == "full" else { continue }
            var data = PSIData()
            for item in fields.dropFirst() {
                let kv = item.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { throw CgroupError.parse(path, String(line)) }
                switch kv[0] {
                case "avg10", "avg60", "avg300":
                    guard let v = Double(kv[1]) else { throw CgroupError.parse(path, String(line)) }
                    if kv[0] == "avg10" {
                        data.avg10 = v
                    } else if kv[0] == "avg60" {
                        data.avg60 = v
                    } else {
                        data.avg300 = v
                    }
                case "total":
                    guard let v = UInt64(kv[1]) else { throw CgroupError.parse(path, String(line)) }
                    data.total = v
                default:
                    continue
                }
            }
            if kind == "some" { stats.some = data } else { stats.full = data }
        }
        return stats
    }

    /// The file's content, nil if it does not exist.
    private func optionalFile(_ path: String) throws(CgroupError) -> String? {
        do throws(SysError) {
            return try FS.readString(path)
        } catch {
            if error.errno == ENOENT { return nil }
            throw CgroupError("read \(path): \(errnoString(error.errno))", errno: error.errno)
        }
    }
}

/// `0-3,8,10-11` -> [0, 1, 2, 3, 8, 10, 11] (an empty file: none).
func parseCPUList(_ s: String, file: String) throws(CgroupError) -> [UInt16] {
    if s.isEmpty { return [] }
    guard let list = parseNumberList(s), list.allSatisfy({ $0 <= Int(UInt16.max) }) else {
        throw CgroupError.parse(file, s)
    }
    return list.map { UInt16($0) }
}

/// Huge page sizes as cgroup file names spell them ("2MB", "1GB"), from /sys/kernel/mm/hugepages.
func hugePageSizes(fsRoot: String) -> [String] {
    guard let names = try? FS.listDirectory(fsRoot + "/sys/kernel/mm/hugepages") else { return [] }
    var sizes: [(kb: Int, name: String)] = []
    for name in names where name.hasPrefix("hugepages-") && name.hasSuffix("kB") {
        guard let kb = Int(name.dropFirst("hugepages-".count).dropLast(2)) else { continue }
        let label = kb >= 1 << 20 ? "\(kb >> 20)GB" : kb >= 1 << 10 ? "\(kb >> 10)MB" : "\(kb)KB"
        sizes.append((kb, label))
    }
    return sizes.sorted { $0.kb < $1.kb }.map(\.name)
}
