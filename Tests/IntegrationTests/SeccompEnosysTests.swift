import CSeccomp
import Foundation
import Glibc
import TestSupport
import XCTest

/// Syscalls newer than every syscall a profile names get ENOSYS, not the profile's default errno
/// (runc's -ENOSYS stub), so that glibc falls back from clone3, faccessat2, ...
extension SeccompIntegrationTests {
    /// A libc-free static x86_64 program: makes syscall 450 (newer than the profile's newest, 449),
    /// 449 (named in the profile with errno E2BIG) and 102 (getuid: older, not named: the default,
    /// EPERM), and prints "450:-38 449:-7 102:-1". Built with -m32 it is an i386 program (same
    /// numbers for 449 and 450 there; getuid32 is 199). Built with -DPAUSE, it pause(2)s forever (an
    /// init that lives under the same filter, for exec).
    static let probeSource = """
        #ifdef __i386__
        enum { GETUID = 199, WRITE = 4, EXIT_GROUP = 252 };
        static long sc(long n, long a, long b, long c) {
            long r;
            __asm__ volatile ("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
            return r;
        }
        #else
        enum { GETUID = 102, WRITE = 1, EXIT_GROUP = 231 };
        static long sc(long n, long a, long b, long c) {
            long r;
            __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
            return r;
        }
        #endif
        static char buf[64];
        static int put(int at, long v) {
            char tmp[24]; int n = 0;
            if (v < 0) { buf[at++] = '-'; v = -v; }
            do { tmp[n++] = '0' + v % 10; v /= 10; } while (v);
            while (n) buf[at++] = tmp[--n];
            return at;
        }
        void _start(void) {
        #ifdef PAUSE
            for (;;) sc(34, 0, 0, 0);
        #endif
            long nrs[3] = {450, 449, GETUID};
            int at = 0;
            for (int i = 0; i < 3; i++) {
                long r = sc(nrs[i], 0, 0, 0);
                at = put(at, nrs[i]); buf[at++] = ':'; at = put(at, r); buf[at++] = i == 2 ? '\\n' : ' ';
            }
            sc(WRITE, 1, (long)buf, at);
            sc(EXIT_GROUP, 0, 0, 0);
            for (;;) {}
        }
        """

    /// Compiles the probes and the pauser into a fresh directory (gcc -static -nostdlib).
    func buildProbe() throws -> String {
        let dir = try makeTempDir(prefix: "swiftlet-enosys.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try Self.probeSource.write(toFile: dir + "/probe.c", atomically: true, encoding: .utf8)
        for (name, defines) in [("probe", []), ("probe32", ["-m32", "-fno-pic"]), ("pause", ["-DPAUSE"])] {
            let cc = runProgram(
                "/usr/bin/gcc",
                defines + [
                    "-static", "-nostdlib", "-O1", "-fno-stack-protector",
                    "-o", dir + "/" + name, dir + "/probe.c",
                ])
            XCTAssertEqual(cc.status, 0, "gcc: \(cc.stderr)")
        }
        return dir
    }

    /// defaultAction ERRNO (EPERM) with an allow-list up to 448: syscall 450, newer than all of it,
    /// fails with ENOSYS; the newest named one keeps its own action; an older unnamed one gets EPERM.
    func testSyscallNewerThanProfileGetsENOSYS() throws {
        let dir = try buildProbe()
        // Every x86_64 syscall below 449 except getuid: whatever a runtime does between loading the
        // filter and execve (Go's runtime for runc) keeps working, and the newest named one is 449.
        let allowed = (0..<449).compactMap { nr -> String? in
            guard nr != 102, let name = seccomp_syscall_resolve_num_arch(seccomp_arch_resolve_name("x86_64"), Int32(nr))
            else { return nil }
            defer { free(name) }
            return String(cString: name)
        }
        for (i, mode) in ["init", "init32", "exec"].enumerated() {
            let b = try bundle { spec in
                ContainerTestCase.args(
                    mode == "exec" ? ["/tmp/pause"] : mode == "init" ? ["/tmp/probe"] : ["/tmp/probe32"])(&spec)
                var linux = spec[dict: "linux"]
                linux["seccomp"] = [
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [
                        ["names": allowed, "action": "SCMP_ACT_ALLOW"],
                        ["names": ["futex_waitv"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7],
                    ],
                ]
                spec["linux"] = linux
                spec["mounts"] =
                    (spec["mounts"] as? [[String: Any]] ?? []) + [
                        ["destination": "/tmp", "type": "bind", "source": dir, "options": ["rbind", "ro"]]
                    ]
            }
            let id = "enosys\(i)"
            if mode != "exec" {
                // i386 (SCMP_ARCH_X86) has its own maximum, checked by the stub as its own arch.
                let r = sl(["run", "--bundle", b, id])
                XCTAssertEqual(r.status, 0, r.stderr)
                XCTAssertEqual(
                    r.stdout, mode == "init" ? "450:-38 449:-7 102:-1\n" : "450:-38 449:-7 199:-1\n", r.stderr)
            } else {
                // Exec'd processes get the same filter (loaded without the precompiled program).
                XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
                let r = sl(["exec", id, "/tmp/probe"])
                XCTAssertEqual(r.status, 0, r.stderr)
                XCTAssertEqual(r.stdout, "450:-38 449:-7 102:-1\n", r.stderr)
                XCTAssertEqual(sl(["delete", "-f", id]).status, 0)
            }
        }
    }
}
