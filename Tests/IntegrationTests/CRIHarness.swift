// A private containerd 1.6 with its CRI plugin on, for CRISmokeTests: config, root, state, sockets, the
// runtimes' state and the pods' logs all live in one temp dir (short: unix socket paths are limited to
// 108 bytes). Like Scripts/containerd-smoke.sh, containerd runs in its own session and is stopped by its
// PID. Two runtime handlers:
//   swiftlet-runc  runtime_type io.containerd.runc.v2 (containerd-shim-runc-v2), BinaryName = SWIFTLET_BINARY
//   swiftlet       runtime_type io.containerd.swiftlet.v2 (our containerd-shim-swiftlet-v2), when one is
//                  found: $SWIFTLET_SHIM, else containerd-shim-swiftlet-v2 beside SWIFTLET_BINARY, else
//                  SWIFTLET_MONITOR (the monitor binary is the shim when entered by that name); no
//                  options: the shim runs the `swiftlet` beside it or on containerd's PATH, a link to
//                  SWIFTLET_BINARY
//   swiftlet-opts  the same shim with options { ConfigPath = <dir>/swiftlet-opts.toml }, which CRI
//                  passes as runtimeoptions.v1.Options: the file names a recording wrapper of
//                  SWIFTLET_BINARY (BinaryName, its calls in `recordedCalls`) and a root of its own
//                  (Root = `optionsRoot`)
// The image (the busybox test rootfs packed with umoci, imported with `ctr -n k8s.io image import`) is
// also the sandbox ("pause") image: its command sleeps. No network: pods use the node's network (and so
// UTS) namespace, as there is no CNI here; their PID and IPC namespaces are their own.

import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

final class PrivateContainerd {
    static let image = "localhost/swiftlet-cri-busybox:latest"
    static let pauseCommand = "999999"  // the image's `sleep` argument: marks sandbox processes

    let dir: String
    /// The namespace the image is imported into (the CRI plugin's is k8s.io).
    let namespace: String
    var socket: String { dir + "/c.sock" }
    var runtimeRoot: String { dir + "/rt" }
    /// The swiftlet-opts handler's Root and the file where its BinaryName records each call.
    var optionsRoot: String { dir + "/rt-opts" }
    var recordedCalls: String { dir + "/runtime-calls" }
    /// Where our shim keeps swiftlet's state when no options name a root (the CRI plugin passes none).
    static let shimRuntimeRoot = "/run/containerd/swiftlet"
    private(set) var pid: pid_t = 0

    /// The shim binary for the `swiftlet` handler: $SWIFTLET_SHIM, else containerd-shim-swiftlet-v2 beside
    /// SWIFTLET_BINARY, else swiftlet-monitor (SWIFTLET_MONITOR), which is the shim when entered by that
    /// name; nil when there is none (a runtime binary without a monitor beside it, e.g. /usr/sbin/runc).
    static var shimBinary: String? {
        let env = ProcessInfo.processInfo.environment["SWIFTLET_SHIM"] ?? ""
        let beside = URL(fileURLWithPath: Runtime.binary).deletingLastPathComponent().appendingPathComponent(
            "containerd-shim-swiftlet-v2"
        ).path
        let candidates = env.isEmpty ? [beside, Runtime.monitor] : [env]
        return candidates.first { access($0, X_OK) == 0 }.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    /// `prefix` names the temp dir (/tmp/PREFIX.XXXXXX), so that a helper's containerd can be told apart.
    init(prefix: String = "swiftlet-cri", namespace: String = "k8s.io") throws {
        for tool in ["containerd", "ctr", "umoci", "tar"] {
            guard findExecutable(tool) != nil else {
                throw XCTSkip("\(tool) not found (Scripts/install-deps.sh installs containerd and umoci)")
            }
        }
        let d = try PrivateContainerd.mkdtempShort(prefix)
        dir = d
        self.namespace = namespace
        do {
            try start()
            try importImage()
        } catch {
            stop()
            throw error
        }
    }

    private static func mkdtempShort(_ prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) != nil }) else {
            throw TestSupportError("mkdtemp /tmp/\(prefix).XXXXXX: \(String(cString: strerror(errno)))")
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    private func config(shim: String?) -> String {
        let cri = "plugins.\"io.containerd.grpc.v1.cri\""
        var runtimes = """
              [\(cri).containerd.runtimes.swiftlet-runc]
                runtime_type = "io.containerd.runc.v2"
                [\(cri).containerd.runtimes.swiftlet-runc.options]
                  BinaryName = "\(Runtime.binary)"
                  Root = "\(runtimeRoot)"

            """
        if shim != nil {
            runtimes += """
                  [\(cri).containerd.runtimes.swiftlet]
                    runtime_type = "io.containerd.swiftlet.v2"
                  [\(cri).containerd.runtimes.swiftlet-opts]
                    runtime_type = "io.containerd.swiftlet.v2"
                    [\(cri).containerd.runtimes.swiftlet-opts.options]
                      ConfigPath = "\(dir)/swiftlet-opts.toml"

                """
        }
        // disable_apparmor: never load a profile into the host's kernel. restrict_oom_score_adj: the
        // sandbox's default -998 needs CAP_SYS_RESOURCE, which root lacks here; clamp to containerd's own.
        return """
            version = 2
            root = "\(dir)/root"
            state = "\(dir)/state"
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            [debug]
              address = "\(dir)/debug.sock"
              level = "info"
            [\(cri)]
              sandbox_image = "\(PrivateContainerd.image)"
              stream_server_address = "127.0.0.1"
              stream_server_port = "0"
              disable_apparmor = true
              restrict_oom_score_adj = true
              [\(cri).containerd]
                snapshotter = "overlayfs"
                default_runtime_name = "swiftlet-runc"
            \(runtimes)
              [\(cri).cni]
                bin_dir = "\(dir)/cni-bin"
                conf_dir = "\(dir)/cni-conf"

            """
    }

    private func start() throws {
        let shim = PrivateContainerd.shimBinary
        let bin = dir + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        // containerd finds the shim by its name on PATH. The CRI plugin hands runc's options (BinaryName,
        // Root) only to io.containerd.runc.* shims, so our shim must find swiftlet by itself: beside its
        // own binary, else on PATH. A copy of the shim (not a link, which /proc/self/exe resolves) with
        // a `swiftlet` link beside it makes that SWIFTLET_BINARY either way.
        if let shim {
            try FileManager.default.copyItem(
                atPath: URL(fileURLWithPath: shim).resolvingSymlinksInPath().path,
                toPath: bin + "/containerd-shim-swiftlet-v2")
            try FileManager.default.createSymbolicLink(atPath: bin + "/swiftlet", withDestinationPath: Runtime.binary)
            let recorder = dir + "/recording-runtime"
            try "#!/bin/sh\necho \"$*\" >> \(recordedCalls)\nexec \(Runtime.binary) \"$@\"\n".write(
                toFile: recorder, atomically: true, encoding: .utf8)
            chmod(recorder, 0o755)
            try "BinaryName = \"\(recorder)\"\nRoot = \"\(optionsRoot)\"\n".write(
                toFile: dir + "/swiftlet-opts.toml", atomically: true, encoding: .utf8)
        }
        try config(shim: shim).write(toFile: dir + "/config.toml", atomically: true, encoding: .utf8)
        let log = dir + "/containerd.log"
        let env = ["PATH=\(bin):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        pid = try spawnDaemon(
            findExecutable("containerd") ?? "containerd", ["--config", dir + "/config.toml"],
            log: log, environment: env)
        let up = waitUntil(timeout: 60) {
            runProgram(findExecutable("ctr") ?? "ctr", ["--address", socket, "version"], timeout: 10).status == 0
                || !processAlive(pid)
        }
        guard up, processAlive(pid) else {
            throw TestSupportError("containerd did not come up:\n\(tail(log))")
        }
    }

    /// The test rootfs as an OCI image (built once per test process), imported into `namespace`.
    private func importImage() throws {
        let tarball = try PrivateContainerd.imageTarball()
        let r = runProgram(
            findExecutable("ctr") ?? "ctr",
            [
                "--address", socket, "--namespace", namespace, "image", "import",
                "--base-name", "localhost/swiftlet-cri-busybox", tarball,
            ], timeout: 120)
        guard r.status == 0 else { throw TestSupportError("ctr image import: \(r)") }
    }

    nonisolated(unsafe) private static var builtTarball: String?

    private static func imageTarball() throws -> String {
        if let t = builtTarball { return t }
        let work = try makeTempDir(prefix: "cri-image.")
        let oci = work + "/oci"
        let steps: [[String]] = [
            ["umoci", "init", "--layout", oci],
            ["umoci", "new", "--image", oci + ":latest"],
            ["umoci", "unpack", "--image", oci + ":latest", work + "/unpack"],
            ["rm", "-rf", work + "/unpack/rootfs"],
            ["cp", "-a", Runtime.rootfs, work + "/unpack/rootfs"],
            ["umoci", "repack", "--image", oci + ":latest", work + "/unpack"],
            [
                "umoci", "config", "--image", oci + ":latest", "--config.cmd", "/bin/sleep", "--config.cmd",
                pauseCommand,
                "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ],
            ["tar", "-C", oci, "-cf", work + "/image.tar", "."],
            ["rm", "-rf", work + "/unpack"],
        ]
        for s in steps {
            let r = runProgram(findExecutable(s[0]) ?? s[0], Array(s.dropFirst()), timeout: 300)
            guard r.status == 0 else { throw TestSupportError("\(s.joined(separator: " ")): \(r)") }
        }
        builtTarball = work + "/image.tar"
        return work + "/image.tar"
    }

    /// Stops containerd and removes the dir.
    func stop() {
        stopDaemon()
        removeDir()
    }

    /// Stops containerd: SIGTERM, then SIGKILL after 10 s. Its shims live on.
    func stopDaemon() {
        if pid > 0 {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            if !waitUntil(timeout: 10, { waitpid(pid, &status, WNOHANG) == pid }) {
                kill(pid, SIGKILL)
                _ = waitUntil(timeout: 10) { waitpid(pid, &status, WNOHANG) == pid }
            }
            pid = 0
        }
    }

    /// Unmounts what is still mounted below the dir (only after a failure) and removes it.
    func removeDir() {
        let mounts = mountsBelow(dir).sorted(by: >)
        for m in mounts { umount2(m, Int32(MNT_DETACH)) }
        removeTreeIfUnmounted(dir)
    }

    /// The log's last lines, for failure messages.
    func logTail(_ n: Int = 30) -> String { tail(dir + "/containerd.log", n) }

    private func tail(_ path: String, _ n: Int = 30) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(n).joined(separator: "\n")
    }
}

/// Mount points at or below `path` (field 5 of /proc/self/mountinfo).
func mountsBelow(_ path: String) -> [String] {
    mountsContaining(path).compactMap { line in
        let f = line.split(separator: " ")
        guard f.count > 4 else { return nil }
        let mp = String(f[4])
        return mp == path || mp.hasPrefix(path + "/") ? mp : nil
    }
}

/// Live (not zombie) processes whose command line contains `s`.
func processesWithCommandLine(containing s: String) -> [Int32] {
    let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
    return pids.filter { pid in
        guard pid != getpid(), let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else {
            return false
        }
        return String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(s) && processAlive(pid)
    }
}

/// Live processes whose /proc/PID/cgroup names a path containing `s`.
func processesInCgroup(containing s: String) -> [Int32] {
    let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
    return pids.filter { pid in
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return false }
        return text.contains(s) && processAlive(pid)
    }
}

/// `PATH` lookup of a tool.
func findExecutable(_ name: String) -> String? {
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    where access(d + "/" + name, X_OK) == 0 {
        return d + "/" + name
    }
    return nil
}

/// Starts a daemon in a session of its own, stdin /dev/null, stdout and stderr appended to `log`.
func spawnDaemon(_ path: String, _ args: [String], log: String, environment: [String]) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attr, &none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigdefault(&attr, &all)
    let setsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc >= 2.26), which Swift's Glibc module lacks
    posix_spawnattr_setflags(&attr, Int16(setsid | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))
    let argv = ([path] + args).map { strdup($0) } + [nil]
    let envp = environment.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
    guard rc == 0 else { throw TestSupportError("posix_spawn \(path): \(String(cString: strerror(rc)))") }
    return pid
}
