import CLinux
import Glibc
import LinuxSystem
import OCI

/// process.scheduler (runtime-spec 1.3), validated before fork and applied with sched_setattr(2) by
/// the process itself (init and exec) before it drops its capabilities.
struct SchedulerPlan: Sendable, Equatable {
    var policy: UInt32
    var flags: UInt64
    var nice: Int32
    var priority: UInt32
    var runtime: UInt64
    var deadline: UInt64
    var period: UInt64

    static let policies: [String: UInt32] = [
        "SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4, "SCHED_IDLE": 5,
        "SCHED_DEADLINE": 6,
    ]
    static let flagTable: [String: UInt64] = [
        "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
        "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
        "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
    ]

    init(_ s: Scheduler, field: String) throws(RuntimeError) {
        guard let policy = SchedulerPlan.policies[s.policy] else {
            throw RuntimeError(.invalidArgument, "\(field).policy: unknown scheduling policy \"\(s.policy)\"")
        }
        self.policy = policy
        flags = 0
        for (i, name) in (s.flags ?? []).enumerated() {
            guard let f = SchedulerPlan.flagTable[name] else {
                throw RuntimeError(.invalidArgument, "\(field).flags[\(i)]: unknown scheduling flag \"\(name)\"")
            }
            flags |= f
        }
        nice = s.nice ?? 0
        guard (-20...19).contains(nice) else {
            throw RuntimeError(.invalidArgument, "\(field).nice: \(nice) is out of range [-20, 19]")
        }
        let prio = s.priority ?? 0
        let realTime = s.policy == "SCHED_FIFO" || s.policy == "SCHED_RR"
        if realTime && !(1...99).contains(prio) {
            throw RuntimeError(
                .invalidArgument, "\(field).priority: \(s.policy) needs a priority in [1, 99], not \(prio)")
        }
        if !realTime && prio != 0 {
            throw RuntimeError(.invalidArgument, "\(field).priority: must be 0 for \(s.policy), not \(prio)")
        }
        priority = UInt32(prio)
        runtime = s.runtime ?? 0
        deadline = s.deadline ?? 0
        period = s.period ?? 0
        if s.policy == "SCHED_DEADLINE" {
            // The kernel's own rule (sched(7)): runtime <= deadline <= period, period 0 meaning deadline.
            guard runtime > 0, runtime <= deadline, period == 0 || deadline <= period else {
                throw RuntimeError(
                    .invalidArgument, "\(field): SCHED_DEADLINE needs 0 < runtime <= deadline <= period (or period 0)")
            }
        } else if runtime != 0 || deadline != 0 || period != 0 {
            throw RuntimeError(.invalidArgument, "\(field): runtime, deadline and period apply to SCHED_DEADLINE only")
        }
    }

    func apply() throws(SysError) {
        try sys("sched_setattr", "process.scheduler") {
            sl_sched_setattr_self(policy, flags, nice, priority, runtime, deadline, period)
        }
    }
}

/// linux.memoryPolicy (runtime-spec 1.3): set_mempolicy(2) for init and exec'd processes.
public struct MemoryPolicyPlan: Sendable, Equatable {
    var mode: Int32  // the mode with its MPOL_F_* flags
    var nodeMask: [UInt]  // bit n set for node n
    var maxNode: UInt

    static let modes = Dictionary(uniqueKeysWithValues: memoryPolicyModes.map { ($0.name, $0.value) })
    static let flagTable = Dictionary(uniqueKeysWithValues: memoryPolicyFlags.map { ($0.name, $0.value) })

    init(_ m: MemoryPolicy, field: String = "linux.memoryPolicy") throws(RuntimeError) {
        guard let mode = MemoryPolicyPlan.modes[m.mode] else {
            throw RuntimeError(.invalidArgument, "\(field).mode: unknown memory policy mode \"\(m.mode)\"")
        }
        var flags: Int32 = 0
        for (i, name) in (m.flags ?? []).enumerated() {
            guard let f = MemoryPolicyPlan.flagTable[name] else {
                throw RuntimeError(.invalidArgument, "\(field).flags[\(i)]: unknown memory policy flag \"\(name)\"")
            }
            flags |= f
        }
        if m.flags?.contains("MPOL_F_STATIC_NODES") == true && m.flags?.contains("MPOL_F_RELATIVE_NODES") == true {
            throw RuntimeError(
                .invalidArgument, "\(field).flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
        }
        var nodes: [Int] = []
        if let text = m.nodes, !text.isEmpty {
            guard let list = parseNumberList(text), list.allSatisfy({ $0 < 4096 }) else {
                throw RuntimeError(
                    .invalidArgument, "\(field).nodes: \"\(text)\" is not a list of memory nodes like \"0-3,7\"")
            }
            nodes = list
        }
        switch m.mode {
        case "MPOL_DEFAULT", "MPOL_LOCAL":
            if !nodes.isEmpty { throw RuntimeError(.invalidArgument, "\(field).nodes: \(m.mode) takes no nodes") }
            if flags != 0 { throw RuntimeError(.invalidArgument, "\(field).flags: \(m.mode) takes no flags") }
        case "MPOL_PREFERRED":
            break  // no nodes: local allocation
        default:
            if nodes.isEmpty {
                throw RuntimeError(.invalidArgument, "\(field).nodes: \(m.mode) needs at least one node")
            }
        }
        let bits = UInt(UInt.bitWidth)
        var mask = [UInt](repeating: 0, count: nodes.isEmpty ? 0 : (nodes.max() ?? 0) / Int(bits) + 1)
        for n in nodes { mask[n / Int(bits)] |= 1 << UInt(n % Int(bits)) }
        self.mode = mode | flags
        nodeMask = mask
        // maxnode counts bits and the kernel ignores the last one (set_mempolicy(2)).
        maxNode = mask.isEmpty ? 0 : UInt(mask.count) * bits + 1
    }

    /// The modes and flags this kernel takes (what `features` lists): each tried with set_mempolicy
    /// on the calling process (node 0 where a node is needed), which is then set back to MPOL_DEFAULT.
    /// A kernel without NUMA support takes none.
    public static func supported() -> Features.MemoryPolicy {
        var node0: UInt = 1
        func works(_ mode: Int32, nodes: Bool) -> Bool {
            let ok =
                (nodes ? sl_set_mempolicy(mode, &node0, UInt(UInt.bitWidth) + 1) : sl_set_mempolicy(mode, nil, 0)) == 0
            _ = sl_set_mempolicy(0, nil, 0)
            return ok
        }
        let bind = modes["MPOL_BIND"] ?? 2
        return Features.MemoryPolicy(
            modes: memoryPolicyModes.filter {
                works($0.value, nodes: !["MPOL_DEFAULT", "MPOL_LOCAL"].contains($0.name))
            }.map(\.name),
            flags: memoryPolicyFlags.filter { works(bind | $0.value, nodes: true) }.map(\.name))
    }

    func apply() throws(SysError) {
        try sys("set_mempolicy", "linux.memoryPolicy") {
            nodeMask.isEmpty
                ? sl_set_mempolicy(mode, nil, 0)
                : nodeMask.withUnsafeBufferPointer {
                    sl_set_mempolicy(mode, $0.baseAddress, maxNode)
                }
        }
    }
}
