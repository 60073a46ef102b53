import Glibc
import LinuxSystem
import OCI

// linux.resources -> cgroup files. Spec/cgroups.md has the table of fields, files and conversions.
// The order of controllers and of the writes within one controller follows runc.

extension CgroupManager {
    /// Applies linux.resources. Values are checked before anything is written. `initial: false` is an
    /// update: the previous content of every single-value file written is read first, and if a later
    /// write fails those files are written back (newest first) before the error is thrown. Device
    /// rules are applied only when `initial` (runc's update never changes them either).
    public func set(_ r: Resources, initial: Bool) throws(CgroupError) {
        try validate(r)
        let writer = KnobWriter(journaling: !initial, observer: writeObserver)
        do throws(CgroupError) {
            if isV2 {
                try setV2(r, initial: initial, writer)
            } else {
                try setV1(r, initial: initial, writer)
            }
        } catch {
            if initial { throw error }
            throw CgroupManager.restore(writer, after: error)
        }
    }

    /// An update (`set(r, initial: false)`) that stands only if `record()` (saving the new values in
    /// the container's state) returns true; otherwise the previous values are written back, so the
    /// limits in force are always the recorded ones. Throws when a write or that restore fails.
    public func update(_ r: Resources, record: () -> Bool) throws(CgroupError) {
        try validate(r)
        let writer = KnobWriter(journaling: true, observer: writeObserver)
        do throws(CgroupError) {
            if isV2 {
                try setV2(r, initial: false, writer)
            } else {
                try setV1(r, initial: false, writer)
            }
        } catch {
            throw CgroupManager.restore(writer, after: error)
        }
        if record() { return }
        let failures = writer.rollback()
        if !failures.isEmpty {
            throw CgroupError(
                "restoring the previous values failed: " + failures.map(\.message).joined(separator: "; "),
                errno: failures[0].errno)
        }
    }

    /// Writes the journaled values back after `error`; the error to throw.
    private static func restore(_ writer: KnobWriter, after error: CgroupError) -> CgroupError {
        let failures = writer.rollback()
        if failures.isEmpty { return error }
        let detail = failures.map(\.message).joined(separator: "; ")
        return CgroupError(error.message + "; restoring the previous values failed: " + detail, errno: error.errno)
    }

    // MARK: - Conversions (runc's)

    /// cgroup v1 cpu.shares [2, 262144] (default 1024) -> v2 cpu.weight [1, 10000] (default 100): the
    /// quadratic fit of log2(shares) used by runc (opencontainers/cgroups ConvertCPUSharesToCgroupV2Value).
    /// 0 stays 0 (unset).
    public static func cpuWeight(shares: UInt64) -> UInt64 {
        if shares == 0 { return 0 }
        if shares <= 2 { return 1 }
        if shares >= 262_144 { return 10_000 }
        let l = log2(Double(shares))
        let exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0
        return UInt64(ceil(pow(10, exponent)))
    }

    /// blkio.weight [10, 1000] -> io.weight [1, 10000], linearly: 1 + (w - 10) * 9999 / 990. 0 stays 0.
    public static func ioWeight(blkioWeight w: UInt16) -> UInt64 {
        if w == 0 { return 0 }
        if w < 10 { return 1 }
        return 1 + (UInt64(w) - 10) * 9999 / 990
    }

    /// OCI memory.swap (memory + swap) -> v2 memory.swap.max (swap alone); -1 is "max", 0 "unset".
    public static func swapMax(swap: Int64, limit: Int64) throws(CgroupError) -> Int64 {
        if limit == -1 && swap == 0 { return -1 }
        if swap == -1 || swap == 0 || limit == -1 { return swap }
        if limit == 0 { throw .field("memory.swap", "cannot be set without memory.limit on cgroup v2") }
        if limit < 0 { throw .field("memory.limit", "invalid value \(limit)") }
        if swap < limit { throw .field("memory.swap", "must be at least memory.limit (swap \(swap), limit \(limit))") }
        return swap - limit
    }

    // MARK: - Validation

    func validate(_ r: Resources) throws(CgroupError) {
        if let m = r.memory {
            let limit = m.limit ?? 0
            let swap = m.swap ?? 0
            if limit < -1 { throw .field("memory.limit", "invalid value \(limit)") }
            if swap < -1 { throw .field("memory.swap", "invalid value \(swap)") }
            if (m.reservation ?? 0) < -1 { throw .field("memory.reservation", "invalid value \(m.reservation ?? 0)") }
            if limit > 0 && swap > 0 && swap < limit {
                throw .field("memory.swap", "must be at least memory.limit (swap \(swap), limit \(limit))")
            }
            if isV2 { _ = try CgroupManager.swapMax(swap: swap, limit: limit) }
            if let s = m.swappiness, s > 100, s != UInt64.max {
                throw .field("memory.swappiness", "\(s) is out of range 0-100")
            }
        }
        if let unified = r.unified, !unified.isEmpty {
            guard isV2 else { throw .field("unified", "requires cgroup v2") }
            for key in unified.keys.sorted() where !isValidUnifiedKey(key) {
                throw CgroupError(
                    "linux.resources.unified[\(quoted(key))]: must be a cgroup file name like \"memory.high\"")
            }
        }
        if isV2, let w = r.blockIO?.weight, w != 0, !(10...1000).contains(w) {
            throw .field("blockIO.weight", "\(w) is out of range 10-1000")
        }
        for (i, rule) in (r.devices ?? []).enumerated() {
            if let t = rule.type, !["a", "b", "c"].contains(t) {
                throw .field("devices[\(i)].type", "invalid device type \(quoted(t)) (a, b or c)")
            }
            let access = rule.access ?? ""
            if access.isEmpty || !access.allSatisfy({ "rwm".contains($0) }) {
                throw .field("devices[\(i)].access", "invalid access \(quoted(access)) (a combination of r, w, m)")
            }
        }
        for (i, h) in (r.hugepageLimits ?? []).enumerated() where !isFileNameComponent(h.pageSize) {
            throw .field("hugepageLimits[\(i)].pageSize", "invalid page size \(quoted(h.pageSize))")
        }
        let rdma = r.rdma ?? [:]
        for device in rdma.keys.sorted() {
            guard let limits = rdma[device] else { continue }
            if !isFileNameComponent(device) || device.contains(" ") {
                throw CgroupError("linux.resources.rdma[\(quoted(device))]: invalid device name")
            }
            if limits.hcaHandles == nil && limits.hcaObjects == nil {
                throw CgroupError("linux.resources.rdma[\(quoted(device))]: needs hcaHandles or hcaObjects")
            }
        }
        if isV2, let network = r.network, (network.classID ?? 0) != 0 || !(network.priorities ?? []).isEmpty {
            throw .field("network", "net_cls/net_prio do not exist on cgroup v2")
        }
        for (i, p) in (r.network?.priorities ?? []).enumerated()
        where !isFileNameComponent(p.name) || p.name.contains(" ") {
            throw .field("network.priorities[\(i)].name", "invalid interface name \(quoted(p.name))")
        }
    }

    private func isValidUnifiedKey(_ key: String) -> Bool {
        guard isFileNameComponent(key), let dot = key.firstIndex(of: "."), dot != key.startIndex else { return false }
        return key.index(after: dot) != key.endIndex
    }

    private func isFileNameComponent(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("\n") && !s.contains("\0")
    }

    /// The directory of a v1 controller, or an error naming the OCI field that needs it.
    private func dir(_ controller: String, for field: String) throws(CgroupError) -> String {
        guard let d = paths[controller] else {
            throw .field(field, "the \(quoted(controller)) cgroup controller is not mounted")
        }
        return d
    }

    // MARK: - cgroup v1 (and hybrid)

    private func setV1(_ r: Resources, initial: Bool, _ w: KnobWriter) throws(CgroupError) {
        if let cpu = r.cpu { try setCpusetV1(cpu, w) }
        if initial, let devices = r.devices, !devices.isEmpty { try setDevicesV1(devices, w) }
        if let memory = r.memory { try setMemoryV1(memory, w) }
        if let cpu = r.cpu { try setCPUV1(cpu, w) }
        if let pids = r.pids, pids.limit != nil { try setPids(pids, dir: try dir("pids", for: "pids"), w) }
        if let blockIO = r.blockIO { try setBlkioV1(blockIO, w) }
        if let limits = r.hugepageLimits, !limits.isEmpty { try setHugetlbV1(limits, w) }
        if let network = r.network { try setNetworkV1(network, w) }
        if let rdma = r.rdma, !rdma.isEmpty { try setRdma(rdma, dir: try dir("rdma", for: "rdma"), w) }
    }

    private func setCpusetV1(_ c: Resources.CPU, _ w: KnobWriter) throws(CgroupError) {
        if let cpus = c.cpus, !cpus.isEmpty { try w.write(try dir("cpuset", for: "cpu.cpus") + "/cpuset.cpus", cpus) }
        if let mems = c.mems, !mems.isEmpty { try w.write(try dir("cpuset", for: "cpu.mems") + "/cpuset.mems", mems) }
    }

    /// Rules in order, each to devices.allow or devices.deny: `TYPE MAJOR:MINOR ACCESS`, `*` for a wildcard.
    private func setDevicesV1(_ rules: [DeviceCgroup], _ w: KnobWriter) throws(CgroupError) {
        let d = try dir("devices", for: "devices")
        for rule in rules {
            let major = rule.major.flatMap { $0 >= 0 ? String($0) : nil } ?? "*"
            let minor = rule.minor.flatMap { $0 >= 0 ? String($0) : nil } ?? "*"
            let line = "\(rule.type ?? "a") \(major):\(minor) \(rule.access ?? "")"
            try w.write(d + (rule.allow ? "/devices.allow" : "/devices.deny"), line, restore: .none)
        }
    }

    private func setMemoryV1(_ m: Resources.Memory, _ w: KnobWriter) throws(CgroupError) {
        let limit = m.limit ?? 0
        var swap = m.swap ?? 0
        let reservation = m.reservation ?? 0
        let kernelTCP = m.kernelTCP ?? 0
        let swappiness = m.swappiness.flatMap { $0 == UInt64.max ? nil : $0 }
        let needed =
            limit != 0 || swap != 0 || reservation != 0 || kernelTCP != 0
            || m.disableOOMKiller == true || swappiness != nil
        guard needed else { return }
        let d = try dir("memory", for: "memory")
        let memsw = d + "/memory.memsw.limit_in_bytes"
        let hasSwapAccounting = FS.exists(memsw)

        // Unlimited memory with swap unset means unlimited swap too (as runc).
        if limit == -1 && swap == 0 && hasSwapAccounting { swap = -1 }
        if swap != 0 && !hasSwapAccounting {
            // Without swap accounting there is no swap limit to set: "unlimited" and "no extra swap" are
            // what the kernel does anyway; anything else cannot be honoured.
            guard swap == -1 || swap == limit else {
                throw .field("memory.swap", "swap accounting is disabled in this kernel (\(memsw) is missing)")
            }
            swap = 0
        }

        if limit != 0 && swap != 0 {
            // The kernel wants memsw >= limit at every moment: when growing, raise swap first.
            let current = try readUInt(d + "/memory.limit_in_bytes")
            if swap == -1 || current < UInt64(swap) {
                try w.write(memsw, String(swap))
                try setMemoryLimitV1(limit, dir: d, w)
            } else {
                try setMemoryLimitV1(limit, dir: d, w)
                try w.write(memsw, String(swap))
            }
        } else {
            if limit != 0 { try setMemoryLimitV1(limit, dir: d, w) }
            if swap != 0 { try w.write(memsw, String(swap)) }
        }
        if reservation != 0 { try w.write(d + "/memory.soft_limit_in_bytes", String(reservation)) }
        // linux.resources.memory.kernel is ignored (deprecated, a no-op since kernel 5.16 / runc 1.2);
        // kernelTCP still has a v1 file on this kernel, so it is applied where present.
        if kernelTCP != 0, FS.exists(d + "/memory.kmem.tcp.limit_in_bytes") {
            try w.write(d + "/memory.kmem.tcp.limit_in_bytes", String(kernelTCP))
        }
        if m.disableOOMKiller == true { try w.write(d + "/memory.oom_control", "1", restore: .key("oom_kill_disable")) }
        if let swappiness { try w.write(d + "/memory.swappiness", String(swappiness)) }
    }

    /// memory.limit_in_bytes; EBUSY (usage above the new limit and not reclaimable) gets the usage added.
    private func setMemoryLimitV1(_ limit: Int64, dir d: String, _ w: KnobWriter) throws(CgroupError) {
        do throws(CgroupError) {
            try w.write(d + "/memory.limit_in_bytes", String(limit))
        } catch {
            guard error.errno == EBUSY else { throw error }
            let usage = (try? readUInt(d + "/memory.usage_in_bytes")).map(String.init) ?? "?"
            let peak = (try? readUInt(d + "/memory.max_usage_in_bytes")).map(String.init) ?? "?"
            throw CgroupError(error.message + " (current usage: \(usage), peak usage: \(peak))", errno: EBUSY)
        }
    }

    private func setCPUV1(_ c: Resources.CPU, _ w: KnobWriter) throws(CgroupError) {
        let shares = c.shares ?? 0
        let quota = c.quota ?? 0
        let period = c.period ?? 0
        let rtRuntime = c.realtimeRuntime ?? 0
        let rtPeriod = c.realtimePeriod ?? 0
        let needed =
            shares != 0 || quota != 0 || period != 0 || c.burst != nil || c.idle != nil
            || rtRuntime != 0 || rtPeriod != 0
        guard needed else { return }
        let d = try dir("cpu", for: "cpu")

        if shares != 0 {
            // The kernel clamps out-of-range shares; reading back tells us (runc's message).
            try w.write(d + "/cpu.shares", String(shares))
            let actual = try readUInt(d + "/cpu.shares")
            if shares > actual {
                throw .field("cpu.shares", "\(shares) is above the maximum allowed cpu-shares \(actual)")
            }
            if shares < actual {
                throw .field("cpu.shares", "\(shares) is below the minimum allowed cpu-shares \(actual)")
            }
        }
        // period, burst and quota constrain each other: a write the current quota makes invalid
        // (EINVAL) is retried after the quota is written.
        var pending: [(file: String, value: String)] = []
        if period != 0 {
            try writeOrDefer(d + "/cpu.cfs_period_us", String(period), canDefer: quota != 0, &pending, w)
        }
        if let burst = c.burst {
            do throws(CgroupError) {
                try writeOrDefer(d + "/cpu.cfs_burst_us", String(burst), canDefer: quota != 0, &pending, w)
            } catch {
                if error.errno != ENOENT { throw error }  // kernel without burst support (< 5.14)
            }
        }
        if quota != 0 {
            try w.write(d + "/cpu.cfs_quota_us", String(quota))
            for p in pending { try w.write(p.file, p.value) }
        }
        if let idle = c.idle { try w.write(d + "/cpu.idle", String(idle)) }

        pending = []
        if rtPeriod != 0 {
            try writeOrDefer(d + "/cpu.rt_period_us", String(rtPeriod), canDefer: rtRuntime != 0, &pending, w)
        }
        if rtRuntime != 0 {
            try w.write(d + "/cpu.rt_runtime_us", String(rtRuntime))
            for p in pending { try w.write(p.file, p.value) }
        }
    }

    /// Writes; on EINVAL, when `canDefer`, remembers the write for after the constraining one.
    private func writeOrDefer(
        _ file: String, _ value: String, canDefer: Bool,
        _ pending: inout [(file: String, value: String)], _ w: KnobWriter
    ) throws(CgroupError) {
        do throws(CgroupError) {
            try w.write(file, value)
        } catch {
            guard error.errno == EINVAL && canDefer else { throw error }
            pending.append((file, value))
        }
    }

    /// pids.max as runtime-spec 1.3 says: a limit of 0 or more as is (0 is a real limit), a negative
    /// one as "max", none: untouched. (Before 1.3, runc treated 0 as unset; `update` still does.)
    private func setPids(_ p: Resources.Pids, dir d: String, _ w: KnobWriter) throws(CgroupError) {
        guard let limit = p.limit else { return }
        try w.write(d + "/pids.max", limit >= 0 ? String(limit) : "max")
    }

    private func setBlkioV1(_ b: Resources.BlockIO, _ w: KnobWriter) throws(CgroupError) {
        let weight = b.weight ?? 0
        let leafWeight = b.leafWeight ?? 0
        let devices = b.weightDevice ?? []
        let throttles: [(String, [Resources.ThrottleDevice])] = [
            ("blkio.throttle.read_bps_device", b.throttleReadBpsDevice ?? []),
            ("blkio.throttle.write_bps_device", b.throttleWriteBpsDevice ?? []),
            ("blkio.throttle.read_iops_device", b.throttleReadIOPSDevice ?? []),
            ("blkio.throttle.write_iops_device", b.throttleWriteIOPSDevice ?? []),
        ]
        let needed = weight != 0 || leafWeight != 0 || !devices.isEmpty || throttles.contains { !$0.1.isEmpty }
        guard needed else { return }
        let d = try dir("blkio", for: "blockIO")
        // CFQ files when present, else BFQ's (kernels >= 5.0 without CFQ, like this one).
        let cfq = FS.exists(d + "/blkio.weight")
        let weightFile = d + (cfq ? "/blkio.weight" : "/blkio.bfq.weight")
        let weightDeviceFile = d + (cfq ? "/blkio.weight_device" : "/blkio.bfq.weight_device")
        if weight != 0 { try w.write(weightFile, String(weight)) }
        if leafWeight != 0 { try w.write(d + "/blkio.leaf_weight", String(leafWeight)) }
        for dev in devices {
            if let wt = dev.weight, wt != 0 {
                try w.write(weightDeviceFile, "\(dev.major):\(dev.minor) \(wt)", restore: .none)
            }
            if let lw = dev.leafWeight, lw != 0 {
                try w.write(d + "/blkio.leaf_weight_device", "\(dev.major):\(dev.minor) \(lw)", restore: .none)
            }
        }
        for (file, list) in throttles {
            for t in list { try w.write(d + "/" + file, "\(t.major):\(t.minor) \(t.rate)", restore: .none) }
        }
    }

    /// v1 hugetlb.SIZE.limit_in_bytes; in a hybrid layout without a v1 hugetlb hierarchy, the unified
    /// tree's hugetlb.SIZE.max (hugetlb is then enabled in the subtree_control of the ancestors).
    private func setHugetlbV1(_ limits: [Resources.HugepageLimit], _ w: KnobWriter) throws(CgroupError) {
        if let d = paths["hugetlb"] {
            try setHugetlb(limits, dir: d, suffix: ".limit_in_bytes", w)
            return
        }
        guard let unified = unifiedDir, let mount = layout.unifiedMountPoint else {
            throw .field("hugepageLimits", "the \"hugetlb\" cgroup controller is not mounted")
        }
        var current = FS.cleanPath(fsRoot + mount)
        for component in FS.cleanPath(unified).dropFirst(current.count + 1).split(separator: "/") {
            try enableControllers(in: current, only: "hugetlb")
            current += "/" + component
        }
        try setHugetlb(limits, dir: unified, suffix: ".max", w)
    }

    /// hugetlb.SIZE<suffix>, and the .rsvd variant (kernel >= 5.7) with the same limit, as runc does.
    private func setHugetlb(
        _ limits: [Resources.HugepageLimit], dir d: String, suffix: String,
        _ w: KnobWriter
    ) throws(CgroupError) {
        var reserved = true
        for h in limits {
            let prefix = d + "/hugetlb." + h.pageSize
            do throws(CgroupError) {
                try w.write(prefix + suffix, String(h.limit))
            } catch {
                guard error.errno == ENOENT, FS.exists(d + "/cgroup.procs") else { throw error }
                if suffix == ".max", let available = readIfPresent(d + "/cgroup.controllers"),
                    !available.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("hugetlb")
                {
                    throw .field("hugepageLimits", "the \"hugetlb\" controller is not available in \(d)")
                }
                let sizes = hugePageSizes(fsRoot: fsRoot).joined(separator: ", ")
                throw .field(
                    "hugepageLimits",
                    "page size \(quoted(h.pageSize)) is not available (\(prefix + suffix) is missing; sizes: \(sizes))")
            }
            guard reserved else { continue }
            do throws(CgroupError) {
                try w.write(prefix + ".rsvd" + suffix, String(h.limit))
            } catch {
                guard error.errno == ENOENT else { throw error }
                reserved = false
            }
        }
    }

    private func setNetworkV1(_ n: Resources.Network, _ w: KnobWriter) throws(CgroupError) {
        if let classID = n.classID, classID != 0 {
            try w.write(try dir("net_cls", for: "network.classID") + "/net_cls.classid", String(classID))
        }
        if let priorities = n.priorities, !priorities.isEmpty {
            let d = try dir("net_prio", for: "network.priorities")
            for p in priorities { try w.write(d + "/net_prio.ifpriomap", "\(p.name) \(p.priority)", restore: .none) }
        }
    }

    /// rdma.max: `DEVICE hca_handle=N hca_object=M` per device (v1 and v2 alike).
    private func setRdma(_ rdma: [String: Resources.Rdma], dir d: String, _ w: KnobWriter) throws(CgroupError) {
        for device in rdma.keys.sorted() {
            guard let limits = rdma[device] else { continue }
            var line = device
            if let h = limits.hcaHandles { line += " hca_handle=\(h)" }
            if let o = limits.hcaObjects { line += " hca_object=\(o)" }
            try w.write(d + "/rdma.max", line, restore: .none)
        }
    }

    // MARK: - cgroup v2

    private func setV2(_ r: Resources, initial: Bool, _ w: KnobWriter) throws(CgroupError) {
        guard let d = unifiedDir else { return }
        if let pids = r.pids { try setPids(pids, dir: d, w) }
        if let memory = r.memory { try setMemoryV2(memory, dir: d, w) }
        if let blockIO = r.blockIO { try setIOV2(blockIO, dir: d, w) }
        if let cpu = r.cpu { try setCPUV2(cpu, dir: d, w) }
        // Devices: an eBPF program (set at create; like v1, update does not rewrite device rules).
        if initial, let devices = r.devices, !devices.isEmpty {
            let filter = try DeviceFilter(rules: devices)
            // A fixture directory (fsRoot) is no cgroup: the program is built, not attached.
            if fsRoot.isEmpty { try filter.attach(to: d) }
        }
        if let cpus = r.cpu?.cpus, !cpus.isEmpty { try w.write(d + "/cpuset.cpus", cpus) }
        if let mems = r.cpu?.mems, !mems.isEmpty { try w.write(d + "/cpuset.mems", mems) }
        if let limits = r.hugepageLimits, !limits.isEmpty { try setHugetlb(limits, dir: d, suffix: ".max", w) }
        if let rdma = r.rdma, !rdma.isEmpty { try setRdma(rdma, dir: d, w) }
        if let unified = r.unified { try setUnified(unified, dir: d, w) }
    }

    private func setMemoryV2(_ m: Resources.Memory, dir d: String, _ w: KnobWriter) throws(CgroupError) {
        let limit = m.limit ?? 0
        let swapTotal = m.swap ?? 0
        let reservation = m.reservation ?? 0
        guard limit != 0 || swapTotal != 0 || reservation != 0 else { return }
        if m.checkBeforeUpdate == true, limit > 0 || swapTotal > 0, let usage = try? readUInt(d + "/memory.current") {
            if swapTotal > 0 && UInt64(swapTotal) <= usage {
                throw .field(
                    "memory.swap", "rejecting memory+swap limit \(swapTotal) <= usage \(usage) (checkBeforeUpdate)")
            }
            if limit > 0 && UInt64(limit) <= usage {
                throw .field("memory.limit", "rejecting memory limit \(limit) <= usage \(usage) (checkBeforeUpdate)")
            }
        }
        let swap = try CgroupManager.swapMax(swap: swapTotal, limit: limit)
        if swap != 0 || swapTotal > 0 {
            let value = swap == -1 ? "max" : String(swap)
            do throws(CgroupError) {
                try w.write(d + "/memory.swap.max", value)
            } catch {
                // No swap accounting: only "unlimited" and "none" are acceptable to skip.
                guard error.errno == ENOENT && (value == "max" || value == "0") else { throw error }
            }
        }
        if limit != 0 { try w.write(d + "/memory.max", limit == -1 ? "max" : String(limit)) }
        if reservation != 0 { try w.write(d + "/memory.low", reservation == -1 ? "max" : String(reservation)) }
    }

    private func setIOV2(_ b: Resources.BlockIO, dir d: String, _ w: KnobWriter) throws(CgroupError) {
        let weight = b.weight ?? 0
        let bfq = d + "/io.bfq.weight"
        let hasBFQ = FS.exists(bfq)
        if weight != 0 {
            if hasBFQ {
                try w.write(bfq, String(weight), restore: .none)
            } else {
                try w.write(d + "/io.weight", String(CgroupManager.ioWeight(blkioWeight: weight)), restore: .none)
            }
        }
        // Per-device weights exist only with BFQ's "default N" format (kernel >= 5.4); else ignored (runc).
        if hasBFQ, let content = readIfPresent(bfq), Int(trimmed(content)) == nil {
            for dev in b.weightDevice ?? [] {
                if let wt = dev.weight, wt != 0 { try w.write(bfq, "\(dev.major):\(dev.minor) \(wt)", restore: .none) }
            }
        }
        let throttles: [(String, [Resources.ThrottleDevice])] = [
            ("rbps", b.throttleReadBpsDevice ?? []), ("wbps", b.throttleWriteBpsDevice ?? []),
            ("riops", b.throttleReadIOPSDevice ?? []), ("wiops", b.throttleWriteIOPSDevice ?? []),
        ]
        for (key, list) in throttles {
            for t in list { try w.write(d + "/io.max", "\(t.major):\(t.minor) \(key)=\(t.rate)", restore: .none) }
        }
    }

    private func setCPUV2(_ c: Resources.CPU, dir d: String, _ w: KnobWriter) throws(CgroupError) {
        let shares = c.shares ?? 0
        let quota = c.quota ?? 0
        let period = c.period ?? 0
        if let idle = c.idle { try w.write(d + "/cpu.idle", String(idle)) }
        if shares != 0 { try w.write(d + "/cpu.weight", String(CgroupManager.cpuWeight(shares: shares))) }
        var pending: [(file: String, value: String)] = []
        if let burst = c.burst {
            try writeOrDefer(d + "/cpu.max.burst", String(burst), canDefer: quota != 0, &pending, w)
        }
        if quota != 0 || period != 0 {
            let q = quota > 0 ? String(quota) : "max"
            try w.write(d + "/cpu.max", "\(q) \(period != 0 ? period : 100_000)")
            for p in pending { try w.write(p.file, p.value) }
        }
        // realtimeRuntime/realtimePeriod have no v2 files (runc ignores them too).
    }

    /// Each key is a file in the cgroup directory; a multi-line value is written line by line.
    private func setUnified(_ unified: [String: String], dir d: String, _ w: KnobWriter) throws(CgroupError) {
        for key in unified.keys.sorted() {
            guard let value = unified[key] else { continue }
            let lines = value.contains("\n") ? value.split(separator: "\n").map(String.init) : [value]
            for line in lines {
                do throws(CgroupError) {
                    try w.write(d + "/" + key, line, restore: lines.count == 1 ? .content : .none)
                } catch {
                    guard error.errno == ENOENT || error.errno == EACCES || error.errno == EPERM else { throw error }
                    let controller = String(key.prefix { $0 != "." })
                    let available = (readIfPresent(d + "/cgroup.controllers") ?? "").split(separator: " ").map {
                        trimmed($0)
                    }
                    if controller != "cgroup" && !available.contains(controller) {
                        throw CgroupError(
                            "linux.resources.unified[\(quoted(key))]: controller \(quoted(controller)) is not "
                                + "available in \(d)",
                            errno: error.errno)
                    }
                    throw error
                }
            }
        }
    }
}
