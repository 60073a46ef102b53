import Glibc

/// One link of Swiftlet's error chain (Spec/errors.md): an error that may wrap the error it was
/// caused by, and may carry the errno of a failed system call. Module errors conform, so a caller
/// finds the errno at the bottom of any chain with `errnoInChain` instead of parsing text.
public protocol ChainedError: Error, CustomStringConvertible {
    /// The error this one wraps, if any.
    var cause: (any Error)? { get }
    /// The errno this error itself carries (not its causes'), if any.
    var ownErrno: Int32? { get }
}

extension ChainedError {
    public var cause: (any Error)? { nil }
    public var ownErrno: Int32? { nil }
}

/// The errno of an error chain: the first errno met walking from `error` down its causes.
public func errnoInChain(_ error: any Error) -> Int32? {
    var next: (any Error)? = error
    while let link = next as? any ChainedError {
        if let e = link.ownErrno, e != 0 { return e }
        next = link.cause
    }
    return nil
}

/// A failed system call: the operation, the path (if any) and errno.
/// Printed as `mount /proc: Operation not permitted` (crun/runc style).
public struct SysError: ChainedError, Sendable {
    public var op: String
    public var path: String?
    public var errno: Int32

    public init(_ op: String, _ path: String? = nil, errno: Int32) {
        self.op = op
        self.path = path
        self.errno = errno
    }

    public var ownErrno: Int32? { errno }

    public var description: String {
        // errno 0 only where a call failed without setting it; a plain message is a RuntimeError.
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
