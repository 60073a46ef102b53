import CLinux

/// A mount's options split into mount(2) flags, propagation flags and fs-specific data.
public struct MountOptions: Sendable, Equatable {
    public var flags: UInt = 0          // MS_* flags to set
    public var clearFlags: UInt = 0     // MS_* flags an option explicitly cleared (e.g. "rw", "suid")
    public var propagation: [UInt] = [] // MS_SHARED/SLAVE/PRIVATE/UNBINDABLE, each maybe | MS_REC
    public var data: [String] = []      // unknown options go to the filesystem, as runc does

    public var isBind: Bool { flags & SL_MS_BIND != 0 }
    public var dataString: String { data.joined(separator: ",") }

    public init() {}

    /// Option name -> (clear?, flag). Mirrors mount(8) and runc's table.
    static let table: [String: (clear: Bool, flag: UInt)] = [
        "defaults": (false, 0), "ro": (false, SL_MS_RDONLY), "rw": (true, SL_MS_RDONLY),
        "suid": (true, SL_MS_NOSUID), "nosuid": (false, SL_MS_NOSUID),
        "dev": (true, SL_MS_NODEV), "nodev": (false, SL_MS_NODEV),
        "exec": (true, SL_MS_NOEXEC), "noexec": (false, SL_MS_NOEXEC),
        "sync": (false, SL_MS_SYNCHRONOUS), "async": (true, SL_MS_SYNCHRONOUS),
        "dirsync": (false, SL_MS_DIRSYNC), "remount": (false, SL_MS_REMOUNT),
        "mand": (false, SL_MS_MANDLOCK), "nomand": (true, SL_MS_MANDLOCK),
        "atime": (true, SL_MS_NOATIME), "noatime": (false, SL_MS_NOATIME),
        "diratime": (true, SL_MS_NODIRATIME), "nodiratime": (false, SL_MS_NODIRATIME),
        "bind": (false, SL_MS_BIND), "rbind": (false, SL_MS_BIND | SL_MS_REC),
        "relatime": (false, SL_MS_RELATIME), "norelatime": (true, SL_MS_RELATIME),
        "strictatime": (false, SL_MS_STRICTATIME), "nostrictatime": (true, SL_MS_STRICTATIME),
        "lazytime": (false, SL_MS_LAZYTIME), "nolazytime": (true, SL_MS_LAZYTIME),
        "symfollow": (true, SL_MS_NOSYMFOLLOW), "nosymfollow": (false, SL_MS_NOSYMFOLLOW),
        "silent": (false, SL_MS_SILENT), "loud": (true, SL_MS_SILENT),
    ]

    static let propagationTable: [String: UInt] = [
        "private": SL_MS_PRIVATE, "rprivate": SL_MS_PRIVATE | SL_MS_REC,
        "shared": SL_MS_SHARED, "rshared": SL_MS_SHARED | SL_MS_REC,
        "slave": SL_MS_SLAVE, "rslave": SL_MS_SLAVE | SL_MS_REC,
        "unbindable": SL_MS_UNBINDABLE, "runbindable": SL_MS_UNBINDABLE | SL_MS_REC,
    ]

    /// Propagation flag for rootfsPropagation / a propagation option; nil if the name is not one.
    public static func propagationFlag(_ name: String) -> UInt? { propagationTable[name] }

    public static func parse(_ options: [String]) -> MountOptions {
        var o = MountOptions()
        for opt in options {
            if let (clear, flag) = table[opt] {
                if clear { o.flags &= ~flag; o.clearFlags |= flag } else { o.flags |= flag }
            } else if let p = propagationTable[opt] {
                o.propagation.append(p)
            } else {
                o.data.append(opt)
            }
        }
        return o
    }
}
