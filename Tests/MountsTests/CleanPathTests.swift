import LinuxSystem
import XCTest

/// FS.cleanPath: lexical clean-up as Go's filepath.Clean on an absolute path (what runc uses).
final class CleanPathTests: XCTestCase {
    func testCleansLikeGo() {
        let cases: [(String, String)] = [
            ("", "/"), ("/", "/"), ("//", "/"), (".", "/"), ("..", "/"), ("/..", "/"), ("/../..", "/"),
            ("a", "/a"), ("/a/", "/a"), ("/a//b", "/a/b"), ("/a/./b/.", "/a/b"), ("/a/b/..", "/a"),
            ("/a/b/../../c", "/c"), ("/a/../../b", "/b"), ("a/b/../c/./d", "/a/c/d"),
            ("/.a/..b/...", "/.a/..b/..."), ("/a/.../..", "/a"), ("/dev/pts/", "/dev/pts"),
            ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
        ]
        for (input, want) in cases { XCTAssertEqual(FS.cleanPath(input), want, "cleanPath(\"\(input)\")") }
    }

    func testBytesNotGraphemes() {
        // "/" followed by a combining mark is one Character but two path bytes: still a separator.
        XCTAssertEqual(FS.cleanPath("/a/\u{301}b/../c"), "/a/c")
        XCTAssertEqual(FS.cleanPath("/é/ü/.."), "/é")
    }
}
