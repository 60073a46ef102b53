import Foundation
import TestSupport
import XCTest

/// ShimTests (same private containerd) for the Create options, the log URIs and rootfs of several
/// mounts: what the shim is told by containerd rather than what it does with the task.
extension ShimTests {
    /// A runtime that records each call's arguments (one line each) in `log`, then runs SWIFTLET_BINARY.
    func recordingRuntime(_ name: String) throws -> (binary: String, log: String) {
        let binary = Self.dir + "/" + name
        let log = binary + ".calls"
        try "#!/bin/sh\necho \"$*\" >> \(log)\nexec \(Runtime.binary) \"$@\"\n".write(
            toFile: binary, atomically: true, encoding: .utf8)
        chmod(binary, 0o755)
        return (binary, log)
    }

    func mountNS(_ pid: String) -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")) ?? "?"
    }

    func writeFile(_ text: String, _ path: String, mode: mode_t = 0o644) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode)
    }

    /// `ctr run --runtime-config-path F` (runtimeoptions.v1.Options, as CRI passes a handler's
    /// ConfigPath): the TOML file's BinaryName and Root are what the shim runs, for every call of the
    /// container's life. Bad files, a bad binary: the Create's error names them, and nothing is left.
    func testRuntimeConfigPathNamesBinaryAndRoot() throws {
        let (binary, calls) = try recordingRuntime("recording-runtime")
        let root = Self.dir + "/rt-opts"
        let config = Self.dir + "/swiftlet-opts.toml"
        try writeFile("# swiftlet under our shim\nBinaryName = \"\(binary)\"\nRoot = '\(root)'\n", config)
        let c = id("opts")
        let r = run(c, ["sh", "-c", "echo honoured; exit 4"], flags: ["--rm", "--runtime-config-path", config])
        XCTAssertEqual(r.status, 4, "\(r)\n\(Self.log())")
        XCTAssertEqual(r.stdout, "honoured\n")
        let lines = ((try? String(contentsOfFile: calls, encoding: .utf8)) ?? "").split(separator: "\n")
        for verb in ["create", "start", "delete"] {
            XCTAssertTrue(lines.contains { $0.contains(" \(verb) ") && $0.hasSuffix(c) }, "\(verb) of \(c): \(lines)")
        }
        // The runc shim's rule: Root + "/" + namespace.
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("--root \(root)/\(Self.namespace) ") }, "\(lines)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/\(Self.namespace)"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(root)/\(Self.namespace)/\(c)"), "state of \(c) left")
        assertGone(c)

        let bad: [(String, String, String)] = [
            ("missing", Self.dir + "/no-such-options.toml", "no-such-options.toml"),
            ("typo", "BinaryNmae = \"\(binary)\"\n", "line 1: key BinaryNmae: unknown"),
            ("table", "Root = \"/r\"\n[runsc_config]\n", "line 2: tables are not supported"),
            ("nobinary", "BinaryName = \"\(Self.dir)/no-such-runtime\"\n", "BinaryName \(Self.dir)/no-such-runtime"),
        ]
        for (name, text, want) in bad {
            var path = text
            if name != "missing" {
                path = Self.dir + "/bad-\(name).toml"
                try writeFile(text, path)
            }
            let b = id("bad\(name)")
            let br = run(b, ["true"], flags: ["--rm", "--runtime-config-path", path])
            XCTAssertNotEqual(br.status, 0, "\(name): \(br)")
            XCTAssertTrue(br.stderr.contains(want), "\(name): \(br.stderr)")
            _ = ctr(["container", "rm", b])
            assertGone(b)
        }
    }

    /// `ctr run --log-uri binary:///path?k=v`: the logging binary gets the stdout and stderr as fds 3
    /// and 4, signals ready on fd 5, has CONTAINER_ID and CONTAINER_NAMESPACE (and not the shim's
    /// environment) and the query as arguments. `file:///path`: both outputs appended to the file,
    /// its directory made. A logger that cannot run, or never signals ready, fails the Create.
    func testLogURIs() throws {
        let out = Self.dir + "/binary-log-\(UUID().uuidString.prefix(6))"
        let logger = Self.dir + "/logger.sh"
        try writeFile(
            """
            #!/bin/sh
            /usr/bin/env > "$2.env"
            echo "$*" > "$2.args"
            ls -l /proc/$$/fd > "$2.fds"
            printf r >&5
            exec 5>&-
            /bin/cat <&3 > "$2.stdout" &
            /bin/cat <&4 > "$2.stderr" &
            wait
            echo done > "$2.done"

            """, logger, mode: 0o755)
        let c = id("blog")
        let uri = "binary://\(logger)?-out=\(out)&mode=x+y"
        let r = run(c, ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], flags: ["--rm", "--log-uri", uri])
        XCTAssertEqual(r.status, 3, "\(r)\n\(Self.log())")
        XCTAssertEqual(r.stdout, "", "the output went to the logger")
        XCTAssertTrue(waitUntil(timeout: 20) { FileManager.default.fileExists(atPath: out + ".done") })
        func read(_ suffix: String) -> String { (try? String(contentsOfFile: out + suffix, encoding: .utf8)) ?? "" }
        XCTAssertEqual(read(".stdout"), "to-out\n")
        XCTAssertEqual(read(".stderr"), "to-err\n")
        XCTAssertEqual(read(".args"), "-out \(out) mode x y\n")
        let env = read(".env").split(separator: "\n")
        XCTAssertTrue(env.contains("CONTAINER_ID=\(c)"), "\(env)")
        XCTAssertTrue(env.contains("CONTAINER_NAMESPACE=\(Self.namespace)"), "\(env)")
        XCTAssertFalse(env.contains { $0.hasPrefix("TTRPC_ADDRESS=") }, "the shim's environment leaked: \(env)")
        // Not the shim's ttrpc socket (its fd 3 from `start`) nor any other socket of the shim.
        XCTAssertFalse(read(".fds").contains("socket:"), "a socket of the shim leaked: \(read(".fds"))")
        assertGone(c)

        let f = id("flog")
        let file = Self.dir + "/file-logs/\(f)/out.log"
        let fr = run(
            f, ["sh", "-c", "echo line-out; echo line-err >&2"], flags: ["--rm", "--log-uri", "file://" + file])
        XCTAssertEqual(fr.status, 0, "\(fr)")
        let logged = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        XCTAssertEqual(logged.split(separator: "\n").sorted(), ["line-err", "line-out"], logged)
        assertGone(f)

        let missing = id("nolog")
        let mr = run(missing, ["true"], flags: ["--rm", "--log-uri", "binary://\(Self.dir)/no-such-logger"])
        XCTAssertNotEqual(mr.status, 0)
        XCTAssertTrue(mr.stderr.contains("\(Self.dir)/no-such-logger"), mr.stderr)
        _ = ctr(["container", "rm", missing])
        assertGone(missing)

        // Holds fd 5 open without writing: the shim gives up after its bound and kills it.
        let mark = "600.\(Int.random(in: 100_000...999_999))"
        let silent = Self.dir + "/silent-logger.sh"
        try writeFile("#!/bin/sh\nexec /bin/sleep \(mark)\n", silent, mode: 0o755)
        let s = id("silent")
        let sr = run(s, ["true"], flags: ["--rm", "--log-uri", "binary://" + silent])
        XCTAssertNotEqual(sr.status, 0)
        XCTAssertTrue(sr.stderr.contains("ready signal"), sr.stderr)
        XCTAssertEqual(processesWithCommandLine(containing: "sleep \(mark)"), [], "the silent logger was killed")
        _ = ctr(["container", "rm", s])
        assertGone(s)
    }

    /// A Create whose rootfs is two mounts, sent on a ttrpc connection of the test's own (ctr's
    /// snapshotters give one): a read-only bind of the test rootfs, then an overlay on top of it
    /// with a file of its own; the container sees the overlay (the mounts went on in order). Delete
    /// unmounts both. A Create whose second mount fails unmounts the first and reports which failed.
    func testRootfsOfTwoMounts() throws {
        let host = id("mmhost")
        XCTAssertEqual(run(host, ["sleep", "300"], flags: ["-d"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 20) { self.taskStatus(host) == "RUNNING" })
        let fd = try shimConnection(host)
        defer { close(fd) }
        var stream: UInt32 = 1
        func call(_ method: String, _ payload: [UInt8]) -> (code: Int, payload: [UInt8])? {
            let f = Self.frame(stream, method, payload)
            stream += 2
            XCTAssertEqual(f.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }, f.count)
            return readResponse(fd)
        }
        let hostBundle = "\(Self.dir)/state/io.containerd.runtime.v2.task/\(Self.namespace)/\(host)"
        let c = id("twomounts")
        let work = try makeTempDir(prefix: "sl-mm.")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let bundle = work + "/bundle"
        for d in [bundle + "/rootfs", work + "/upper", work + "/work"] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        try writeFile("top layer\n", work + "/upper/layer")
        var spec = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: hostBundle + "/config.json")))
                as? [String: Any])
        var process = spec["process"] as? [String: Any] ?? [:]
        process["args"] = ["cat", "/layer"]
        spec["process"] = process
        var linux = spec["linux"] as? [String: Any] ?? [:]
        linux["cgroupsPath"] = "/\(Self.namespace)/\(c)"
        spec["linux"] = linux
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: bundle + "/config.json"))

        func mount(_ type: String, _ source: String, _ options: [String]) -> [UInt8] {
            Self.pbBytes(
                3, Self.pbString(1, type) + Self.pbString(2, source) + options.flatMap { Self.pbString(4, $0) })
        }
        let lower = mount("bind", Runtime.rootfs, ["rbind", "ro"])
        let overlay = mount(
            "overlay", "overlay", ["lowerdir=\(bundle)/rootfs", "upperdir=\(work)/upper", "workdir=\(work)/work"])
        let output = work + "/out.log"
        func create(_ id: String, _ rootfs: [UInt8]) -> (code: Int, payload: [UInt8])? {
            call(
                "Create",
                Self.pbString(1, id) + Self.pbString(2, bundle) + rootfs + Self.pbString(6, "file://" + output))
        }

        // The second mount fails: the first is unmounted again, the error says which one.
        let bogus = "nosuchfs-\(UUID().uuidString.prefix(6))"
        let failed = create(c, lower + mount(bogus, "none", []))
        XCTAssertNotEqual(failed?.code ?? 0, 0)
        XCTAssertEqual(mountsBelow(bundle), [], "rootfs mounts left after a failed Create")
        // The shim logs the error; containerd copies its log into containerd.log.
        let logged = "rootfs mount 2 of 2: mount \(bogus) none on \(bundle)/rootfs"
        XCTAssertTrue(
            waitUntil(timeout: 20) {
                ((try? String(contentsOfFile: Self.dir + "/containerd.log", encoding: .utf8)) ?? "").contains(logged)
            }, Self.log())

        let created = create(c, lower + overlay)
        XCTAssertEqual(created?.code, 0, "\(String(describing: created))\n\(Self.log())")
        // mountinfo read while other mounts change can miss lines: a second look settles it.
        XCTAssertTrue(
            waitUntil(timeout: 10) { mountsContaining(bundle + "/rootfs ").count == 2 },
            "both layers on \(bundle)/rootfs: \(mountsContaining(bundle)); mount namespaces: test \(mountNS("self")), "
                + "shims \(shimPids().map { mountNS(String($0)) })")
        XCTAssertEqual(call("Start", Self.pbString(1, c))?.code, 0)
        XCTAssertEqual(call("Wait", Self.pbString(1, c))?.code, 0)
        XCTAssertEqual(try? String(contentsOfFile: output, encoding: .utf8), "top layer\n", "the overlay is on top")
        XCTAssertEqual(call("Delete", Self.pbString(1, c))?.code, 0)
        XCTAssertEqual(mountsBelow(bundle), [], "rootfs mounts left after Delete")
        XCTAssertEqual(cgroupDirs(c), [], "cgroups left")

        XCTAssertEqual(ctr(["task", "kill", "-s", "KILL", host]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 20) { self.taskStatus(host) == "STOPPED" })
        XCTAssertEqual(ctr(["task", "rm", host]).status, 0)
        XCTAssertEqual(ctr(["container", "rm", host]).status, 0)
        assertGone(host)
    }
}
