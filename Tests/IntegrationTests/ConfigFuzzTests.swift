import Foundation
import TestSupport
import XCTest

/// Randomised configs (issue 7): the parser, decoder and validator never trap (run in a child process,
/// `oci-fuzz`, so a trap is a test failure that names the case instead of killing the test run), and
/// `swiftlet create` on structurally mutated configs either works or fails with an error: never a
/// crash (also not in the container's init), never leftovers. Seeded with the default config and the
/// hostile corpus. SWIFTLET_FUZZ_SEED and SWIFTLET_FUZZ_ITERATIONS change the seed and the length.
final class ConfigFuzzTests: ContainerTestCase {
    var seed: String { ProcessInfo.processInfo.environment["SWIFTLET_FUZZ_SEED"] ?? "7" }

    /// oci-fuzz, built next to the test bundle (IntegrationTests depends on it).
    var fuzzer: String {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("oci-fuzz").path
        return FileManager.default.isExecutableFile(atPath: besideTests)
            ? besideTests : Runtime.repoRoot + "/.build/debug/oci-fuzz"
    }

    /// The default config and every hostile one, as files.
    func corpusFiles() throws -> [String] {
        let dir = try makeTempDir(prefix: "swiftlet-fuzz-corpus.")
        // A valid config that uses more of the spec, so that mutations reach deeper.
        var rich = defaultConfig()
        rich[path: "linux.devices"] = [
            ["type": "c", "path": "/dev/fuzz0", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0]
        ]
        rich[path: "linux.resources"] = [
            "memory": ["limit": 67_108_864], "pids": ["limit": 100], "cpu": ["shares": 512],
        ]
        rich[path: "process.oomScoreAdj"] = 0
        rich[path: "process.ioPriority"] = ["class": "IOPRIO_CLASS_BE", "priority": 4]
        rich[path: "process.user"] = ["uid": 1000, "gid": 1000, "additionalGids": [5, 6]]
        rich["mounts"] =
            (rich["mounts"] as? [[String: Any]] ?? []) + [
                ["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "nosuid"]]
            ]
        var configs = [defaultConfig(), rich]
        for (_, edit) in HostileConfigs.corpus {
            var c = defaultConfig()
            edit(&c)
            configs.append(c)
        }
        return try configs.enumerated().map { i, c in
            let path = "\(dir)/\(i).json"
            try JSONSerialization.data(withJSONObject: c, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    func testParserDecoderValidatorNeverTrap() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: fuzzer), "no oci-fuzz at \(fuzzer)")
        let iterations = ProcessInfo.processInfo.environment["SWIFTLET_FUZZ_ITERATIONS"] ?? "8000"
        let files = try corpusFiles()
        let r = runProgram(fuzzer, ["--seed", seed, "--iterations", iterations] + files, timeout: 120)
        let lines = r.stdout.split(separator: "\n")
        if r.status != 0 {
            let last = lines.last { $0.hasPrefix("case ") }.map { String($0.dropFirst(5)) } ?? "?"
            let input = runProgram(fuzzer, ["--seed", seed, "--dump", last] + files)
            let saved = FileManager.default.temporaryDirectory.appendingPathComponent(
                "oci-fuzz-crash-seed\(seed)-case\(last).json"
            ).path
            try? input.stdout.write(toFile: saved, atomically: true, encoding: .utf8)
            XCTFail(
                "oci-fuzz died (status \(r.status)) on case \(last) (seed \(seed)), input saved to \(saved): "
                    + "\(r.stderr.prefix(2000))"
            )
            return
        }
        let done = lines.last.map { $0.split(separator: " ") } ?? []
        XCTAssertEqual(done.first, "done", r.stdout.suffix(200).description)
        // The mutations must reach past the parser: some decode, some validate.
        XCTAssertTrue(done.count == 4 && done[1...].allSatisfy { (Int($0) ?? 0) > 0 }, "parsed/decoded/valid: \(done)")
    }

    /// Without a mount namespace the container's mounts happen in the host's namespace (as with runc)
    /// and stay on the rootfs: mutated configs always get one. Mutated mounts and /dev make the runtime
    /// create mount points and device nodes in the rootfs: the shared one is replaced by `rootfs`.
    /// False when the config cannot be checked (Foundation refuses some JSON the runtime accepts, e.g.
    /// 1E400): not run then.
    func keepMountNamespace(_ bundle: String, rootfs: String) throws -> Bool {
        let url = URL(fileURLWithPath: bundle + "/config.json")
        guard let data = try? Data(contentsOf: url),
            var config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return false }
        var linux = config["linux"] as? [String: Any] ?? [:]
        var namespaces = linux["namespaces"] as? [[String: Any]] ?? []
        namespaces.removeAll { ($0["type"] as? String) == "mount" }
        namespaces.append(["type": "mount"])
        linux["namespaces"] = namespaces
        config["linux"] = linux
        if var root = config["root"] as? [String: Any], root["path"] as? String == Runtime.rootfs {
            root["path"] = rootfs
            config["root"] = root
        }
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        return true
    }

    func testCreateOnMutatedConfigs() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: fuzzer), "no oci-fuzz at \(fuzzer)")
        let count = 150
        let dir = try makeTempDir(prefix: "swiftlet-fuzz-bundles.")
        let files = try corpusFiles()
        let emit = runProgram(
            fuzzer,
            ["--seed", seed, "--emit", dir, "--count", String(count)] + Array(files.prefix(2)) + Array(files.prefix(2))
                + files)
        XCTAssertEqual(emit.status, 0, emit.description)
        var worked = 0
        var refused = 0
        let rootfs = try privateRootfs()
        for i in 0..<count {
            let bundle = "\(dir)/\(i)"
            guard FileManager.default.fileExists(atPath: bundle + "/config.json") else { break }
            guard try keepMountNamespace(bundle, rootfs: rootfs) else { continue }
            let id = "fuzz\(i)"
            let r = sl(["create", "--bundle", bundle, id], timeout: 20)
            XCTAssertTrue(r.status == 0 || r.status == 1, "case \(i) (\(bundle)): \(r)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), "case \(i) (\(bundle)) trapped: \(r.stderr.prefix(1500))")
            if r.status == 0 { worked += 1 } else { refused += 1 }
            let d = sl(["delete", "--force", id])
            XCTAssertEqual(d.status, 0, "case \(i): \(d.stderr)")
            assertNothingLeft(id, bundle: bundle)
            XCTAssertEqual(mountsContaining(rootfs), [], "case \(i): host mounts on the rootfs")
        }
        XCTAssertGreaterThan(worked, 0, "some mutated configs are still valid")
        XCTAssertGreaterThan(refused, 0, "some mutated configs are refused")
    }
}
