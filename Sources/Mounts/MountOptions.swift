import CLinux

/// A mount's options split into mount(2) flags, propagation flags and fs-specific data.
public struct MountOptions: Sendable, Equatable {
    public var flags: UInt = 0  // MS_* flags to set
    public var clearFlags: UInt = 0  // MS_* flags an option explicitly cleared (e.g. "rw", "suid")
    public var propagation: [UInt] = []  // MS_SHARED/SLAVE/PRIVATE/UNBINDABLE, each maybe | MS_REC
    public var data: [String] = []  // unknown options go to the filesystem, as runc does
    /// Recursive attributes (`rro`, `rnosuid`, ...) applied with mount_setattr(AT_RECURSIVE).
    public var recursiveSet: UInt64 = 0
    public var recursiveClear: UInt64 = 0
    public var hasRecursiveAttributes: Bool { recursiveSet != 0 || recursiveClear != 0 }

    /// `tmpcopyup` (runc/crun extension): a tmpfs starts with a copy of the directory it covers.
    public var copyUp = false

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
        "iversion": (false, SL_MS_I_VERSION), "noiversion": (true, SL_MS_I_VERSION),
    ]

    static let propagationTable: [String: UInt] = [
        "private": SL_MS_PRIVATE, "rprivate": SL_MS_PRIVATE | SL_MS_REC,
        "shared": SL_MS_SHARED, "rshared": SL_MS_SHARED | SL_MS_REC,
        "slave": SL_MS_SLAVE, "rslave": SL_MS_SLAVE | SL_MS_REC,
        "unbindable": SL_MS_UNBINDABLE, "runbindable": SL_MS_UNBINDABLE | SL_MS_REC,
    ]

    /// Recursive mount attributes (runc's names): (clear?, attribute, atime mode?).
    static let recursiveTable: [String: (clear: Bool, attr: UInt64, atime: Bool)] = [
        "rro": (false, SL_MOUNT_ATTR_RDONLY, false), "rrw": (true, SL_MOUNT_ATTR_RDONLY, false),
        "rnosuid": (false, SL_MOUNT_ATTR_NOSUID, false), "rsuid": (true, SL_MOUNT_ATTR_NOSUID, false),
        "rnodev": (false, SL_MOUNT_ATTR_NODEV, false), "rdev": (true, SL_MOUNT_ATTR_NODEV, false),
        "rnoexec": (false, SL_MOUNT_ATTR_NOEXEC, false), "rexec": (true, SL_MOUNT_ATTR_NOEXEC, false),
        "rnodiratime": (false, SL_MOUNT_ATTR_NODIRATIME, false), "rdiratime": (true, SL_MOUNT_ATTR_NODIRATIME, false),
        "rnosymfollow": (false, SL_MOUNT_ATTR_NOSYMFOLLOW, false),
        "rsymfollow": (true, SL_MOUNT_ATTR_NOSYMFOLLOW, false),
        "rrelatime": (false, SL_MOUNT_ATTR_RELATIME, true), "rnorelatime": (true, SL_MOUNT_ATTR_RELATIME, true),
        "rnoatime": (false, SL_MOUNT_ATTR_NOATIME, true), "ratime": (true, SL_MOUNT_ATTR_NOATIME, true),
        "rstrictatime": (false, SL_MOUNT_ATTR_STRICTATIME, true),
        "rnostrictatime": (true, SL_MOUNT_ATTR_STRICTATIME, true),
    ]

    /// Id-mapped mount requests: taken out of the options before `parse` (the runtime's mount plan
    /// handles them), but recognised options all the same.
    public static let idmapNames: Set<String> = ["idmap", "ridmap"]

    /// Every option name recognised in config mounts (for `features`, which the runtime-spec asks
    /// to list every recognised option).
    public static var knownNames: [String] {
        (Array(table.keys) + Array(propagationTable.keys) + Array(recursiveTable.keys) + Array(idmapNames)
            + ["tmpcopyup"]).sorted()
    }

    /// Propagation flag for rootfsPropagation / a propagation option; nil if the name is not one.
    public static func propagationFlag(_ name: String) -> UInt? { propagationTable[name] }

    public static func parse(_ options: [String]) -> MountOptions {
        var o = MountOptions()
        for opt in options {
            if let (clear, flag) = table[opt] {
                if clear {
                    o.flags &= ~flag
                    o.clearFlags |= flag
                } else {
                    o.flags |= flag
                }
            } else if let p = propagationTable[opt] {
                o.propagation.append(p)
            } else if opt == "tmpcopyup" {
                o.copyUp = true
            } else if let r = recursiveTable[opt] {
                if r.atime {
                    // The atime modes are one value, not bits: the whole field is cleared and the mode
                    // set (the clearing options fall back to relatime, as runc 1.3 does).
                    o.recursiveClear |= SL_MOUNT_ATTR__ATIME
                    o.recursiveSet =
                        (o.recursiveSet & ~SL_MOUNT_ATTR__ATIME) | (r.clear ? SL_MOUNT_ATTR_RELATIME : r.attr)
                } else if r.clear {
                    o.recursiveClear |= r.attr
                    o.recursiveSet &= ~r.attr
                } else {
                    o.recursiveSet |= r.attr
                }
            } else {
                o.data.append(opt)
            }
        }
        return o
    }
}
