import CLinux
import Glibc
import LinuxSystem
import OCI

/// cgroup v2 device access control: linux.resources.devices compiled into an eBPF program of type
/// BPF_PROG_TYPE_CGROUP_DEVICE and attached to the container's cgroup.
///
/// The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
/// u32 minor; }`, where access_type = (access << 16) | type (type 1 block, 2 char; access 1 mknod,
/// 2 read, 4 write). As with the v1 lists, the last matching rule decides; nothing matching denies.
public struct DeviceFilter: Sendable, Equatable {
    /// One eBPF instruction (struct bpf_insn).
    struct Insn: Sendable, Equatable {
        var code: UInt8, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0
        var bytes: [UInt8] {
            let o = UInt16(bitPattern: off)
            let i = UInt32(bitPattern: imm)
            return [
                code, (src << 4) | (dst & 0x0f), UInt8(o & 0xff), UInt8(o >> 8),
                UInt8(i & 0xff), UInt8((i >> 8) & 0xff), UInt8((i >> 16) & 0xff), UInt8(i >> 24),
            ]
        }
        // LDX|MEM|W
        static func loadWord(_ dst: UInt8, offset: Int16) -> Insn { Insn(code: 0x61, dst: dst, src: 1, off: offset) }
        static func mov(_ dst: UInt8, _ src: UInt8) -> Insn { Insn(code: 0xbf, dst: dst, src: src) }  // ALU64|MOV|X
        static func and(_ dst: UInt8, _ imm: Int32) -> Insn { Insn(code: 0x57, dst: dst, imm: imm) }  // ALU64|AND|K
        static func rsh(_ dst: UInt8, _ imm: Int32) -> Insn { Insn(code: 0x77, dst: dst, imm: imm) }  // ALU64|RSH|K
        static func movImm(_ dst: UInt8, _ imm: Int32) -> Insn { Insn(code: 0xb7, dst: dst, imm: imm) }  // ALU64|MOV|K
        static func jne(_ dst: UInt8, _ imm: Int32, skip: Int16) -> Insn {
            Insn(code: 0x55, dst: dst, off: skip, imm: imm)
        }  // JMP|JNE|K
        static let exit = Insn(code: 0x95)
    }

    let program: [Insn]

    /// Registers: r2 type, r3 access, r4 major, r5 minor; r6 scratch.
    public init(rules: [DeviceCgroup]) throws(CgroupError) {
        var p: [Insn] = [
            .loadWord(2, offset: 0), .mov(3, 2), .and(2, 0xffff), .rsh(3, 16),
            .loadWord(4, offset: 4), .loadWord(5, offset: 8),
        ]
        var decided = false  // a rule matching every device ends the program (the verifier refuses dead code)
        for (i, rule) in rules.enumerated().reversed() where !decided {
            var checks: [(reg: UInt8, value: Int32)] = []
            switch rule.type ?? "a" {
            case "a": break
            case "c": checks.append((2, 2))
            case "b": checks.append((2, 1))
            case let t: throw .field("devices[\(i)].type", "invalid device type \"\(t)\" (a, b or c)")
            }
            if let major = rule.major, major >= 0 { checks.append((4, Int32(truncatingIfNeeded: major))) }
            if let minor = rule.minor, minor >= 0 { checks.append((5, Int32(truncatingIfNeeded: minor))) }
            var mask: Int32 = 0
            for ch in rule.access ?? "rwm" {
                switch ch {
                case "m": mask |= 1
                case "r": mask |= 2
                case "w": mask |= 4
                default:
                    throw .field(
                        "devices[\(i)].access", "invalid access \"\(rule.access ?? "")\" (a combination of r, w, m)")
                }
            }
            // Block: [checks…] [access subset?] r0 = allow; exit. Every failed check jumps past the block.
            var block: [Insn] = []
            let accessInsns = mask == 7 ? 0 : 3
            let total = checks.count + accessInsns + 2
            for (n, c) in checks.enumerated() {
                block.append(.jne(c.reg, c.value, skip: Int16(total - n - 1)))
            }
            if accessInsns > 0 {
                // Requested access must be a subset of the rule's: (access & ~mask) == 0.
                block.append(.mov(6, 3))
                block.append(.and(6, ~mask & 0x7))
                block.append(.jne(6, 0, skip: 2))
            }
            block.append(.movImm(0, rule.allow ? 1 : 0))
            block.append(.exit)
            p += block
            decided = checks.isEmpty && accessInsns == 0
        }
        if !decided { p += [.movImm(0, 0), .exit] }
        program = p
    }

    var bytes: [UInt8] { program.flatMap(\.bytes) }

    /// Loads the program and attaches it to the cgroup directory.
    public func attach(to cgroupDir: String) throws(CgroupError) {
        var log = [CChar](repeating: 0, count: 65536)
        let code = bytes
        let prog = code.withUnsafeBytes {
            sl_bpf_load_device_prog($0.baseAddress, UInt32(program.count), &log, UInt32(log.count))
        }
        if prog < 0 {
            let e = errno
            let verifier = cString(log).split(separator: "\n").suffix(3).joined(separator: " | ")
            throw CgroupError(
                "load the eBPF device program (linux.resources.devices): \(errnoString(e))"
                    + (verifier.isEmpty ? "" : " (verifier: \(verifier))"), errno: e)
        }
        defer { close(prog) }
        let dir = Glibc.open(cgroupDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw CgroupError("open \(cgroupDir): \(errnoString(errno))", errno: errno) }
        defer { close(dir) }
        if sl_bpf_attach_device_prog(prog, dir) != 0 {
            let e = errno
            throw CgroupError("attach the eBPF device program to \(cgroupDir): \(errnoString(e))", errno: e)
        }
    }
}
