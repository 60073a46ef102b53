import CLinux
import Foundation
import Glibc
import TestSupport
import XCTest

/// What runc's clients read from its output: the default spec, key order of `state` and
/// `list --format json`, `--debug` lines, device access strings, `features`.
final class RuncOutputTests: ContainerTestCase {
    /// Swiftlet-specific assertions are skipped when the tests run against runc or crun.

    /// `spec` adds a cgroup namespace only when /sys/fs/cgroup is cgroup2 (runc's unified-mode test).
    func testSpecHasCgroupNamespaceOnlyOnUnifiedHost() throws {
        let dir = try makeTempDir(prefix: "swiftlet-spec.")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(sl(["spec", "--bundle", dir]).status, 0)
        let spec = try readConfig(bundle: dir)
        let types = ((spec["linux"] as? [String: Any])?["namespaces"] as? [[String: Any]] ?? []).compactMap {
            $0["type"] as? String
        }
        let unified = sl_statfs_type("/sys/fs/cgroup") == 0x6367_7270  // CGROUP2_SUPER_MAGIC
        XCTAssertEqual(types.contains("cgroup"), unified, "\(types)")
        XCTAssertEqual(Set(types).count, types.count, "no duplicate namespace: \(types)")
    }

    /// The keys of the JSON object(s) at `depth` (1: a top-level object, 2: objects in an array), in
    /// the order the text has them.
    func keys(_ json: String, depth target: Int) -> [String] {
        var keys: [String] = []
        var depth = 0
        var inString = false
        var escaped = false
        var current = ""
        var lastString = ""
        var firstObjectDone = false
        for ch in json {
            if inString {
                if escaped {
                    escaped = false
                    current.append(ch)
                } else if ch == "\\" {
                    escaped = true
                } else if ch == "\"" {
                    inString = false
                    lastString = current
                } else {
                    current.append(ch)
                }
                continue
            }
            switch ch {
            case "\"":
                inString = true
                current = ""
            case "{", "[": depth += 1
            case "}", "]":
                if depth == target && ch == "}" { firstObjectDone = true }
                depth -= 1
            case ":": if depth == target && !firstObjectDone { keys.append(lastString) }
            default: break
            }
        }
        return keys
    }

    /// `state` and `list --format json` print their keys in runc's order (ociVersion, id, pid,
    /// status, bundle, rootfs, created, annotations, owner); checked against runc 1.1.5's real
    /// output on the same bundle when it is installed.
    func testStateAndListKeysInRuncOrder() throws {
        let b = try bundle { spec in
            ContainerTestCase.args(["sleep", "100"])(&spec)
            spec["annotations"] = ["org.example.key": "value"]
        }
        let want = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner"]
        let id = "keys\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(sl(["create", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let state = sl(["state", id])
        XCTAssertEqual(state.status, 0, state.stderr)
        XCTAssertEqual(keys(state.stdout, depth: 1), want, state.stdout)
        let list = sl(["list", "--format", "json"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertEqual(keys(list.stdout, depth: 2), want, list.stdout)

        // The anchor: runc's own output for the same bundle.
        let runc = "/usr/sbin/runc"
        guard FileManager.default.isExecutableFile(atPath: runc) else { return }
        let runcRoot = try makeTempDir(prefix: "swiftlet-runc-root.")
        defer { try? FileManager.default.removeItem(atPath: runcRoot) }
        let runcID = "rk\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(runProgram(runc, ["--root", runcRoot, "create", "--bundle", b, runcID]).status, 0)
        defer { _ = runProgram(runc, ["--root", runcRoot, "delete", "-f", runcID]) }
        let runcState = runProgram(runc, ["--root", runcRoot, "state", runcID])
        XCTAssertEqual(keys(runcState.stdout, depth: 1), want, "runc state: " + runcState.stdout)
        let runcList = runProgram(runc, ["--root", runcRoot, "list", "--format", "json"])
        XCTAssertEqual(keys(runcList.stdout, depth: 2), want, "runc list: " + runcList.stdout)
    }

    /// With no container, `list -q` prints nothing (not an empty line) and `list --format json`
    /// prints `null`, as runc 1.1 and 1.3 do (crun prints `[]`); an unknown format fails unless -q.
    func testListOfNothing() throws {
        XCTAssertEqual(sl(["list", "-q"]).stdout, "")
        let json = sl(["list", "--format", "json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        XCTAssertEqual(json.stdout, isCrun ? "[]" : "null\n")
        XCTAssertTrue(sl(["list"]).stdout.hasPrefix("ID "))
        let yaml = sl(["list", "--format", "yaml"])
        XCTAssertEqual(yaml.status, 1)
        XCTAssertTrue(yaml.stderr.contains("invalid format option"), yaml.stderr)
        XCTAssertEqual(sl(["list", "-q", "--format", "yaml"]).status, 0, "-q prints ids whatever the format")
    }

    /// A failed `create` or `run` names itself (`runc create failed: ...`, swiftlet's with its own
    /// name), every `exec` error starts `exec failed: `; other verbs print the error alone. runc 1.1
    /// and 1.3 word them so.
    func testFailedVerbsNameThemselves() throws {
        let name = isSwiftlet ? "swiftlet" : isRunc ? "runc" : runtimeName
        let b = try bundle(ContainerTestCase.args(["sleep", "100"]))
        let id = "pfx\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(sl(["create", "--bundle", b, id]).status, 0)
        defer { sl(["delete", "-f", id]) }
        let again = sl(["create", "--bundle", b, id])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(
            again.stderr.contains("\(name) create failed: container with given ID already exists"), again.stderr)
        let run = sl(["run", "--bundle", b, id])
        XCTAssertTrue(run.stderr.contains("\(name) run failed: container with given ID already exists"), run.stderr)
        let exec = sl(["exec", "no-such-\(id)", "true"])
        XCTAssertEqual(exec.status, 255)
        XCTAssertTrue(exec.stderr.contains("exec failed: container does not exist"), exec.stderr)
        let delete = sl(["delete", "no-such-\(id)"])
        XCTAssertTrue(delete.stderr.contains("container does not exist"), delete.stderr)
        XCTAssertFalse(delete.stderr.contains("failed"), delete.stderr)
    }

    /// `--debug` without `--log`: debug lines on stderr in logrus' text format.
    func testDebugLinesInLogrusTextFormat() throws {
        let b = try bundle(ContainerTestCase.args(["true"]))
        let r = sl(["--debug", "run", "--bundle", b, "dbg\(UInt32.random(in: 0...UInt32.max))"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n").map(String.init).filter { $0.contains("debug") }
        XCTAssertFalse(lines.isEmpty, r.stderr)
        let pattern = try NSRegularExpression(
            pattern: #"^time="\d{4}-\d\d-\d\dT[0-9:.]+Z" level=debug msg=("([^"\\]|\\.)*"|[A-Za-z0-9._/@^+-]+)( |$)"#)
        for line in lines {
            XCTAssertNotNil(pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)), line)
        }
    }

    /// Device rules with access letters other than r, w, m: the unknown letters are ignored (with a
    /// warning from swiftlet) instead of failing the container, as runc does.
    func testDeviceAccessWithUnknownLettersIsIgnored() throws {
        let r = try run(["sh", "-c", "head -c 3 /dev/zero | od -An -c"]) { spec in
            var linux = spec[dict: "linux"]
            var resources = linux[dict: "resources"]
            resources["devices"] = [
                ["allow": false, "access": "rwm"],
                ["allow": true, "type": "c", "major": 1, "minor": 5, "access": "rx"],
                ["allow": false, "type": "c", "major": 1, "minor": 7, "access": "wq"],
            ]
            linux["resources"] = resources
            spec["linux"] = linux
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("\\0  \\0  \\0"), r.stdout + r.stderr)
        if isSwiftlet {
            XCTAssertTrue(
                r.stderr.contains("linux.resources.devices[1].access: ignoring unknown access \"x\""), r.stderr)
            XCTAssertTrue(
                r.stderr.contains("linux.resources.devices[2].access: ignoring unknown access \"q\""), r.stderr)
        }
    }

    /// `features` lists idmap and ridmap among the mount options (runtime-spec features.md: every
    /// recognised option). runc lists them only under linux.mountExtensions: a deliberate difference.
    func testFeaturesListIdmapMountOptions() throws {
        let f = sl(["features"])
        XCTAssertEqual(f.status, 0, f.stderr)
        let features = try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any]
        let options = Set(features?["mountOptions"] as? [String] ?? [])
        XCTAssertTrue(options.isSuperset(of: ["rbind", "ro", "rro", "private"]), "\(options)")
        if isSwiftlet { XCTAssertTrue(options.isSuperset(of: ["idmap", "ridmap"]), "\(options)") }
    }
}
