import Glibc
import LinuxSystem

// Reading and writing cgroup control files. Every error names the file (and the value written).

/// The whole content of a control file.
func readFile(_ path: String) throws(CgroupError) -> String {
    do throws(SysError) {
        return try FS.readString(path)
    } catch {
        throw CgroupError("read \(path): \(errnoString(error.errno))", errno: error.errno)
    }
}

/// The content without surrounding whitespace (`"max\n"` -> `"max"`).
func readTrimmed(_ path: String) throws(CgroupError) -> String {
    trimmed(try readFile(path))
}

/// The content, or nil when the file cannot be read (absent controller, older kernel).
func readIfPresent(_ path: String) -> String? {
    try? FS.readString(path)
}

/// A single number; `max` reads as UInt64.max (as runc does).
func readUInt(_ path: String) throws(CgroupError) -> UInt64 {
    let s = try readTrimmed(path)
    guard let v = parseUInt(s) else { throw CgroupError.parse(path, s) }
    return v
}

func readInt(_ path: String) throws(CgroupError) -> Int64 {
    let s = try readTrimmed(path)
    guard let v = Int64(s) else { throw CgroupError.parse(path, s) }
    return v
}

/// A number, `max` as UInt64.max. Negative values (v1 `-1`) read as UInt64.max too.
func parseUInt<S: StringProtocol>(_ s: S) -> UInt64? {
    if s == "max" || s == "-1" { return UInt64.max }
    return UInt64(s)
}

/// `key value` lines (memory.stat, cpu.stat, pids.events...), in file order; malformed lines are skipped.
func parseFlatKeyed(_ content: String) -> [(key: String, value: UInt64)] {
    var out: [(key: String, value: UInt64)] = []
    for line in content.split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count == 2, let v = parseUInt(parts[1]) else { continue }
        out.append((String(parts[0]), v))
    }
    return out
}

/// One value of a flat keyed file, nil when the file or key is missing.
func keyedValue(_ path: String, _ key: String) -> UInt64? {
    guard let content = readIfPresent(path) else { return nil }
    return parseFlatKeyed(content).first { $0.key == key }?.value
}

/// Writes control files and, for an update, remembers the previous content of each file it touches
/// so that a failed update can be undone (`rollback`, newest first).
final class KnobWriter {
    private let journaling: Bool
    private let observer: (@Sendable (String, String) -> Void)?
    private var saved: [(path: String, value: String)] = []
    private var seen: Set<String> = []

    init(journaling: Bool, observer: (@Sendable (String, String) -> Void)?) {
        self.journaling = journaling
        self.observer = observer
    }

    /// How an update undoes a write.
    enum Restore {
        /// Write back the previous content (single-value files).
        case content
        /// Write back the number of one `KEY N` line of the previous content (memory.oom_control).
        case key(String)
        /// Not restored: rule lists such as devices.allow or io.max, whose content is not a value.
        case none
    }

    /// Writes `value` to the existing file `path` (never creates it: a missing file is ENOENT).
    func write(_ path: String, _ value: String, restore: Restore = .content) throws(CgroupError) {
        if journaling && !seen.contains(path) {
            seen.insert(path)
            if let old = readIfPresent(path) {
                switch restore {
                case .content: saved.append((path, trimmed(old)))
                case .key(let key):
                    if let v = parseFlatKeyed(old).first(where: { $0.key == key })?.value {
                        saved.append((path, String(v)))
                    }
                case .none: break
                }
            }
        }
        observer?(path, value)
        do throws(SysError) {
            try FS.writeFile(path, value, create: false)
        } catch {
            throw CgroupError.write(path, value, errno: error.errno)
        }
    }

    /// Writes back what `write` replaced, newest first. Returns the writes that failed.
    func rollback() -> [CgroupError] {
        var failures: [CgroupError] = []
        for entry in saved.reversed() {
            observer?(entry.path, entry.value)
            do throws(SysError) {
                try FS.writeFile(entry.path, entry.value, create: false)
            } catch {
                failures.append(.write(entry.path, entry.value, errno: error.errno))
            }
        }
        saved = []
        return failures
    }
}
