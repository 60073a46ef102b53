import Foundation
import TestSupport
import XCTest

/// Both shipped binaries are static-PIE (issue 13, item 8): ELF type ET_DYN, so the kernel loads them
/// at a random address (ASLR for their own text and data), and no PT_INTERP, so no ld.so runs at
/// start-up (still fully static). Package.swift links them with `-static-pie` and lld.
final class StaticPIETests: XCTestCase {
    func testBothBinariesAreStaticPIE() throws {
        for path in [Runtime.binary, Runtime.monitor] {
            let elf = try XCTUnwrap(FileManager.default.contents(atPath: path), "cannot read \(path)")
            XCTAssertGreaterThan(elf.count, 64, path)
            XCTAssertEqual(Array(elf.prefix(5)), [0x7f, 0x45, 0x4c, 0x46, 2], "\(path): not a 64-bit ELF file")
            let type = UInt16(elf[16]) | UInt16(elf[17]) << 8
            XCTAssertEqual(type, 3, "\(path): e_type \(type), want ET_DYN (3): `readelf -h` must say DYN")
            // Program headers: PT_INTERP (3) would mean a dynamically linked PIE; PT_DYNAMIC (2) must
            // exist (the relocations a static-PIE applies to itself).
            func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(elf[at + $1]) << (8 * $1) } }
            func u16(_ at: Int) -> Int { Int(elf[at]) | Int(elf[at + 1]) << 8 }
            let phoff = u64(32)
            let phentsize = u16(54)
            let phnum = u16(56)
            let types = (0..<phnum).map { i in
                (0..<4).reduce(0) { $0 | Int(elf[phoff + i * phentsize + $1]) << (8 * $1) }
            }
            XCTAssertFalse(types.contains(3), "\(path): has PT_INTERP, so it is not static")
            XCTAssertTrue(types.contains(2), "\(path): no PT_DYNAMIC")
        }
    }
}
