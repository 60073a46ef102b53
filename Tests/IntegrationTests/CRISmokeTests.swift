// CRI smoke tests: our own test-only CRI client (CRIClient.swift, CRIMessages.swift) acts as the kubelet
// towards a private containerd 1.6 (CRIHarness.swift) and drives a pod through its life:
//   RunPodSandbox with a namespaced sysctl (kernel.msgmax, IPC namespace), PodSandboxStatus,
//   CreateContainer + StartContainer of a container sharing the pod's PID and IPC namespaces,
//   ContainerStatus, ListContainers, ExecSync (stdout, stderr, exit code; the pod's sysctl and the pod's
//   PID 1 seen from the container), the container log in CRI format at the pod's log path,
//   under our shim the container's control socket (monitor.sock: state, execSync),
//   StopContainer (SIGTERM: exit code 143), RemoveContainer, StopPodSandbox, RemovePodSandbox,
// then checks that nothing is left: no shim, no process in the pod's cgroups, no mount below containerd's
// dirs, no cgroup below the pod's parent, no runtime state dir.
// testRuncShim runs it under containerd-shim-runc-v2 with BinaryName = SWIFTLET_BINARY (it passes with
// SWIFTLET_BINARY=/usr/sbin/runc too); testSwiftletShim under our containerd-shim-swiftlet-v2, side by
// side with a runc-shim pod in the same containerd (skipped, saying so, when no shim binary is found, as
// with SWIFTLET_BINARY=/usr/sbin/runc and no SWIFTLET_MONITOR).

import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

final class CRISmokeTests: XCTestCase {
    private var containerd: PrivateContainerd?
    private var cri: CRI?
    private var cgroupParents: [String] = []
    private var podIDs: [String] = []
    private var usedMsgmax: Set<Int> = []

    override func setUpWithError() throws {
        try XCTSkipUnless(getuid() == 0, "CRI smoke tests run containerd and real containers as root")
        try XCTSkipUnless(Runtime.binaryAvailable && Runtime.rootfsAvailable, "no runtime binary or test rootfs")
    }

    /// After a failure: pods still there are stopped and removed through CRI; whatever that leaves
    /// (processes in the pods' cgroups, shims of this containerd) is killed by PID after containerd stops.
    override func tearDown() {
        for id in podIDs {
            try? cri?.stopPodSandbox(id)
            try? cri?.removePodSandbox(id)
        }
        cri = nil
        if let c = containerd {
            c.stopDaemon()
            let left =
                cgroupParents.flatMap { processesInCgroup(containing: $0) }
                + processesWithCommandLine(containing: c.socket)
            for pid in Set(left) { kill(pid, SIGKILL) }
            waitUntil(timeout: 10) { cgroupParents.allSatisfy { processesInCgroup(containing: $0).isEmpty } }
            for id in podIDs { if let s = runcShimSocket(c, id) { unlink(s) } }
            c.removeDir()
        }
        containerd = nil
        for parent in cgroupParents { removeCgroupDirs(parent) }
    }

    func testRuncShim() throws {
        let c = try startContainerd()
        let cri = try connect(c)
        let pod = try startPod(cri, c, handler: "swiftlet-runc")
        try checkPod(cri, pod)
        try finishPod(cri, c, pod)
        XCTAssertEqual(mountsBelow(c.dir), [], "mounts left below containerd's dirs")
    }

    func testSwiftletShim() throws {
        guard PrivateContainerd.shimBinary != nil else {
            throw XCTSkip(
                "no containerd-shim-swiftlet-v2: set SWIFTLET_SHIM or SWIFTLET_MONITOR (the monitor is the shim)")
        }
        let c = try startContainerd()
        let cri = try connect(c)
        let neighbour = try startPod(cri, c, handler: "swiftlet-runc")
        let pod = try startPod(cri, c, handler: "swiftlet")
        try checkPod(cri, pod)
        try finishPod(cri, c, pod)
        try checkPod(cri, neighbour)  // untouched by the other shim's pod going away
        try finishPod(cri, c, neighbour)
        XCTAssertEqual(mountsBelow(c.dir), [], "mounts left below containerd's dirs")
    }

    /// A handler with `options = { ConfigPath = F }` (runtimeoptions.v1.Options): the file's BinaryName
    /// (a wrapper recording its calls) and Root are what our shim runs for the pod and its container.
    func testSwiftletShimConfigPath() throws {
        guard PrivateContainerd.shimBinary != nil else {
            throw XCTSkip(
                "no containerd-shim-swiftlet-v2: set SWIFTLET_SHIM or SWIFTLET_MONITOR (the monitor is the shim)")
        }
        let c = try startContainerd()
        let cri = try connect(c)
        let pod = try startPod(cri, c, handler: "swiftlet-opts")
        try checkPod(cri, pod)
        let calls = ((try? String(contentsOfFile: c.recordedCalls, encoding: .utf8)) ?? "").split(separator: "\n")
        for id in [pod.id, pod.container] {
            XCTAssertTrue(calls.contains { $0.contains(" create ") && $0.hasSuffix(id) }, "create of \(id): \(calls)")
        }
        XCTAssertTrue(calls.allSatisfy { $0.hasPrefix("--root \(c.optionsRoot)/k8s.io ") }, "\(calls)")
        try finishPod(cri, c, pod)
        XCTAssertEqual(mountsBelow(c.dir), [], "mounts left below containerd's dirs")
    }

    // MARK: - The pod's life

    private struct Pod {
        var config: CRIPod
        var handler: String
        var id: String
        var container: String
        var token: String
        var msgmax: Int
        var logFile: String
    }

    private func startContainerd() throws -> PrivateContainerd {
        let c = try PrivateContainerd()
        containerd = c
        return c
    }

    private func connect(_ c: PrivateContainerd) throws -> CRI {
        let cri = CRI(client: try GRPCClient(socketPath: c.socket))
        self.cri = cri
        let v = try cri.version()
        XCTAssertEqual(v.name, "containerd")
        XCTAssertEqual(v.apiVersion, "v1")
        // The CRI plugin learns of the imported image from an event; before that RunPodSandbox would
        // try to pull the sandbox image from the network.
        var known = false
        waitUntil(timeout: 30) {
            known = (try? cri.imageKnown(PrivateContainerd.image)) ?? false
            return known
        }
        XCTAssertTrue(known, "the CRI plugin does not list \(PrivateContainerd.image)")
        XCTAssertFalse(try cri.imageKnown("localhost/swiftlet-no-such-image:latest"))
        return cri
    }

    private func startPod(_ cri: CRI, _ c: PrivateContainerd, handler: String) throws -> Pod {
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var msgmax = Int.random(in: 9000...60000)  // also names the container's `sleep`: one per pod
        while usedMsgmax.contains(msgmax) { msgmax = Int.random(in: 9000...60000) }
        usedMsgmax.insert(msgmax)
        let parent = "/swiftlet-cri-\(token)"
        cgroupParents.append(parent)
        let logs = c.dir + "/logs/" + token
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let config = CRIPod(
            name: "pod-\(token)", uid: UUID().uuidString.lowercased(), logDirectory: logs,
            cgroupParent: parent, sysctls: ["kernel.msgmax": "\(msgmax)"])
        let id: String
        do {
            id = try cri.runPodSandbox(config, handler: handler)
            podIDs.append(id)
        } catch {
            XCTFail("RunPodSandbox (\(handler)): \(error)\n\(c.logTail())")
            throw error
        }
        let status = try cri.podSandboxStatus(id)
        XCTAssertTrue(status.ready, "pod \(id) not ready")
        XCTAssertEqual(status.handler, handler)

        let spec = CRIContainer(
            name: "main", image: PrivateContainerd.image,
            command: ["sh", "-c", "echo out-\(token); echo err-\(token) >&2; exec sleep 7\(msgmax)"],
            logPath: "main/0.log")
        let container = try cri.createContainer(pod: id, spec, sandbox: config)
        XCTAssertEqual(try cri.containerStatus(container).state, .created)
        try cri.startContainer(container)
        return Pod(
            config: config, handler: handler, id: id, container: container, token: token, msgmax: msgmax,
            logFile: logs + "/main/0.log")
    }

    private func checkPod(_ cri: CRI, _ pod: Pod) throws {
        let status = try cri.containerStatus(pod.container)
        XCTAssertEqual(status.state, .running)
        XCTAssertEqual(status.logPath, pod.logFile)
        XCTAssertEqual(try cri.listContainers(pod: pod.id), [pod.container])
        assertLeftoverChecksSee(pod)

        // The pod's sysctl, set on the sandbox, seen in the container: one IPC namespace.
        let sysctl = try cri.execSync(pod.container, ["cat", "/proc/sys/kernel/msgmax"])
        XCTAssertEqual(sysctl.exitCode, 0, sysctl.stderr)
        XCTAssertEqual(sysctl.stdout, "\(pod.msgmax)\n")
        // PID 1 of the container's PID namespace is the sandbox's process: one PID namespace.
        let pid1 = try cri.execSync(pod.container, ["cat", "/proc/1/cmdline"])
        XCTAssertEqual(pid1.stdout, "/bin/sleep\0\(PrivateContainerd.pauseCommand)\0")
        let exec = try cri.execSync(
            pod.container, ["sh", "-c", "echo x-\(pod.token); echo y-\(pod.token) >&2; exit 3"])
        XCTAssertEqual(exec.stdout, "x-\(pod.token)\n")
        XCTAssertEqual(exec.stderr, "y-\(pod.token)\n")
        XCTAssertEqual(exec.exitCode, 3)
        if pod.handler == "swiftlet" { try checkControlSocket(pod) }

        // CRI log format: "<RFC 3339 nano time> <stream> <P|F> <text>", one line each.
        var lines: [String] = []
        waitUntil(timeout: 30) {
            lines = ((try? String(contentsOfFile: pod.logFile, encoding: .utf8)) ?? "").split(separator: "\n").map(
                String.init)
            return lines.count >= 2
        }
        let pattern = #"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+) (stdout|stderr) F (.*)$"#
        let regex = try NSRegularExpression(pattern: pattern)
        var seen: [String] = []
        for line in lines {
            guard let m = regex.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)),
                let stream = Range(m.range(at: 2), in: line), let text = Range(m.range(at: 3), in: line)
            else {
                XCTFail("not a CRI log line: \(line.debugDescription)")
                continue
            }
            seen.append("\(line[stream]) \(line[text])")
        }
        XCTAssertEqual(Set(seen), ["stdout out-\(pod.token)", "stderr err-\(pod.token)"])
    }

    /// Under our shim the container's bundle has the monitor's control socket: `state` and execSync
    /// answer for the container CRI started (Spec/monitor.md, "Control API").
    private func checkControlSocket(_ pod: Pod) throws {
        guard let c = containerd else { return }
        // Reached through an fd of the bundle: its path (a 64-hex id) is too long for sun_path.
        let bundle = open(
            "\(c.dir)/state/io.containerd.runtime.v2.task/k8s.io/\(pod.container)", O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(bundle, 0, "the container's bundle")
        defer { close(bundle) }
        let api = try ControlClient("/proc/self/fd/\(bundle)/monitor.sock")
        let state = api.call("state")["result"] as? [String: Any]
        XCTAssertEqual(state?["id"] as? String, pod.container)
        XCTAssertEqual(state?["status"] as? String, "running")
        let exec = api.call("execSync", ["args": ["cat", "/proc/sys/kernel/msgmax"]])["result"] as? [String: Any]
        XCTAssertEqual(exec?["stdout"] as? String, "\(pod.msgmax)\n")
    }

    private func finishPod(_ cri: CRI, _ c: PrivateContainerd, _ pod: Pod) throws {
        try cri.stopContainer(pod.container, timeout: 30)
        let stopped = try cri.containerStatus(pod.container)
        XCTAssertEqual(stopped.state, .exited)
        XCTAssertEqual(stopped.exitCode, 143, "sleep killed by SIGTERM")
        try cri.removeContainer(pod.container)
        XCTAssertEqual(try cri.listContainers(pod: pod.id), [])
        XCTAssertThrowsError(try cri.containerStatus(pod.container)) { error in  // gRPC NOT_FOUND
            XCTAssertEqual((error as? GRPCError)?.status, 5, "\(error)")
        }
        try cri.stopPodSandbox(pod.id)
        XCTAssertFalse(try cri.podSandboxStatus(pod.id).ready)
        try cri.removePodSandbox(pod.id)
        assertNothingLeft(pod, c)
    }

    // MARK: - Leftovers

    /// While the pod runs, each leftover check finds what it looks for (so that finding nothing later
    /// means something): the shim, the pod's processes, its mounts, its cgroups.
    private func assertLeftoverChecksSee(_ pod: Pod, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(
            (processesWithCommandLine(containing: pod.id) + processesWithCommandLine(containing: pod.container))
                .isEmpty,
            "no shim found for \(pod.id)", file: file, line: line)
        XCTAssertGreaterThanOrEqual(
            processesInCgroup(containing: pod.config.cgroupParent).count, 2, "pause and container", file: file,
            line: line)
        // Running is reported before `sh` has exec'd the sleep.
        XCTAssertTrue(
            waitUntil(timeout: 20) { processesWithCommandLine(containing: "sleep 7\(pod.msgmax)").count == 1 },
            "the container's sleep: \(processesWithCommandLine(containing: "sleep 7\(pod.msgmax)"))", file: file,
            line: line)
        XCTAssertFalse(mountsContaining(pod.id).isEmpty, "no mount of the sandbox", file: file, line: line)
        XCTAssertFalse(
            cgroupChildren(pod.config.cgroupParent).isEmpty, "no cgroup below the pod's parent", file: file, line: line)
        if pod.handler == "swiftlet-opts" {  // the state is in the options' Root
            XCTAssertEqual(runtimeStates(pod).sorted(), [pod.id, pod.container].sorted(), file: file, line: line)
        }
        if pod.handler == "swiftlet-runc" {  // where containerd-shim-runc-v2 mounts and keeps state
            XCTAssertFalse(mountsContaining(pod.container).isEmpty, "no mount of the container", file: file, line: line)
            if let c = containerd, let socket = runcShimSocket(c, pod.id) {
                XCTAssertTrue(
                    FileManager.default.fileExists(atPath: socket), "no shim socket \(socket)", file: file, line: line)
            }
            XCTAssertEqual(runtimeStates(pod).sorted(), [pod.id, pod.container].sorted(), file: file, line: line)
        }
    }

    /// containerd-shim-runc-v2's socket: /run/containerd/s/<hex sha256 of "ADDRESS/NAMESPACE/ID">.
    private func runcShimSocket(_ c: PrivateContainerd, _ podID: String) -> String? {
        let r = runProgram("/usr/bin/sha256sum", [], stdin: "\(c.socket)/k8s.io/\(podID)")
        guard r.status == 0, let hash = r.stdout.split(separator: " ").first, hash.count == 64 else { return nil }
        return "/run/containerd/s/\(hash)"
    }

    /// The pod's runtime state dirs, in the runc shim's Root or our shim's default root.
    private func runtimeStates(_ pod: Pod) -> [String] {
        guard let c = containerd else { return [] }
        return [c.runtimeRoot, PrivateContainerd.shimRuntimeRoot, c.optionsRoot].flatMap { root in
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/k8s.io")) ?? [])
                .filter { $0 == pod.id || $0 == pod.container }
        }
    }

    private func assertNothingLeft(
        _ pod: Pod, _ c: PrivateContainerd, file: StaticString = #filePath, line: UInt = #line
    ) {
        let parent = pod.config.cgroupParent
        // A shim runs with -id <sandbox id> (one per pod, as runc's) or <container id>; the pod's
        // processes were in cgroups below the parent.
        let shims = {
            processesWithCommandLine(containing: pod.id) + processesWithCommandLine(containing: pod.container)
        }
        XCTAssertTrue(
            waitUntil(timeout: 60) { shims().isEmpty }, "shim left: \(shims().map(commandLine))", file: file, line: line
        )
        XCTAssertTrue(
            waitUntil(timeout: 60) { processesInCgroup(containing: parent).isEmpty },
            "processes left in \(parent): \(processesInCgroup(containing: parent))", file: file, line: line)
        XCTAssertEqual(
            processesWithCommandLine(containing: "sleep 7\(pod.msgmax)"), [], "container process left", file: file,
            line: line)
        XCTAssertEqual(
            mountsContaining(pod.id) + mountsContaining(pod.container), [], "mounts left", file: file, line: line)
        XCTAssertEqual(cgroupChildren(parent), [], "cgroups left below \(parent)", file: file, line: line)
        XCTAssertEqual(runtimeStates(pod), [], "runtime state left", file: file, line: line)
        if pod.handler == "swiftlet-runc", let socket = runcShimSocket(c, pod.id) {
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: socket), "shim socket left: \(socket)", file: file, line: line)
        }
    }

    private func commandLine(_ pid: Int32) -> String {
        let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
        return "\(pid): " + String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// Every cgroup hierarchy's copy of `parent` (v1 controllers, the unified tree, or pure v2).
    private func cgroupDirs(_ parent: String) -> [String] {
        let base = "/sys/fs/cgroup"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return (names.map { "\(base)/\($0)\(parent)" } + ["\(base)\(parent)"]).filter {
            FileManager.default.fileExists(atPath: $0)
        }
    }

    private func cgroupChildren(_ parent: String) -> [String] {
        cgroupDirs(parent).flatMap { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).compactMap { name in
                var isDir: ObjCBool = false
                return FileManager.default.fileExists(atPath: dir + "/" + name, isDirectory: &isDir) && isDir.boolValue
                    ? dir + "/" + name : nil
            }
        }
    }

    /// Removes the pod parents the runtimes created (they leave parents, as runc does), deepest first.
    private func removeCgroupDirs(_ parent: String) {
        for d in cgroupChildren(parent).sorted(by: >) + cgroupDirs(parent) { rmdir(d) }
    }
}
