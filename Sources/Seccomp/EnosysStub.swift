import CSeccomp
import Glibc
import OCI

/// A classic-BPF prefix that makes syscalls newer than every syscall a profile names fail with
/// ENOSYS instead of the profile's default action, per architecture, as runc does: glibc (and
/// others) fall back from clone3, faccessat2, ... only on ENOSYS, so a default of EPERM or a kill
/// for a syscall the profile's author never heard of breaks them. Syscalls up to the newest one the
/// profile names keep the default action; the profile's own rules are untouched (they are all at
/// or below that maximum). Only the profile's `architectures` get a check, as in runc; a process of
/// any other architecture falls through to libseccomp's program (and its bad-arch action).
enum EnosysStub {
    /// seccomp_data offsets and the BPF opcodes the stub uses.
    static let offsetNr: UInt32 = 0, offsetArch: UInt32 = 4
    static let ldAbs: UInt16 = 0x20, ja: UInt16 = 0x05, jeq: UInt16 = 0x15, jgt: UInt16 = 0x25, jset: UInt16 = 0x45
    static let ret: UInt16 = 0x06
    static let retEnosys: UInt32 = 0x0005_0000 | UInt32(ENOSYS)  // SECCOMP_RET_ERRNO | ENOSYS
    /// x32 syscalls are x86_64's arch value with this bit set in the number.
    static let x32Bit: UInt32 = 0x4000_0000
    static let auditArchX86_64: UInt32 = 0xC000_003E

    /// Where a jump goes: relative to the next instruction, or to a label resolved at assembly.
    enum Target: Equatable { case skip(Int), section(Int), enosys, filter }

    struct Insn {
        var code: UInt16
        var k: UInt32 = 0
        var jt: Target = .skip(0)
        var jf: Target = .skip(0)
    }

    /// The newest syscall the profile names, per libseccomp arch token, for its listed architectures.
    struct ArchMax {
        var x86_64: UInt32?
        var x32: UInt32?
        var other: UInt32?
    }

    /// The stub for `profile`, or nil when none is needed: a permissive default (allow, log, trace:
    /// a tracer handles new syscalls itself), a default that already is ENOSYS, or no syscall known
    /// for any listed architecture.
    static func build(_ profile: OCI.Seccomp, archTokens: [UInt32]) -> [UInt8]? {
        switch profile.defaultAction {
        case "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE": return nil
        case "SCMP_ACT_ERRNO" where profile.defaultErrnoRet == UInt32(ENOSYS): return nil
        default: break
        }
        let names = (profile.syscalls ?? []).flatMap(\.names)
        // Grouped by the arch value the kernel reports (x86_64 and x32 share one).
        var byArch: [UInt32: ArchMax] = [:]
        for token in Set(archTokens) {
            let numbers = names.map { seccomp_syscall_resolve_name_arch(token, $0) }.filter { $0 >= 0 }
            guard let newest = numbers.max().map({ UInt32($0) }) else { continue }
            let isX32 = token == SCMP_ARCH_X32
            let native = isX32 ? auditArchX86_64 : token
            var entry = byArch[native] ?? ArchMax()
            if isX32 {
                entry.x32 = newest
            } else if token == auditArchX86_64 {
                entry.x86_64 = newest
            } else {
                entry.other = newest
            }
            byArch[native] = entry
        }
        if byArch.isEmpty { return nil }
        let arches = byArch.keys.sorted()
        var head: [Insn] = [Insn(code: ldAbs, k: offsetArch)]
        for (i, arch) in arches.enumerated() { head.append(Insn(code: jeq, k: arch, jt: .section(i))) }
        head.append(Insn(code: ja, jt: .filter))
        let sections = arches.map { arch in section(arch: arch, byArch[arch] ?? ArchMax()) }
        return assemble(head: head, sections: sections)
    }

    /// Loads the syscall number and jumps to `enosys` when it is above the arch's newest known one.
    static func section(arch: UInt32, _ m: ArchMax) -> [Insn] {
        var s = [Insn(code: ldAbs, k: offsetNr)]
        let above = { (max: UInt32) in Insn(code: jgt, k: max, jt: .enosys, jf: .filter) }
        if arch == auditArchX86_64 {
            switch (m.x86_64, m.x32) {
            case (let x64?, let x32?):
                s += [Insn(code: jset, k: x32Bit, jt: .skip(1)), above(x64), above(x32)]
            case (let x64?, nil):
                s += [Insn(code: jset, k: x32Bit, jt: .filter), above(x64)]
            case (nil, let x32?):
                s += [Insn(code: jset, k: x32Bit, jf: .filter), above(x32)]
            case (nil, nil):
                s.append(Insn(code: ja, jt: .filter))
            }
            return s
        }
        // s390(x): a syscall number the kernel does not know arrives as 0 (the multiplexer).
        if arch == SCMP_ARCH_S390 || arch == SCMP_ARCH_S390X { s.append(Insn(code: jeq, k: 0, jt: .enosys)) }
        s.append(above(m.other ?? UInt32.max))
        return s
    }

    /// Lays out head, sections, `ret ENOSYS` and resolves the labels; the filter starts right after.
    static func assemble(head: [Insn], sections: [[Insn]]) -> [UInt8]? {
        var starts: [Int] = []
        var position = head.count
        for s in sections {
            starts.append(position)
            position += s.count
        }
        let enosysAt = position
        let filterAt = position + 1
        let all = head + sections.flatMap { $0 } + [Insn(code: ret, k: retEnosys)]
        var bytes: [UInt8] = []
        for (index, insn) in all.enumerated() {
            func offset(_ t: Target) -> Int {
                switch t {
                case .skip(let n): return n
                case .section(let i): return starts[i] - index - 1
                case .enosys: return enosysAt - index - 1
                case .filter: return filterAt - index - 1
                }
            }
            var k = insn.k
            var jt = 0
            var jf = 0
            if insn.code == ja {
                k = UInt32(offset(insn.jt))
            } else {
                jt = offset(insn.jt)
                jf = offset(insn.jf)
            }
            guard (0...255).contains(jt), (0...255).contains(jf) else { return nil }
            withUnsafeBytes(of: insn.code) { bytes += $0 }
            bytes += [UInt8(jt), UInt8(jf)]
            withUnsafeBytes(of: k) { bytes += $0 }
        }
        return bytes
    }
}
