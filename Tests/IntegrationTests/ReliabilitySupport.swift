import Foundation
import TestSupport
import XCTest

/// Helpers for the fault, resource-exhaustion and concurrency tests (Spec/reliability.md).
extension ContainerTestCase {
    /// The environment `sl()` gives swiftlet (this test's tag), plus `extra`.
    func taggedEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        let kv = tag.split(separator: "=", maxSplits: 1)
        env[String(kv[0])] = String(kv[1])
        env.merge(extra) { $1 }
        return env
    }

    /// Starts `swiftlet --root ROOT ARGS` without waiting (stdio on /dev/null, own process group,
    /// signals unblocked and default); returns its pid for the caller to wait on.
    func spawnSwiftlet(_ args: [String], environment: [String: String]) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in Int32(0)...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        var all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv: [UnsafeMutablePointer<CChar>?] =
            ([Runtime.binary, "--root", root.path] + args).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        guard posix_spawn(&pid, Runtime.binary, &actions, &attr, argv, envp) == 0 else { return nil }
        return pid
    }

    /// The container's cgroup directories (default cgroupsPath /swiftlet/ID) that exist in any hierarchy.
    func cgroupsLeft(_ id: String) -> [String] {
        let base = "/sys/fs/cgroup"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        let candidates = names.map { "\(base)/\($0)/swiftlet/\(id)" } + ["\(base)/swiftlet/\(id)"]
        return candidates.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// The status `swiftlet list --format json` shows for `id` (nil when not listed), failing the
    /// test when list itself fails or prints something that is not JSON.
    func listedStatus(_ id: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        let r = sl(["list", "--format", "json"])
        XCTAssertEqual(r.status, 0, "list: \(r.stderr)", file: file, line: line)
        guard let data = r.stdout.data(using: .utf8),
            let any = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        else {
            XCTFail("list printed no JSON: \(r.stdout.debugDescription)", file: file, line: line)
            return nil
        }
        let entries = any as? [[String: Any]] ?? []
        return entries.first { ($0["id"] as? String) == id }?["status"] as? String
    }

    /// The status `swiftlet state ID` reports (nil when it fails).
    func stateStatus(_ id: String) -> String? {
        let r = sl(["state", id])
        guard r.status == 0, let data = r.stdout.data(using: .utf8),
            let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return obj["status"] as? String
    }
}
