import Glibc
import LinuxSystem

/// Resolves `unsafePath` inside `root` the way the kernel would if `root` were "/": symlinks
/// (absolute or relative) and ".." never leave root. Missing components are kept as written.
/// Returns a host path under root. Races with a concurrently changing rootfs are handled by
/// the caller re-checking (issue 7 tracks an openat2-based version).
public func secureJoin(root: String, _ unsafePath: String) throws(SysError) -> String {
    var remaining = unsafePath.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    var resolved: [String] = []
    var links = 0
    while !remaining.isEmpty {
        let part = remaining.removeFirst()
        if part == "." { continue }
        if part == ".." {
            if !resolved.isEmpty { resolved.removeLast() }
            continue
        }
        let candidate = root + "/" + (resolved + [part]).joined(separator: "/")
        guard let st = FS.lstatOf(candidate), FS.isSymlink(st) else {
            resolved.append(part)
            continue
        }
        links += 1
        if links > 255 { throw SysError("securejoin", unsafePath, errno: ELOOP) }
        let target = try FS.readlink(candidate)
        if target.hasPrefix("/") { resolved = [] }
        remaining = target.split(separator: "/", omittingEmptySubsequences: true).map(String.init) + remaining
    }
    let r = root.hasSuffix("/") ? String(root.dropLast()) : root
    return r + "/" + resolved.joined(separator: "/")
}
