import Glibc

/// A failed system call: the operation, the path (if any) and errno.
/// Printed as `mount /proc: Operation not permitted` (crun/runc style).
public struct SysError: Error, CustomStringConvertible, Sendable {
    public var op: String
    public var path: String?
    public var errno: Int32

    public init(_ op: String, _ path: String? = nil, errno: Int32) {
        self.op = op; self.path = path; self.errno = errno
    }

    public var description: String {
        if errno == 0 { return path.map { "\(op) \($0)" } ?? op }
        let reason = errnoString(errno)
        if let path { return "\(op) \(path): \(reason)" }
        return "\(op): \(reason)"
    }
}

public func errnoString(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return String(cString: s)
}

/// Runs a syscall wrapper, retrying on EINTR; a negative result becomes a SysError.
@discardableResult
@inline(__always)
public func sys<T: BinaryInteger>(_ op: String, _ path: String? = nil, _ call: () -> T) throws(SysError) -> T {
    while true {
        let r = call()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SysError(op, path, errno: e)
    }
}
