import Checkpoint
import Foundation
import Glibc
import TestSupport
import XCTest

@testable import MonitorCore

/// The shim's Create options (containerd.runc.v1.Options, runtimeoptions.v1.Options and its TOML file,
/// ctr's CreateOptions) and its stdio URIs, against messages built by hand from the .proto field numbers.
final class ShimOptionsTests: XCTestCase {
    private func any(_ type: String, _ build: (inout ProtoWriter) -> Void) -> AnyMessage {
        var w = ProtoWriter()
        build(&w)
        return AnyMessage(typeURL: type, value: w.bytes)
    }

    private func message(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return (error as? RPCError)?.message ?? "\(error)"
        }
    }

    func testNoOptionsAreTheDefaults() throws {
        XCTAssertEqual(try ShimOptions.decode(nil), RuntimeOptions())
        XCTAssertEqual(try ShimOptions.decode(AnyMessage(typeURL: "", value: [])), RuntimeOptions())
        let r = ShimRuntime(binary: "/b/swiftlet", root: "/run/x").with(RuntimeOptions(), namespace: "k8s.io")
        XCTAssertEqual(r, ShimRuntime(binary: "/b/swiftlet", root: "/run/x"))
        XCTAssertEqual(r.createFlags, [])
    }

    func testRuncOptionsEveryField() throws {
        let a = any("containerd.runc.v1.Options") {
            $0.bool(1, true)
            $0.bool(2, true)
            $0.string(3, "/shim.slice")
            $0.uint32(4, 1000)
            $0.uint32(5, 1001)
            $0.string(6, "/usr/sbin/runc")
            $0.string(7, "/run/r")
            $0.string(8, "/usr/sbin/criu")
            $0.bool(9, true)
            $0.string(10, "/img")
            $0.string(11, "/work")
        }
        var want = RuntimeOptions(
            binaryName: "/usr/sbin/runc", root: "/run/r", criuPath: "/usr/sbin/criu", systemdCgroup: true)
        want.noPivotRoot = true
        want.noNewKeyring = true
        want.shimCgroup = "/shim.slice"
        want.ioUID = 1000
        want.ioGID = 1001
        want.criuImagePath = "/img"
        want.criuWorkPath = "/work"
        let o = try ShimOptions.decode(a)
        XCTAssertEqual(o, want)
        // The type URL as typeurl.MarshalAny writes it for a registered proto, or with a prefix.
        XCTAssertEqual(
            try ShimOptions.decode(AnyMessage(typeURL: "types.example/containerd.runc.v1.Options", value: a.value)),
            want)
        let r = ShimRuntime(binary: "swiftlet", root: "/run/x").with(o, namespace: "k8s.io")
        XCTAssertEqual(r.createFlags, ["--no-pivot", "--no-new-keyring"])
        XCTAssertEqual(
            r.command(["create", "id"], bundle: "/b"),
            [
                "/usr/sbin/runc", "--root", "/run/r/k8s.io", "--log", "/b/log.json", "--log-format", "json",
                "--systemd-cgroup", "--criu", "/usr/sbin/criu", "create", "id",
            ])
        XCTAssertEqual(ShimOptions.ignored(o).count, 3, "\(ShimOptions.ignored(o))")
    }

    func testCtrCreateOptions() throws {
        let o = try ShimOptions.decode(
            any("containerd.linux.runc.CreateOptions") {
                $0.bool(1, true)
                $0.bool(8, true)
                $0.string(12, "/w")
            })
        XCTAssertTrue(o.noPivotRoot)
        XCTAssertTrue(o.noNewKeyring)
        XCTAssertEqual(o.criuWorkPath, "/w")
    }

    func testRuntimeOptionsConfigFileAndBody() throws {
        let dir = try makeTempDir(prefix: "shimopts.")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/swiftlet.toml"
        try """
        # the swiftlet handler
        BinaryName = "/opt/bin/swiftlet"   # a comment
        Root = '/run/swiftlet-k8s'
        SystemdCgroup = true

        "NoPivotRoot" = false
        IoUid = 1_000
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try ShimOptions.decode(any("runtimeoptions.v1.Options") { $0.string(2, file) })
        var want = RuntimeOptions(binaryName: "/opt/bin/swiftlet", root: "/run/swiftlet-k8s", systemdCgroup: true)
        want.ioUID = 1000
        XCTAssertEqual(fromFile, want)
        let fromBody = try ShimOptions.decode(
            any("runtimeoptions.v1.Options") {
                $0.string(1, "io.containerd.runc.v1.Options")
                $0.string(2, "/not/read/when/a/body/is/given")
                $0.string(3, "binaryname = \"/x\\u0041\"\r\nsystemdcgroup = false\n")
            })
        XCTAssertEqual(fromBody, RuntimeOptions(binaryName: "/xA"))
        XCTAssertEqual(try ShimOptions.decode(any("runtimeoptions.v1.Options") { _ in }), RuntimeOptions())
    }

    func testBadOptionsNameTheTypeFileLineAndKey() throws {
        XCTAssertEqual(
            message { try ShimOptions.decode(AnyMessage(typeURL: "io.containerd.runsc.v1.options", value: [])) },
            "runtime options: unknown type io.containerd.runsc.v1.options (expected containerd.runc.v1.Options, "
                + "runtimeoptions.v1.Options or containerd.linux.runc.CreateOptions)")
        XCTAssertTrue(
            message { try ShimOptions.decode(AnyMessage(typeURL: "containerd.runc.v1.Options", value: [0x0a, 9])) }
                .hasPrefix("runtime options (containerd.runc.v1.Options): "))
        let missing = message {
            try ShimOptions.decode(self.any("runtimeoptions.v1.Options") { $0.string(2, "/nonexistent/swiftlet.toml") })
        }
        XCTAssertTrue(missing.contains("ConfigPath") && missing.contains("/nonexistent/swiftlet.toml"), missing)
        XCTAssertTrue(missing.contains("No such file or directory"), missing)
        XCTAssertEqual(
            message { try ShimOptions.fromConfig(typeURL: "io.containerd.runsc.v1.options", path: "", body: "") },
            "runtime options: TypeUrl io.containerd.runsc.v1.options is not supported (use containerd.runc.v1.Options or none)"
        )

        let cases: [(String, String)] = [
            ("Root = \"/r\"\nBinaryNmae = \"/b\"\n", "f.toml line 2: key BinaryNmae: unknown (BinaryName, Root"),
            ("SystemdCgroup = \"yes\"", "f.toml line 1: key SystemdCgroup: expected true or false"),
            ("BinaryName = true", "f.toml line 1: key BinaryName: expected a string"),
            ("IoUid = -1", "f.toml line 1: key IoUid: -1 is not a uint32"),
            ("\n\nRoot = \"/a\"\nroot = \"/b\"", "f.toml line 4: key root: given twice"),
            ("[runsc_config]", "f.toml line 1: tables are not supported"),
            ("Root = \"/a", "f.toml line 1: key Root: unterminated string"),
            ("Root = \"\"\"\n/a\"\"\"", "f.toml line 1: key Root: multi-line strings are not supported"),
            ("Root = [\"/a\"]", "f.toml line 1: key Root: unsupported value [\"/a\"]"),
            ("Root = \"/a\" x", "f.toml line 1: key Root: text after the value"),
            ("Root \"/a\"", "f.toml line 1: key Root: expected '=' after the key"),
            ("Root = \"\\q\"", "f.toml line 1: key Root: unknown escape \\q"),
            ("a.b = 1", "f.toml line 1: dotted keys are not supported"),
            ("IoGid = 012", "f.toml line 1: key IoGid: unsupported value 012"),
            ("Root =", "f.toml line 1: key Root: a value is missing"),
        ]
        for (text, want) in cases {
            let got = message { try ShimOptions.fromTOML(text, file: "f.toml") }
            XCTAssertTrue(got.hasPrefix("runtime options: " + want), "\(text): \(got)")
        }
    }

    func testMissingBinaryIsTheCreateError() {
        let r = ShimRuntime(binary: "/nonexistent/runtime", root: "/run/x")
        XCTAssertEqual(
            message { try r.resolvedBinary() },
            "runtime options: BinaryName /nonexistent/runtime: No such file or directory")
        XCTAssertEqual(
            message { try ShimRuntime(binary: "no-such-runtime-\(getpid())", root: "").resolvedBinary() },
            "runtime options: BinaryName no-such-runtime-\(getpid()): not found in $PATH")
        XCTAssertEqual(try ShimRuntime(binary: "/bin/sh", root: "").resolvedBinary(), "/bin/sh")
    }

    func testLogURIs() {
        XCTAssertNil(LogURI("/run/containerd/fifo/123/id-stdout"))
        XCTAssertNil(LogURI(""))
        let b = LogURI("binary:///usr/local/bin/my%20logger?-f=%2Fvar%2Flog&mode=a+b&-f=second&flag#frag")
        XCTAssertEqual(b?.scheme, "binary")
        XCTAssertEqual(b?.path, "/usr/local/bin/my logger")
        XCTAssertEqual(b?.query.map { [$0.key, $0.value] }, [["-f", "/var/log"], ["mode", "a b"], ["flag", ""]])
        XCTAssertEqual(LogURI("file:///tmp/dir/out.log")?.path, "/tmp/dir/out.log")
        XCTAssertEqual(LogURI("FILE://host/tmp/x")?.scheme, "file")
        XCTAssertEqual(LogURI("file://host/tmp/x")?.path, "/tmp/x")
        XCTAssertEqual(LogURI("binary:/bin/logger")?.path, "/bin/logger")
        XCTAssertEqual(LogURI("x%:y")?.path, nil)
    }
}
