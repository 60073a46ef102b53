// The CRI (k8s.io/cri-api, package runtime.v1) messages the smoke test sends and reads, hand-encoded
// with the protobuf codec of Sources/Checkpoint/ProtoWire.swift. Field numbers are those of
// pkg/apis/runtime/v1/api.proto; proto3 maps are repeated (key = 1, value = 2) entries; int64 fields
// hold small non-negative values here, whose varint is the same as int32's.

import Checkpoint

struct CRIPod {
    var name: String
    var uid: String
    var namespace = "swiftlet-test"
    var logDirectory: String
    var cgroupParent: String
    var sysctls: [String: String] = [:]

    /// PodSandboxConfig. Network is the node's (NamespaceMode NODE = 2: no CNI on the test machine),
    /// PID and IPC are the pod's own (POD = 0).
    func config(_ w: inout ProtoWriter) {
        w.message(1) { m in  // metadata
            m.string(1, name)
            m.string(2, uid)
            m.string(3, namespace)
        }
        w.string(3, logDirectory)
        w.message(8) { linux in  // LinuxPodSandboxConfig
            linux.string(1, cgroupParent)
            linux.message(2) { sc in  // LinuxSandboxSecurityContext
                sc.message(1) { ns in ns.int32(1, 2) }  // namespace_options: network NODE
            }
            for (k, v) in sysctls.sorted(by: { $0.key < $1.key }) {
                linux.message(3) { e in
                    e.string(1, k)
                    e.string(2, v)
                }
            }
        }
    }
}

struct CRIContainer {
    var name: String
    var image: String
    var command: [String]
    var logPath: String

    func config(_ w: inout ProtoWriter) {
        w.message(1) { m in m.string(1, name) }  // metadata
        w.message(2) { i in i.string(1, image) }
        for c in command { w.string(3, c) }
        w.string(11, logPath)
        w.message(15) { linux in  // LinuxContainerConfig
            linux.message(2) { sc in  // LinuxContainerSecurityContext.namespace_options: NODE, POD, POD
                sc.message(3) { ns in ns.int32(1, 2) }
            }
        }
    }
}

enum CRIState: Int {
    case created = 0
    case running, exited, unknown
}

struct CRIContainerStatus {
    var state: CRIState
    var exitCode: Int32
    var logPath: String
}

/// RuntimeService and ImageService calls on a GRPCClient.
struct CRI {
    let client: GRPCClient
    static let runtime = "/runtime.v1.RuntimeService/"

    static let image = "/runtime.v1.ImageService/"

    private func call(
        _ method: String, service: String = CRI.runtime, timeout: Double = 60,
        _ build: (inout ProtoWriter) -> Void
    ) throws -> [(field: Int, value: ProtoValue)] {
        var w = ProtoWriter()
        build(&w)
        return try ProtoReader.fields(try client.call(service + method, w.bytes, timeout: timeout))
    }

    /// ImageStatus: true when the CRI plugin knows the image (ImageStatusResponse.image is set).
    func imageKnown(_ ref: String) throws -> Bool {
        let f = try call("ImageStatus", service: CRI.image) { w in w.message(1) { $0.string(1, ref) } }
        return f.contains { $0.field == 1 }
    }

    /// (runtime_name, runtime_api_version) of VersionResponse.
    func version() throws -> (name: String, apiVersion: String) {
        let f = try call("Version") { $0.string(1, "v1") }
        return (string(f, 2), string(f, 4))
    }

    func runPodSandbox(_ pod: CRIPod, handler: String) throws -> String {
        let f = try call("RunPodSandbox", timeout: 120) { w in
            w.message(1) { pod.config(&$0) }
            w.string(2, handler)
        }
        return string(f, 1)
    }

    /// PodSandboxStatus: (state: 0 ready, 1 not ready; runtime_handler).
    func podSandboxStatus(_ id: String) throws -> (ready: Bool, handler: String) {
        let f = try call("PodSandboxStatus") { $0.string(1, id) }
        let status = try message(f, 1)
        return (uint(status, 3) == 0, string(status, 9))
    }

    func stopPodSandbox(_ id: String) throws { _ = try call("StopPodSandbox", timeout: 120) { $0.string(1, id) } }
    func removePodSandbox(_ id: String) throws { _ = try call("RemovePodSandbox", timeout: 120) { $0.string(1, id) } }

    func createContainer(pod podID: String, _ c: CRIContainer, sandbox: CRIPod) throws -> String {
        let f = try call("CreateContainer", timeout: 120) { w in
            w.string(1, podID)
            w.message(2) { c.config(&$0) }
            w.message(3) { sandbox.config(&$0) }
        }
        return string(f, 1)
    }

    func startContainer(_ id: String) throws { _ = try call("StartContainer", timeout: 120) { $0.string(1, id) } }

    func stopContainer(_ id: String, timeout seconds: Int32) throws {
        _ = try call("StopContainer", timeout: Double(seconds) + 60) { w in
            w.string(1, id)
            w.int32(2, seconds)
        }
    }

    func removeContainer(_ id: String) throws { _ = try call("RemoveContainer", timeout: 120) { $0.string(1, id) } }

    func containerStatus(_ id: String) throws -> CRIContainerStatus {
        let f = try call("ContainerStatus") { $0.string(1, id) }
        let s = try message(f, 1)
        return CRIContainerStatus(
            state: CRIState(rawValue: Int(uint(s, 3))) ?? .unknown,
            exitCode: Int32(truncatingIfNeeded: Int64(bitPattern: uint(s, 7))),
            logPath: string(s, 15))
    }

    /// ExecSync: (stdout, stderr, exit code).
    func execSync(_ id: String, _ cmd: [String], timeout seconds: Int32 = 30) throws -> (
        stdout: String, stderr: String, exitCode: Int32
    ) {
        let f = try call("ExecSync", timeout: Double(seconds) + 60) { w in
            w.string(1, id)
            for c in cmd { w.string(2, c) }
            w.int32(3, seconds)
        }
        return (string(f, 1), string(f, 2), Int32(truncatingIfNeeded: Int64(bitPattern: uint(f, 3))))
    }

    /// ListContainers filtered by pod: the container ids.
    func listContainers(pod podID: String) throws -> [String] {
        let f = try call("ListContainers") { w in w.message(1) { $0.string(3, podID) } }
        return try f.filter { $0.field == 1 }.map { entry in
            guard let bytes = entry.value.data else {
                throw GRPCError(status: -1, message: "Container is not a message")
            }
            return string(try ProtoReader.fields(bytes), 1)
        }
    }

    // MARK: - Reading fields (proto3: an absent field is its zero value)

    private func string(_ f: [(field: Int, value: ProtoValue)], _ n: Int) -> String {
        f.last { $0.field == n }?.value.string ?? ""
    }

    private func uint(_ f: [(field: Int, value: ProtoValue)], _ n: Int) -> UInt64 {
        f.last { $0.field == n }?.value.uint64 ?? 0
    }

    private func message(_ f: [(field: Int, value: ProtoValue)], _ n: Int) throws -> [(field: Int, value: ProtoValue)] {
        guard let bytes = f.last(where: { $0.field == n })?.value.data else {
            throw GRPCError(status: -1, message: "field \(n) missing from the reply")
        }
        return try ProtoReader.fields(bytes)
    }
}
