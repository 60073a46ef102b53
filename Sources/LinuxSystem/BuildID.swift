import CLinux
import Glibc

/// The running executable's identity as the linker stamped it.
public enum Executable {
    /// The GNU build id note of the running executable, in hex; nil when it has none. Read from the
    /// program headers the kernel passed (AT_PHDR), so no file is opened: the sealed copy that
    /// `create` re-executes (CExeSeal) has the same id as the file it was copied from.
    public static let buildID: String? = {
        let phdrAddress = UInt(sl_auxv_phdr())
        let count = Int(sl_auxv_phnum())
        guard phdrAddress != 0, let phdrs = UnsafePointer<Elf64_Phdr>(bitPattern: phdrAddress) else { return nil }
        let headers = UnsafeBufferPointer(start: phdrs, count: count)
        // The load bias: where PT_PHDR is against where the file says it is (0 when not PIE).
        guard let self_ = headers.first(where: { $0.p_type == PT_PHDR }) else { return nil }
        let bias = phdrAddress &- UInt(self_.p_vaddr)
        for note in headers where note.p_type == PT_NOTE {
            guard let start = UnsafeRawPointer(bitPattern: bias &+ UInt(note.p_vaddr)) else { continue }
            if let id = gnuBuildID(UnsafeRawBufferPointer(start: start, count: Int(note.p_memsz))) { return id }
        }
        return nil
    }()

    /// NT_GNU_BUILD_ID (3) with name "GNU" in a PT_NOTE segment: namesz, descsz, type, then the
    /// name and the descriptor, each padded to 4 bytes.
    static func gnuBuildID(_ notes: UnsafeRawBufferPointer) -> String? {
        var offset = 0
        func word(_ at: Int) -> Int { Int(notes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        while offset + 12 <= notes.count {
            let nameSize = word(offset)
            let descSize = word(offset + 4)
            let type = word(offset + 8)
            let name = offset + 12
            let desc = name + ((nameSize + 3) & ~3)
            let next = desc + ((descSize + 3) & ~3)
            guard next <= notes.count else { return nil }
            if type == 3 && nameSize == 4 && Array(notes[name..<name + 3]) == Array("GNU".utf8) {
                return notes[desc..<desc + descSize].map { hexByte($0) }.joined()
            }
            offset = next
        }
        return nil
    }

    private static func hexByte(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(b >> 4)], digits[Int(b & 15)]], as: UTF8.self)
    }
}
