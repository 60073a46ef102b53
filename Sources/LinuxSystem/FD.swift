import CLinux
import Glibc

/// A file descriptor this code owns: closed when the value goes away, unless `take()` hands the
/// number on. Non-copyable, so two owners of one descriptor cannot exist and a close cannot happen twice.
public struct OwnedFD: ~Copyable {
    public let raw: Int32

    public init(_ raw: Int32) { self.raw = raw }

    /// Gives up ownership: the caller closes the number (or passes it on).
    public consuming func take() -> Int32 {
        let fd = raw
        discard self
        return fd
    }

    /// Closes now (an explicit end of the lifetime, e.g. a pipe's write end after a fork).
    public consuming func close() {
        _ = self
    }

    deinit { if raw >= 0 { Glibc.close(raw) } }
}

/// Both ends of a close-on-exec pipe.
public struct OwnedPipe: ~Copyable {
    public var read: OwnedFD
    public var write: OwnedFD

    /// Both ends already closed (assign it to close a pipe).
    public static var closed: OwnedPipe { OwnedPipe(read: OwnedFD(-1), write: OwnedFD(-1)) }

    init(read: consuming OwnedFD, write: consuming OwnedFD) {
        self.read = read
        self.write = write
    }

    public init() throws(SysError) {
        var fds: [Int32] = [-1, -1]
        try sys("pipe") { sl_pipe2(&fds, O_CLOEXEC) }
        read = OwnedFD(fds[0])
        write = OwnedFD(fds[1])
    }
}
