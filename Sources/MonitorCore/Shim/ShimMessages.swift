import Cgroups
import Checkpoint
import Glibc
import LinuxSystem

// The messages of containerd 1.6's shim API (runtime/v2/task/shim.proto), its events
// (api/events/task.proto) and the cgroup metrics (containerd/cgroups stats v1 and v2), by field number.
// Decoding is lenient as protobuf is: unknown fields are skipped, a wrong wire type is an error.

/// The fields of one decoded message, looked up by number (the last occurrence wins, as in protobuf).
struct ProtoFields {
    let list: [(field: Int, value: ProtoValue)]

    init(_ bytes: [UInt8]) throws(ProtoError) { list = try ProtoReader.fields(bytes) }

    private func last(_ n: Int) -> ProtoValue? { list.last { $0.field == n }?.value }

    func string(_ n: Int) throws(ProtoError) -> String {
        guard let v = last(n) else { return "" }
        return try Proto.string(v, "#\(n)")
    }
    func data(_ n: Int) throws(ProtoError) -> [UInt8]? {
        guard let v = last(n) else { return nil }
        return try Proto.data(v, "#\(n)")
    }
    func uint(_ n: Int) throws(ProtoError) -> UInt64 {
        guard let v = last(n) else { return 0 }
        return try Proto.varint(v, "#\(n)")
    }
    func bool(_ n: Int) throws(ProtoError) -> Bool { try uint(n) != 0 }
    func all(_ n: Int) throws(ProtoError) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for (f, v) in list where f == n { out.append(try Proto.data(v, "#\(n)")) }
        return out
    }
}

/// google.protobuf.Any.
struct AnyMessage: Equatable {
    var typeURL: String
    var value: [UInt8]

    static func decode(_ bytes: [UInt8]) throws(ProtoError) -> AnyMessage {
        let f = try ProtoFields(bytes)
        return AnyMessage(typeURL: try f.string(1), value: try f.data(2) ?? [])
    }

    func encode(_ w: inout ProtoWriter) {
        w.string(1, typeURL)
        w.bytes(2, value)
    }

    var bytes: [UInt8] {
        var w = ProtoWriter()
        encode(&w)
        return w.bytes
    }
}

/// containerd.types.Mount: type=1, source=2, target=3, options=4.
struct ShimMount: Equatable {
    var type = "", source = "", options: [String] = []
}

struct CreateTaskRequest: Equatable {
    var id = "", bundle = "", stdin = "", stdout = "", stderr = "", checkpoint = ""
    var rootfs: [ShimMount] = []
    var terminal = false
    var options: AnyMessage?

    static func decode(_ b: [UInt8]) throws(ProtoError) -> CreateTaskRequest {
        let f = try ProtoFields(b)
        var r = CreateTaskRequest()
        r.id = try f.string(1)
        r.bundle = try f.string(2)
        for m in try f.all(3) {
            let mf = try ProtoFields(m)
            var opts: [String] = []
            for o in try mf.all(4) { opts.append(String(decoding: o, as: UTF8.self)) }
            r.rootfs.append(ShimMount(type: try mf.string(1), source: try mf.string(2), options: opts))
        }
        r.terminal = try f.bool(4)
        r.stdin = try f.string(5)
        r.stdout = try f.string(6)
        r.stderr = try f.string(7)
        r.checkpoint = try f.string(8)
        if let o = try f.data(10) { r.options = try AnyMessage.decode(o) }
        return r
    }
}

/// containerd.runc.v1.Options, the runtime options of the runc shim (ours reads the same message):
/// no_pivot_root=1, no_new_keyring=2, shim_cgroup=3, io_uid=4, io_gid=5, binary_name=6, root=7,
/// criu_path=8, systemd_cgroup=9, criu_image_path=10, criu_work_path=11.
struct RuntimeOptions: Equatable {
    var binaryName = "", root = "", criuPath = ""
    var systemdCgroup = false
    var noPivotRoot = false, noNewKeyring = false
    var shimCgroup = "", criuImagePath = "", criuWorkPath = ""
    var ioUID: UInt32 = 0, ioGID: UInt32 = 0

    static func decode(_ b: [UInt8]) throws(ProtoError) -> RuntimeOptions {
        let f = try ProtoFields(b)
        var o = RuntimeOptions(
            binaryName: try f.string(6), root: try f.string(7), criuPath: try f.string(8),
            systemdCgroup: try f.bool(9))
        o.noPivotRoot = try f.bool(1)
        o.noNewKeyring = try f.bool(2)
        o.shimCgroup = try f.string(3)
        o.ioUID = UInt32(truncatingIfNeeded: try f.uint(4))
        o.ioGID = UInt32(truncatingIfNeeded: try f.uint(5))
        o.criuImagePath = try f.string(10)
        o.criuWorkPath = try f.string(11)
        return o
    }
}

struct ExecProcessRequest: Equatable {
    var id = "", execID = "", stdin = "", stdout = "", stderr = ""
    var terminal = false
    var spec: AnyMessage?

    static func decode(_ b: [UInt8]) throws(ProtoError) -> ExecProcessRequest {
        let f = try ProtoFields(b)
        return ExecProcessRequest(
            id: try f.string(1), execID: try f.string(2), stdin: try f.string(4),
            stdout: try f.string(5), stderr: try f.string(6), terminal: try f.bool(3),
            spec: try f.data(7).map { (d) throws(ProtoError) in try AnyMessage.decode(d) })
    }
}

/// The requests that name a process: id=1, exec_id=2, then their own fields.
struct ProcessRef {
    var id: String
    var execID: String
    var fields: ProtoFields

    static func decode(_ b: [UInt8]) throws(ProtoError) -> ProcessRef {
        let f = try ProtoFields(b)
        return ProcessRef(id: try f.string(1), execID: try f.string(2), fields: f)
    }
}

struct Timestamp: Equatable {
    var seconds: Int64
    var nanos: Int32

    static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanos: Int32(ts.tv_nsec))
    }

    func encode(_ field: Int, _ w: inout ProtoWriter) {
        w.message(field) { t in
            if seconds != 0 { t.int64(1, seconds) }
            if nanos != 0 { t.int32(2, nanos) }
        }
    }
}

/// containerd.v1.types.Status.
enum TaskStatus: UInt32 {
    case unknown = 0
    case created = 1
    case running = 2
    case stopped = 3
    case paused = 4
}

enum ShimReplies {
    static func pid(_ pid: Int32) -> [UInt8] {
        var w = ProtoWriter()
        if pid > 0 { w.uint32(1, UInt32(pid)) }
        return w.bytes
    }

    /// DeleteResponse{pid=1, exit_status=2, exited_at=3}; WaitResponse{exit_status=1, exited_at=2}.
    static func delete(pid: Int32, status: UInt32, at: Timestamp?) -> [UInt8] {
        var w = ProtoWriter()
        if pid > 0 { w.uint32(1, UInt32(pid)) }
        if status != 0 { w.uint32(2, status) }
        at?.encode(3, &w)
        return w.bytes
    }

    static func wait(status: UInt32, at: Timestamp?) -> [UInt8] {
        var w = ProtoWriter()
        if status != 0 { w.uint32(1, status) }
        at?.encode(2, &w)
        return w.bytes
    }

    struct State {
        var id = "", bundle = "", stdin = "", stdout = "", stderr = "", execID = ""
        var pid: Int32 = 0
        var status = TaskStatus.unknown
        var terminal = false
        var exitStatus: UInt32 = 0
        var exitedAt: Timestamp?
    }

    static func state(_ s: State) -> [UInt8] {
        var w = ProtoWriter()
        w.string(1, s.id)
        w.string(2, s.bundle)
        if s.pid > 0 { w.uint32(3, UInt32(s.pid)) }
        w.uint32(4, s.status.rawValue)
        if !s.stdin.isEmpty { w.string(5, s.stdin) }
        if !s.stdout.isEmpty { w.string(6, s.stdout) }
        if !s.stderr.isEmpty { w.string(7, s.stderr) }
        if s.terminal { w.bool(8, true) }
        if s.exitStatus != 0 { w.uint32(9, s.exitStatus) }
        s.exitedAt?.encode(10, &w)
        if !s.execID.isEmpty { w.string(11, s.execID) }
        return w.bytes
    }

    /// PidsResponse{repeated ProcessInfo{pid=1, info=2 (Any of containerd.runc.v1.ProcessDetails{exec_id=1})}}.
    static func pids(_ list: [(pid: Int32, execID: String)]) -> [UInt8] {
        var w = ProtoWriter()
        for p in list {
            w.message(1) { i in
                i.uint32(1, UInt32(max(0, p.pid)))
                if !p.execID.isEmpty {
                    var d = ProtoWriter()
                    d.string(1, p.execID)
                    i.message(2) {
                        AnyMessage(typeURL: "containerd.runc.v1.ProcessDetails", value: d.bytes).encode(&$0)
                    }
                }
            }
        }
        return w.bytes
    }

    static func connect(shimPid: Int32, taskPid: Int32) -> [UInt8] {
        var w = ProtoWriter()
        w.uint32(1, UInt32(shimPid))
        if taskPid > 0 { w.uint32(2, UInt32(taskPid)) }
        return w.bytes
    }

    static func stats(_ metrics: AnyMessage) -> [UInt8] {
        var w = ProtoWriter()
        w.message(1) { metrics.encode(&$0) }
        return w.bytes
    }
}

/// A containerd task event: its topic and the Any it is published as.
struct ShimEvent: Equatable {
    var topic: String
    var any: AnyMessage

    private static func make(_ topic: String, _ name: String, _ build: (inout ProtoWriter) -> Void) -> ShimEvent {
        var w = ProtoWriter()
        build(&w)
        return ShimEvent(topic: topic, any: AnyMessage(typeURL: "containerd.events." + name, value: w.bytes))
    }

    static func create(id: String, bundle: String, io: (String, String, String, Bool), pid: Int32, checkpoint: String)
        -> ShimEvent
    {
        make("/tasks/create", "TaskCreate") { w in
            w.string(1, id)
            w.string(2, bundle)
            w.message(4) { t in
                t.string(1, io.0)
                t.string(2, io.1)
                t.string(3, io.2)
                if io.3 { t.bool(4, true) }
            }
            if !checkpoint.isEmpty { w.string(5, checkpoint) }
            w.uint32(6, UInt32(max(0, pid)))
        }
    }

    static func start(id: String, pid: Int32) -> ShimEvent {
        make("/tasks/start", "TaskStart") {
            $0.string(1, id)
            $0.uint32(2, UInt32(max(0, pid)))
        }
    }

    static func exit(id: String, execID: String, pid: Int32, status: UInt32, at: Timestamp) -> ShimEvent {
        make("/tasks/exit", "TaskExit") { w in
            w.string(1, id)
            w.string(2, execID.isEmpty ? id : execID)
            w.uint32(3, UInt32(max(0, pid)))
            w.uint32(4, status)
            at.encode(5, &w)
        }
    }

    static func delete(id: String, pid: Int32, status: UInt32, at: Timestamp?) -> ShimEvent {
        make("/tasks/delete", "TaskDelete") { w in
            w.string(1, id)
            w.uint32(2, UInt32(max(0, pid)))
            w.uint32(3, status)
            at?.encode(4, &w)
        }
    }

    static func execAdded(id: String, execID: String) -> ShimEvent {
        make("/tasks/exec-added", "TaskExecAdded") {
            $0.string(1, id)
            $0.string(2, execID)
        }
    }

    static func execStarted(id: String, execID: String, pid: Int32) -> ShimEvent {
        make("/tasks/exec-started", "TaskExecStarted") {
            $0.string(1, id)
            $0.string(2, execID)
            $0.uint32(3, UInt32(max(0, pid)))
        }
    }

    static func paused(id: String) -> ShimEvent { make("/tasks/paused", "TaskPaused") { $0.string(1, id) } }
    static func resumed(id: String) -> ShimEvent { make("/tasks/resumed", "TaskResumed") { $0.string(1, id) } }
    static func oom(id: String) -> ShimEvent { make("/tasks/oom", "TaskOOM") { $0.string(1, id) } }
    static func checkpointed(id: String, path: String) -> ShimEvent {
        make("/tasks/checkpointed", "TaskCheckpointed") {
            $0.string(1, id)
            $0.string(2, path)
        }
    }
}

/// CgroupStats as containerd's metrics messages: io.containerd.cgroups.v1.Metrics (v1 and hybrid
/// layouts, as the runc shim reports them) or io.containerd.cgroups.v2.Metrics.
enum ShimMetrics {
    /// memory.stat keys -> v1 MemoryStat field numbers 1-32.
    static let v1MemoryFields: [(String, Int)] = {
        let names = [
            "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
            "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
            "unevictable", "hierarchical_memory_limit", "hierarchical_memsw_limit",
        ]
        var out: [(String, Int)] = []
        for (i, n) in names.enumerated() { out.append((n, i + 1)) }
        for (i, n) in names.prefix(15).enumerated() { out.append(("total_" + n, i + 18)) }
        return out
    }()

    static func v1(_ s: CgroupStats) -> AnyMessage {
        var w = ProtoWriter()
        for (size, h) in s.hugetlb.sorted(by: { $0.key < $1.key }) {
            w.message(1) { m in
                m.uint64(1, h.usage)
                m.uint64(2, h.max)
                m.uint64(3, h.failcnt)
                m.string(4, size)
            }
        }
        w.message(2) {
            $0.uint64(1, s.pids.current)
            $0.uint64(2, s.pids.limit)
        }
        w.message(3) { c in
            c.message(1) { u in
                u.uint64(1, s.cpu.usage.total)
                u.uint64(2, s.cpu.usage.kernel)
                u.uint64(3, s.cpu.usage.user)
                for v in s.cpu.usage.percpu { u.uint64(4, v) }
            }
            c.message(2) { t in
                t.uint64(1, s.cpu.throttling.periods)
                t.uint64(2, s.cpu.throttling.throttledPeriods)
                t.uint64(3, s.cpu.throttling.throttledTime)
            }
        }
        w.message(4) { m in
            for (key, field) in v1MemoryFields { if let v = s.memory.raw[key] { m.uint64(field, v) } }
            for (field, e) in [
                (33, s.memory.usage), (34, s.memory.swap), (35, s.memory.kernel), (36, s.memory.kernelTCP),
            ] {
                m.message(field) { x in
                    x.uint64(1, e.limit)
                    x.uint64(2, e.usage)
                    x.uint64(3, e.max)
                    x.uint64(4, e.failcnt)
                }
            }
        }
        w.message(5) { b in
            let lists = [
                s.blkio.ioServiceBytesRecursive, s.blkio.ioServicedRecursive, s.blkio.ioQueuedRecursive,
                s.blkio.ioServiceTimeRecursive, s.blkio.ioWaitTimeRecursive, s.blkio.ioMergedRecursive,
                s.blkio.ioTimeRecursive, s.blkio.sectorsRecursive,
            ]
            for (i, list) in lists.enumerated() {
                for e in list {
                    b.message(i + 1) { x in
                        x.string(1, e.op)
                        x.uint64(3, e.major)
                        x.uint64(4, e.minor)
                        x.uint64(5, e.value)
                    }
                }
            }
        }
        return AnyMessage(typeURL: "io.containerd.cgroups.v1.Metrics", value: w.bytes)
    }

    /// memory.stat keys -> v2 MemoryStat field numbers 1-31.
    static let v2MemoryKeys = [
        "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
        "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
        "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault",
        "pgmajfault", "workingset_refault", "workingset_activate", "workingset_nodereclaim",
        "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
        "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
    ]

    static func v2(_ s: CgroupStats) -> AnyMessage {
        var w = ProtoWriter()
        w.message(1) {
            $0.uint64(1, s.pids.current)
            $0.uint64(2, s.pids.limit)
        }
        w.message(2) { c in
            c.uint64(1, s.cpu.usage.total / 1000)
            c.uint64(2, s.cpu.usage.user / 1000)
            c.uint64(3, s.cpu.usage.kernel / 1000)
            c.uint64(4, s.cpu.throttling.periods)
            c.uint64(5, s.cpu.throttling.throttledPeriods)
            c.uint64(6, s.cpu.throttling.throttledTime / 1000)
        }
        w.message(4) { m in
            for (i, key) in v2MemoryKeys.enumerated() { if let v = s.memory.raw[key] { m.uint64(i + 1, v) } }
            m.uint64(32, s.memory.usage.usage)
            m.uint64(33, s.memory.usage.limit)
            // CgroupStats' swap is memory+swap (runc's convention); v2's message wants swap alone.
            let swapOnly = s.memory.swap.usage > s.memory.usage.usage ? s.memory.swap.usage - s.memory.usage.usage : 0
            m.uint64(34, swapOnly)
            m.uint64(35, s.memory.swap.limit)
        }
        return AnyMessage(typeURL: "io.containerd.cgroups.v2.Metrics", value: w.bytes)
    }
}
