// The CRIU RPC messages swiftlet sends and receives, with their field numbers from CRIU's
// images/rpc.proto (proto2). Only the fields swiftlet uses are modelled; unknown fields in
// responses are ignored, as protobuf requires.

/// criu_req_type (rpc.proto enum).
public enum CriuRequestType: UInt64, Sendable {
    case empty = 0
    case dump = 1
    case restore = 2
    case check = 3
    case preDump = 4
    case pageServer = 5
    case notify = 6
    case cpuinfoDump = 7
    case cpuinfoCheck = 8
    case featureCheck = 9
    case version = 10
    case waitPid = 11
    case pageServerChild = 12
}

/// criu_cg_mode (rpc.proto enum): IGNORE 0, CG_NONE 1, PROPS 2, SOFT 3, FULL 4, STRICT 5, DEFAULT 6.
public enum CriuCgroupMode: UInt64, Sendable {
    case ignore = 0
    case none = 1
    case props = 2
    case soft = 3
    case full = 4
    case strict = 5
    case `default` = 6

    /// runc's --manage-cgroups-mode values ("" is CRIU's default).
    public static func parse(_ s: String) -> CriuCgroupMode? {
        switch s {
        case "": .default
        case "soft": .soft
        case "full": .full
        case "strict": .strict
        case "ignore": .ignore
        default: nil
        }
    }
}

/// criu_opts. Field numbers in the comments are rpc.proto's.
public struct CriuOptions: Sendable {
    public var imagesDirFd: Int32 = -1  // 1 (required)
    public var pid: Int32?  // 2
    public var leaveRunning = false  // 3
    public var extUnixSk = false  // 4
    public var tcpEstablished = false  // 5
    public var evasiveDevices = false  // 6
    public var shellJob = false  // 7
    public var fileLocks = false  // 8
    public var logLevel: Int32 = 4  // 9
    public var logFile: String?  // 10
    public var notifyScripts = false  // 12
    public var root: String?  // 13
    public var parentImage: String?  // 14
    public var trackMem = false  // 15
    public var autoDedup = false  // 16
    public var workDirFd: Int32?  // 17
    public var externalMounts: [(key: String, value: String)] = []  // 23 ext_mnt: ext_mount_map {key 1, val 2}
    public var manageCgroups = false  // 24
    public var cgroupRoots: [(controller: String?, path: String)] = []  // 25 cg_root: cgroup_root {ctrl 1, path 2}
    public var restoreSibling = false  // 26 rst_sibling
    public var inheritFds: [(key: String, fd: Int32)] = []  // 27 inherit_fd: inherit_fd {key 1, fd 2}
    public var manageCgroupsMode: CriuCgroupMode?  // 34
    public var external: [String] = []  // 37
    public var emptyNamespaces: UInt32 = 0  // 38 empty_ns (CLONE_* flags)
    public var joinNamespaces: [(ns: String, file: String)] = []  // 39 join_ns: join_namespace {ns 1, ns_file 2}
    public var freezeCgroup: String?  // 44
    public var lazyPages = false  // 48
    public var orphanPtsMaster = false  // 50
    public var configFile: String?  // 51

    public init() {}

    public func encode(into w: inout ProtoWriter) {
        w.int32(1, imagesDirFd)
        if let pid { w.int32(2, pid) }
        if leaveRunning { w.bool(3, true) }
        if extUnixSk { w.bool(4, true) }
        if tcpEstablished { w.bool(5, true) }
        if evasiveDevices { w.bool(6, true) }
        if shellJob { w.bool(7, true) }
        if fileLocks { w.bool(8, true) }
        w.int32(9, logLevel)
        if let logFile { w.string(10, logFile) }
        if notifyScripts { w.bool(12, true) }
        if let root { w.string(13, root) }
        if let parentImage { w.string(14, parentImage) }
        if trackMem { w.bool(15, true) }
        if autoDedup { w.bool(16, true) }
        if let workDirFd { w.int32(17, workDirFd) }
        for m in externalMounts {
            w.message(23) {
                $0.string(1, m.key)
                $0.string(2, m.value)
            }
        }
        if manageCgroups { w.bool(24, true) }
        for r in cgroupRoots {
            w.message(25) { inner in
                if let c = r.controller { inner.string(1, c) }
                inner.string(2, r.path)
            }
        }
        if restoreSibling { w.bool(26, true) }
        for f in inheritFds {
            w.message(27) {
                $0.string(1, f.key)
                $0.int32(2, f.fd)
            }
        }
        if let manageCgroupsMode {
            w.varint(34 << 3)
            w.varint(manageCgroupsMode.rawValue)
        }
        for e in external { w.string(37, e) }
        if emptyNamespaces != 0 { w.uint32(38, emptyNamespaces) }
        for j in joinNamespaces {
            w.message(39) {
                $0.string(1, j.ns)
                $0.string(2, j.file)
            }
        }
        if let freezeCgroup { w.string(44, freezeCgroup) }
        if lazyPages { w.bool(48, true) }
        if orphanPtsMaster { w.bool(50, true) }
        if let configFile { w.string(51, configFile) }
    }
}

/// criu_features: mem_track 1, lazy_pages 2.
public struct CriuFeatures: Sendable, Equatable {
    public var memTrack: Bool?
    public var lazyPages: Bool?
    public init(memTrack: Bool? = nil, lazyPages: Bool? = nil) {
        self.memTrack = memTrack
        self.lazyPages = lazyPages
    }

    func encode(into w: inout ProtoWriter) {
        if let memTrack { w.bool(1, memTrack) }
        if let lazyPages { w.bool(2, lazyPages) }
    }

    static func decode(_ bytes: [UInt8]) throws(ProtoError) -> CriuFeatures {
        var f = CriuFeatures()
        for (field, value) in try ProtoReader.fields(bytes) {
            switch field {
            case 1: f.memTrack = value.bool
            case 2: f.lazyPages = value.bool
            default: break
            }
        }
        return f
    }
}

/// criu_req: type 1, opts 2, notify_success 3, keep_open 4, features 5.
public struct CriuRequest: Sendable {
    public var type: CriuRequestType
    public var options: CriuOptions?
    public var notifySuccess = false
    public var features: CriuFeatures?

    public init(
        type: CriuRequestType, options: CriuOptions? = nil, notifySuccess: Bool = false, features: CriuFeatures? = nil
    ) {
        self.type = type
        self.options = options
        self.notifySuccess = notifySuccess
        self.features = features
    }

    public func encoded() -> [UInt8] {
        var w = ProtoWriter()
        w.varint(1 << 3)
        w.varint(type.rawValue)
        if let options { w.message(2) { options.encode(into: &$0) } }
        if notifySuccess { w.bool(3, true) }
        if let features { w.message(5) { features.encode(into: &$0) } }
        return w.bytes
    }
}

/// criu_resp: type 1, success 2, restore 4 (criu_restore_resp: pid 1), notify 5 (criu_notify:
/// script 1, pid 2), cr_errno 7, features 8, cr_errmsg 9. (dump 3, ps 6, version 10 and status 11
/// are not used.)
public struct CriuResponse: Sendable, Equatable {
    public var type: UInt64 = 0
    public var success = false
    public var restoredPid: Int32?
    public var notifyScript: String?
    public var notifyPid: Int32?
    public var errno: Int32?
    public var errorMessage: String?
    public var features: CriuFeatures?

    public init() {}

    public var requestType: CriuRequestType? { CriuRequestType(rawValue: type) }

    public static func decode(_ bytes: [UInt8]) throws(ProtoError) -> CriuResponse {
        var r = CriuResponse()
        var sawType = false
        var sawSuccess = false
        for (field, value) in try ProtoReader.fields(bytes) {
            switch field {
            case 1:
                r.type = value.uint64 ?? 0
                sawType = true
            case 2:
                r.success = value.bool ?? false
                sawSuccess = true
            case 4:
                for (f, v) in try ProtoReader.fields(value.data ?? []) where f == 1 { r.restoredPid = v.int32 }
            case 5:
                for (f, v) in try ProtoReader.fields(value.data ?? []) {
                    if f == 1 { r.notifyScript = v.string }
                    if f == 2 { r.notifyPid = v.int32 }
                }
            case 7: r.errno = value.int32
            case 8: r.features = try CriuFeatures.decode(value.data ?? [])
            case 9: r.errorMessage = value.string
            default: break
            }
        }
        if !sawType || !sawSuccess {
            throw ProtoError("criu_resp without its required type and success fields", offset: bytes.count)
        }
        return r
    }

}
