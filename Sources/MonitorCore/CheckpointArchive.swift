import Glibc
import LinuxSystem
import OCI

/// Forensic checkpoint archives (Kubernetes KEP-2008) in the container-archive layout podman and
/// CRI-O write and checkpointctl reads: one tar with
///   checkpoint/       CRIU's images (from `<runtime> checkpoint --leave-running`)
///   config.dump       {"id", "name", "runtime", "createdTime", "checkpointedTime"}
///   spec.dump         the container's config.json
///   rootfs-diff.tar   the container's changes when its root is an overlay mount (its upper dir,
///                     without whiteouts), and deleted.files listing the whiteouts
///   dump.log          CRIU's log
/// The container keeps running: the archive is for analysis, or for a restore elsewhere
/// (`swiftlet-monitor --restore ARCHIVE.tar`).
enum CheckpointArchive {
    struct Request {
        var archive: String
        var tcpEstablished = false
        var fileLocks = false
        var timeoutSeconds = 600

        init(_ p: JSONObject) throws(MonitorFailure) {
            guard let a = try optionalString(p, "archive"), a.hasPrefix("/"), a.hasSuffix(".tar") else {
                throw MonitorFailure("params.archive: an absolute path ending in .tar is required")
            }
            guard FS.lstatOf(a) == nil else { throw MonitorFailure("params.archive: \(a) exists already") }
            guard let dir = FS.statOf(FS.dirname(a)), FS.isDirectory(dir) else {
                throw MonitorFailure("params.archive: directory \(FS.dirname(a)) does not exist")
            }
            archive = a
            tcpEstablished = try bool(p, "tcpEstablished")
            fileLocks = try bool(p, "fileLocks")
            timeoutSeconds = try integer(p, "timeout", default: 600, range: 1...86400)
        }
    }

    static func create(
        _ r: Request, container m: any ControlledContainer, done: @escaping (Result<JSONObject, MonitorFailure>) -> Void
    ) throws(MonitorFailure) {
        guard m.exitCode == nil, m.containerPid > 0, let bundle = m.bundle else {
            throw MonitorFailure("container \(m.cid) is not running")
        }
        // A new private directory (never one that exists already): the archive's content goes to
        // <work>/content, the tar to <work>/archive.tar (0600), renamed to the archive path at the end.
        let work = r.archive + ".work"
        let content = work + "/content"
        guard Glibc.mkdir(work, 0o700) == 0 else {
            throw MonitorFailure("params.archive: mkdir \(work): \(errnoString(errno))")
        }
        guard Glibc.mkdir(content, 0o700) == 0 else {
            let e = errno
            rmdir(work)
            throw MonitorFailure("params.archive: mkdir \(content): \(errnoString(e))")
        }
        let upper = overlayUpperDir(pid: m.containerPid)
        var verb = ["checkpoint", "--image-path", content + "/checkpoint", "--work-path", content, "--leave-running"]
        if r.tcpEstablished { verb.append("--tcp-established") }
        if r.fileLocks { verb.append("--file-locks") }
        let args = m.runtimeArgv(verb + [m.cid])
        func fail(_ message: String) {
            try? FS.removeAll(work)
            done(.failure(MonitorFailure(message)))
        }
        do throws(MonitorFailure) {
            try CapturedCommand.run(args, timeoutSeconds: r.timeoutSeconds, container: m) { res in
                guard res.exitCode == 0 else {
                    fail(
                        "checkpoint failed (exit \(res.exitCode)): "
                            + trimmed(String(decoding: res.stderr.suffix(2048), as: UTF8.self)))
                    return
                }
                do {
                    try FS.writeFileAtomic(
                        content + "/spec.dump", try FS.readFile(bundle + "/config.json"), mode: 0o600)
                    let config: JSONObject = [
                        "id": .string(m.cid), "name": .string(m.displayName),
                        "runtime": .string(String((args.first ?? "").split(separator: "/").last ?? "")),
                        "createdTime": .string(m.startedAt), "checkpointedTime": .string(Clock.rfc3339Nano()),
                    ]
                    try FS.writeFileAtomic(
                        content + "/config.dump", JSONValue.object(config).serializedBytes(pretty: true), mode: 0o600)
                } catch {
                    fail("write archive metadata: \(error)")
                    return
                }
                packRootfsDiff(upper: upper, work: content, container: m) { message in
                    if let message {
                        fail(message)
                        return
                    }
                    packArchive(work: work, archive: r.archive, container: m) { message in
                        try? FS.removeAll(work)
                        if let message {
                            done(.failure(MonitorFailure(message)))
                            return
                        }
                        var size = stat()
                        let bytes = stat(r.archive, &size) == 0 ? Int64(size.st_size) : 0
                        done(
                            .success([
                                "archive": .string(r.archive), "size": .number(String(bytes)),
                                "rootfsDiff": .bool(upper != nil),
                            ]))
                    }
                }
            }
        } catch {
            fail("checkpoint: \(error.message)")
        }
    }

    /// The upper dir of the container's root when it is an overlay mount, from /proc/PID/mountinfo.
    /// Only the root of an overlay counts: a rootfs that is a directory somewhere on an overlay (a
    /// bind of it, as when the host's own root is an overlay) is not described by that upper dir.
    static func overlayUpperDir(pid: pid_t) -> String? {
        // The last mount on "/" is the root the process sees.
        guard let root = MountInfo.read(pid: String(pid)).last(where: { $0.mountPoint == "/" }),
            root.fsType == "overlay", root.root == "/"
        else { return nil }
        return root.superOptions.split(separator: ",").last { $0.hasPrefix("upperdir=") }.map {
            String($0.dropFirst("upperdir=".count))
        }
    }

    private static func packRootfsDiff(
        upper: String?, work: String, container m: any ControlledContainer, done: @escaping (String?) -> Void
    ) {
        guard let upper else {
            done(nil)
            return
        }
        let whiteouts = findWhiteouts(upper, relative: ".")
        let list = JSONValue.array(whiteouts.map { .string(String($0.dropFirst(2))) })
        do { try FS.writeFileAtomic(work + "/deleted.files", list.serializedBytes(), mode: 0o600) } catch {
            done("write deleted.files: \(error)")
            return
        }
        let args =
            ["/bin/tar", "-cf", work + "/rootfs-diff.tar", "-C", upper] + whiteouts.map { "--exclude=" + $0 } + ["."]
        runTar(args, container: m, what: "rootfs-diff.tar", done: done)
    }

    /// Packs <work>/content into <work>/archive.tar, made 0600 before it is renamed to `archive`
    /// (a rename replaces a symlink planted there instead of writing through it).
    private static func packArchive(
        work: String, archive: String, container m: any ControlledContainer, done: @escaping (String?) -> Void
    ) {
        let tar = work + "/archive.tar"
        runTar(["/bin/tar", "-cf", tar, "-C", work + "/content", "."], container: m, what: archive) { message in
            if let message {
                done(message)
                return
            }
            guard chmod(tar, 0o600) == 0, rename(tar, archive) == 0 else {
                done("write \(archive): \(errnoString(errno))")
                return
            }
            done(nil)
        }
    }

    private static func runTar(
        _ args: [String], container m: any ControlledContainer, what: String, done: @escaping (String?) -> Void
    ) {
        do throws(MonitorFailure) {
            try CapturedCommand.run(args, timeoutSeconds: 600, container: m) { r in
                done(
                    r.exitCode == 0
                        ? nil : "tar \(what) failed: " + String(decoding: r.stderr.suffix(1024), as: UTF8.self))
            }
        } catch {
            done("tar \(what): \(error.message)")
        }
    }

    /// overlayfs whiteouts (character devices 0:0) under `dir`, as ./relative paths.
    static func findWhiteouts(_ dir: String, relative: String) -> [String] {
        var out: [String] = []
        for name in (try? FS.listDirectory(dir)) ?? [] {
            let path = dir + "/" + name
            let rel = relative + "/" + name
            guard let st = FS.lstatOf(path) else { continue }
            if st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0 {
                out.append(rel)
            } else if FS.isDirectory(st) {
                out += findWhiteouts(path, relative: rel)
            }
        }
        return out
    }

    // MARK: - Restore

    /// `--restore ARCHIVE.tar`: unpacks the archive into `<bundle>/checkpoint-archive`, takes
    /// spec.dump as config.json when the bundle has none, applies rootfs-diff.tar and deleted.files
    /// to the rootfs, and returns the CRIU image directory to restore from.
    static func unpack(_ archive: String, bundle: String, env: [String]) throws(MonitorFailure) -> String {
        let dir = bundle + "/checkpoint-archive"
        try? FS.removeAll(dir)
        guard Glibc.mkdir(dir, 0o700) == 0 else { throw MonitorFailure("restore: mkdir \(dir): \(errnoString(errno))") }
        do {
            return try unpack(archive, into: dir, bundle: bundle, env: env)
        } catch {
            try? FS.removeAll(dir)
            throw error
        }
    }

    private static func unpack(_ archive: String, into dir: String, bundle: String, env: [String])
        throws(MonitorFailure) -> String
    {
        try runTarSync(["/bin/tar", "-xf", archive, "-C", dir], env: env, what: "unpack \(archive)")
        guard let st = FS.lstatOf(dir + "/checkpoint"), FS.isDirectory(st) else {
            throw MonitorFailure("restore: \(archive) is not a checkpoint archive (no checkpoint/ directory)")
        }
        // What the archive holds is read by us: regular files only, never a symlink out of it.
        for name in ["spec.dump", "rootfs-diff.tar", "deleted.files"] {
            if let st = FS.lstatOf(dir + "/" + name), st.st_mode & S_IFMT != S_IFREG {
                throw MonitorFailure("restore: \(archive): \(name) is not a regular file")
            }
        }
        let config = bundle + "/config.json"
        do {
            if !FS.exists(config) {
                guard FS.exists(dir + "/spec.dump") else {
                    throw MonitorFailure("restore: \(archive) has no spec.dump and \(config) is missing")
                }
                try FS.writeFileAtomic(config, try FS.readFile(dir + "/spec.dump"), mode: 0o600)
            }
        } catch let e as MonitorFailure { throw e } catch { throw MonitorFailure("restore: \(error)") }
        if FS.exists(dir + "/rootfs-diff.tar") {
            let rootfs = try rootfsPath(bundle: bundle)
            // Everything is checked before the rootfs changes (Spec/checkpoint.md).
            let deleted: [String]
            do {
                deleted = try RootfsDiff.deletedFiles(dir + "/deleted.files")
                try RootfsDiff.check(try RootfsDiff.members(dir + "/rootfs-diff.tar"), rootfs: rootfs)
            } catch { throw MonitorFailure("restore: \(archive): \(error.message)") }
            try runTarSync(
                ["/bin/tar", "-xf", dir + "/rootfs-diff.tar", "-C", rootfs], env: env, what: "apply rootfs-diff.tar")
            for rel in deleted { RootfsDiff.remove(rel, rootfs: rootfs) }
        }
        return dir + "/checkpoint"
    }

    private static func rootfsPath(bundle: String) throws(MonitorFailure) -> String {
        guard let bytes = try? FS.readFile(bundle + "/config.json"),
            case .object(let spec)? = try? JSONValue.parse(bytes),
            case .object(let root)? = spec["root"], case .string(let path)? = root["path"]
        else {
            throw MonitorFailure("restore: \(bundle)/config.json has no root.path")
        }
        return path.hasPrefix("/") ? path : bundle + "/" + path
    }

    private static func runTarSync(_ args: [String], env: [String], what: String) throws(MonitorFailure) {
        let err: Pipe
        do { err = try Pipe.make() } catch { throw MonitorFailure("\(what): \(error)") }
        let pid: pid_t
        do { pid = try Spawn.start(SpawnSpec(args: args, env: env, stderr: err.write)) } catch {
            close(err.read)
            close(err.write)
            throw MonitorFailure("\(what): \(error)")
        }
        close(err.write)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = readAvailable(err.read)
        close(err.read)
        guard Proc.exitCode(status) == 0 else { throw MonitorFailure("\(what) failed: \(trimmed(text))") }
    }
}

private func bool(_ p: JSONObject, _ key: String) throws(MonitorFailure) -> Bool {
    guard let v = p[key] else { return false }
    guard case .bool(let b) = v else { throw MonitorFailure("params.\(key): must be true or false") }
    return b
}
