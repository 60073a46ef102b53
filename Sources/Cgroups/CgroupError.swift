import Glibc
import LinuxSystem

/// A cgroup operation that failed. The message names the file and the value or the OCI field, e.g.
/// `write /sys/fs/cgroup/memory/x/memory.limit_in_bytes: "10": Device or resource busy` or
/// `linux.resources.memory.swap: must be at least memory.limit (swap 10, limit 20)`.
public struct CgroupError: ChainedError, Sendable, Equatable {
    public var message: String
    /// The errno of the failed system call, 0 for invalid values and other logical errors.
    public var errno: Int32

    public init(_ message: String, errno: Int32 = 0) {
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
    public var ownErrno: Int32? { errno }

    /// `write PATH: "VALUE": reason`.
    static func write(_ path: String, _ value: String, errno: Int32) -> CgroupError {
        CgroupError("write \(path): \(quoted(value)): \(errnoString(errno))", errno: errno)
    }

    /// `OP PATH: reason` (read, mkdir, rmdir, opendir...).
    static func sys(_ error: SysError) -> CgroupError {
        CgroupError(error.description, errno: error.errno)
    }

    /// An invalid or unsupported value of an OCI field: `linux.resources.FIELD: what`.
    static func field(_ field: String, _ what: String) -> CgroupError {
        CgroupError("linux.resources.\(field): \(what)")
    }

    /// A cgroup file whose content could not be parsed.
    static func parse(_ path: String, _ content: String) -> CgroupError {
        CgroupError("parse \(path): unexpected content \(quoted(content))", errno: EINVAL)
    }
}

/// A value as it appears in messages: in double quotes, newlines escaped.
func quoted(_ s: String) -> String {
    var out = "\""
    for c in s {
        switch c {
        case "\n": out += "\\n"
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default: out.append(c)
        }
    }
    return out + "\""
}
