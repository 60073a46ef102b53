import Foundation
import Glibc
import TestSupport
import XCTest

/// swiftlet keeps compiled seccomp programs in `<root>/:seccomp` (Spec/performance.md): a profile
/// compiled once is not compiled again. These check, with the kernel enforcing the filters, that a
/// program from the cache is the profile's own and that nothing else in that directory is used.
final class SeccompCacheTests: ContainerTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(isSwiftlet, "the compiled-program cache is swiftlet's own")
    }

    var cacheDir: String { root.path + "/:seccomp" }

    /// mkdir fails with `errno`; everything else is allowed.
    func denyMkdir(_ errno: Int) -> (inout [String: Any]) -> Void {
        { spec in
            var linux = spec[dict: "linux"]
            linux["seccomp"] = [
                "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno]],
            ]
            spec["linux"] = linux
        }
    }

    func mkdirResult(_ edit: @escaping (inout [String: Any]) -> Void) throws -> String {
        let r = try run(["sh", "-c", "mkdir /dev/shm/d 2>&1; true"], edit)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout
    }

    func entries() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: cacheDir).sorted()) ?? [] }

    func testSecondRunUsesTheStoredProgram() throws {
        XCTAssertTrue(try mkdirResult(denyMkdir(38)).contains("Function not implemented"))
        let files = entries()
        XCTAssertEqual(files.count, 1, "one entry after the first run")
        let path = cacheDir + "/" + (files.first ?? "")
        let before = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual(before[.posixPermissions] as? Int, 0o600)
        XCTAssertTrue(try mkdirResult(denyMkdir(38)).contains("Function not implemented"))
        let after = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual(after[.systemFileNumber] as? Int, before[.systemFileNumber] as? Int, "not written again")
        // Another profile: another entry, its own effect.
        XCTAssertTrue(try mkdirResult(denyMkdir(13)).contains("Permission denied"))
        XCTAssertEqual(entries().count, 2)
        // Not a container.
        XCTAssertEqual(sl(["list", "-q"]).stdout, "")
    }

    /// The entry of a profile that allows mkdir, put where another profile's entry belongs (what a
    /// hash collision would do): its key differs, so it is not used.
    func testAnotherProfilesProgramIsNeverUsed() throws {
        XCTAssertTrue(try mkdirResult(denyMkdir(38)).contains("Function not implemented"))
        let strict = entries()
        XCTAssertTrue(try mkdirResult(denyMkdir(1)).contains("Operation not permitted"))
        let other = entries().filter { !strict.contains($0) }
        XCTAssertEqual(strict.count, 1)
        XCTAssertEqual(other.count, 1)
        let strictPath = cacheDir + "/" + (strict.first ?? "")
        XCTAssertEqual(rename(cacheDir + "/" + (other.first ?? ""), strictPath), 0)
        XCTAssertTrue(try mkdirResult(denyMkdir(38)).contains("Function not implemented"))
    }

    /// A damaged entry is a miss: the profile is compiled again, applied, and the entry rewritten.
    func testDamagedEntryIsReplaced() throws {
        XCTAssertTrue(try mkdirResult(denyMkdir(38)).contains("Function not implemented"))
        let path = cacheDir + "/" + (entries().first ?? "")
        try Data("swiftlet-seccomp-cache 1\n12\ngarbage".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertTrue(try mkdirResult(denyMkdir(38)).contains("Function not implemented"))
        let text = String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data(), as: UTF8.self)
        XCTAssertTrue(text.contains("\"SCMP_ACT_ERRNO\""), "rewritten: \(text.prefix(200))")
    }
}
