import Foundation
import Glibc
import LinuxSystem
import XCTest

/// `FS.readChunk` and `FS.readAll`, the reads of the shim's ttrpc and stdio loops and of every file
/// the runtime and the monitor read: the bytes come back whole, and the buffer's untouched pages stay
/// untouched (a zero-filled buffer made every page of it private memory on each read).
final class ReadChunkTests: XCTestCase {
    func pipeWith(_ bytes: [UInt8]) throws -> Int32 {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        XCTAssertEqual(bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }, bytes.count)
        close(fds[1])
        return fds[0]
    }

    /// Resident pages of the memory behind `bytes`'s first `capacity` bytes (mincore).
    func residentPages(_ bytes: [UInt8], capacity: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return bytes.withUnsafeBytes { raw -> Int in
            let start = Int(bitPattern: raw.baseAddress) & ~(page - 1)
            let end = (Int(bitPattern: raw.baseAddress) + capacity + page - 1) & ~(page - 1)
            var vec = [UInt8](repeating: 0, count: (end - start) / page)
            guard let base = UnsafeMutableRawPointer(bitPattern: start), mincore(base, end - start, &vec) == 0 else {
                return -1
            }
            return vec.filter { $0 & 1 != 0 }.count
        }
    }

    /// 100 bytes read into a 64 MiB buffer (above glibc's largest mmap threshold: fresh pages) touch
    /// one or two of its 16384 pages.
    func testReadTouchesOnlyThePagesItFills() throws {
        let fd = try pipeWith(Array(repeating: 7, count: 100))
        defer { close(fd) }
        let (bytes, n) = FS.readChunk(fd, max: 64 << 20)
        XCTAssertEqual(n, 100)
        XCTAssertEqual(bytes, Array(repeating: 7, count: 100))
        let resident = residentPages(bytes, capacity: 64 << 20)
        XCTAssertGreaterThan(resident, 0)
        XCTAssertLessThanOrEqual(resident, 2, "pages of the buffer made resident by a 100-byte read")
    }

    func testEndOfFileAndErrno() throws {
        let fd = try pipeWith([])
        let (empty, n) = FS.readChunk(fd, max: 4096)
        XCTAssertEqual(n, 0)
        XCTAssertEqual(empty, [])
        close(fd)
        let (none, bad) = FS.readChunk(fd, max: 4096)
        XCTAssertEqual(bad, -1)
        XCTAssertEqual(errno, EBADF)
        XCTAssertEqual(none, [])
        XCTAssertThrowsError(try FS.readAll(fd: fd, path: "closed")) { error in
            XCTAssertEqual((error as? SysError)?.errno, EBADF)
            XCTAssertEqual((error as? SysError)?.path, "closed")
        }
    }

    /// A file larger than one chunk comes back whole and in order.
    func testReadAllJoinsChunks() throws {
        let path = NSTemporaryDirectory() + "readchunk-\(UUID().uuidString)"
        defer { unlink(path) }
        let data = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(data)))
        XCTAssertEqual(try FS.readFile(path), data)
    }
}
