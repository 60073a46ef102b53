import Argv
import Cgroups
import Glibc
import LinuxSystem
import Mounts
import OCI
import RuntimeCore
import Seccomp

/// Global settings every verb sees.
struct Globals {
    var root: String
    var log: Log
    var criu: String
    /// --systemd-cgroup: create puts the container in a transient systemd unit.
    var systemdCgroup = false
    /// --rootless (or its `auto` answer): cgroups this user cannot create are skipped (Rootless.swift).
    var rootlessCgroups = false
}

/// Where errors go: stderr always, and the --log file (text or runc's JSON lines) when given.
struct Log {
    var path: String?
    var json: Bool
    /// --debug: debug lines too (to the --log file, else stderr).
    var debugEnabled = false

    /// Without --log, debug lines go to stderr in logrus' text format, as runc's do.
    func debug(_ message: String) {
        guard debugEnabled else { return }
        if path?.isEmpty ?? true { printErr(String(Log.textLine("debug", message).dropLast())) }
        write("debug", message)
    }

    func error(_ message: String) {
        printErr(message)
        write("error", message)
    }

    func warning(_ message: String) {
        printErr("warning: " + message)
        write("warning", message)
    }

    private func write(_ level: String, _ message: String) {
        guard let path, !path.isEmpty else { return }
        let line =
            json
            ? "{\"level\":\"\(level)\",\"msg\":\(jsonString(message)),\"time\":\"\(Clock.rfc3339Nano())\"}\n"
            : Log.textLine(level, message)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = try? FS.writeAll(fd: fd, Array(line.utf8), path: path)
        close(fd)
    }

    /// One line in logrus' text format: `time="..." level=debug msg="..."`; the message is quoted
    /// unless it is one word of the characters logrus leaves bare.
    static func textLine(_ level: String, _ message: String) -> String {
        let bare =
            !message.isEmpty
            && message.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                    || "-._/@^+".unicodeScalars.contains($0)
            }
        return "time=\"\(Clock.rfc3339Nano())\" level=\(level) msg=\(bare ? message : jsonString(message))\n"
    }
}

/// A JSON string literal (quotes and escapes) for log lines.
func jsonString(_ s: String) -> String { encodeJSON([s]).dropFirst().dropLast().description }

/// Entry point: parses argv, runs the verb, returns the exit status.
public func runSwiftlet(_ argv: [String]) -> Int32 {
    let parsed: ParseResult
    do { parsed = try parseCommandLine(argv, app: swiftletApp, programName: "swiftlet") } catch {
        if let usage = error.usageText, !usage.isEmpty { printOut(usage) }
        let g = error.globals
        Log(path: g?.string("log"), json: g?.string("log-format") == "json").error(error.message)
        return exitStatus(for: error, verb: nil)
    }
    switch parsed {
    case .help(let text):
        printOut(text)
        return 0
    case .version(let text):
        printOut(text)
        return 0
    case .command(let g, let command, let options):
        // As runc: the state root is made absolute once, so a later chdir (hooks, the bundle) cannot move it.
        let xdgRoot = g.has("root") ? nil : rootlessStateRoot()
        let root = FS.cleanPath(FS.absolute(xdgRoot ?? g.string("root") ?? "/run/swiftlet", base: FS.cwd()))
        var globals = Globals(
            root: root,
            log: Log(
                path: g.string("log"), json: g.string("log-format") == "json",
                debugEnabled: g.bool("debug")),
            criu: g.string("criu") ?? "criu", systemdCgroup: g.bool("systemd-cgroup"))
        if let format = g.string("log-format"), format != "text" && format != "json" {
            globals.log.error("invalid log-format: \(format)")
            return 1
        }
        // As runc: 'auto' or a Go boolean.
        let rootless = g.string("rootless") ?? "auto"
        if rootless != "auto" && goParseBool(rootless) == nil {
            globals.log.error("invalid --rootless value \"\(rootless)\": want true, false or auto")
            return 1
        }
        globals.rootlessCgroups = goParseBool(rootless) ?? rootlessAuto(systemdCgroup: globals.systemdCgroup)
        if xdgRoot != nil {
            do throws(RuntimeError) { try prepareXDGStateRoot(root) } catch {
                globals.log.error("\(error)")
                return exitStatus(for: error, verb: command.name)
            }
        }
        do {
            globals.log.debug("\(command.name) \(options.positionals.joined(separator: " ")) (root \(globals.root))")
            let status = try dispatch(command.name, options, globals)
            globals.log.debug("\(command.name): exit status \(status)")
            return status
        } catch {
            if let usage = error as? ArgvError {
                globals.log.error(usage.message)
            } else {
                globals.log.error(failurePrefix(command.name) + "\(error)")
            }
            if let errno = errnoInChain(error) {
                globals.log.debug("\(command.name): errno \(errno) (\(errnoString(errno)))")
            }
            return exitStatus(for: error, verb: command.name)
        }
    }
}

/// What runc puts before a failed verb's error: `create` and `run` name themselves, every `exec`
/// error reads `exec failed: ...` (the container's own failures go on with `unable to start
/// container process: `). Other verbs print the error as it is.
func failurePrefix(_ verb: String) -> String {
    switch verb {
    case "create", "run": return "swiftlet \(verb) failed: "
    case "exec": return "exec failed: "
    default: return ""
    }
}

/// The one place an error becomes an exit status (Spec/errors.md). As runc: 1 for every error of a
/// verb; `exec` fails with 255 whatever went wrong, so that callers can tell its own errors from the
/// exit status of the process; a bad command line gets the argument parser's status (1, or 3 where
/// runc's parser uses 3). `verb` is nil when the command line did not parse.
func exitStatus(for error: any Error, verb: String?) -> Int32 {
    if verb == "exec" { return 255 }
    if let usage = error as? ArgvError { return usage.exitCode }
    return exitStatus(of: (error as? RuntimeError)?.kind ?? .internal)
}

/// Every kind exits 1 (runc has no finer codes); the switch makes a new kind choose its status.
func exitStatus(of kind: RuntimeError.Kind) -> Int32 {
    switch kind {
    case .notFound, .exists, .invalidState, .invalidArgument, .unsupported, .internal: return 1
    }
}

func dispatch(_ verb: String, _ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    switch verb {
    case "create":
        for w in try createContainer(createOptions(o, g, id: o.positionals[0])).warnings { g.log.warning(w) }
        return 0
    case "start":
        try startContainer(root: g.root, id: o.positionals[0])
        return 0
    case "run":
        return try runVerb(o, g)
    case "state":
        printOut(encodeJSON(try containerState(root: g.root, id: o.positionals[0]), pretty: true))
        return 0
    case "kill":
        try killContainer(
            root: g.root, id: o.positionals[0], signal: o.positionals.count > 1 ? o.positionals[1] : "SIGTERM",
            all: o.bool("all"))
        return 0
    case "delete":
        for w in try deleteContainer(root: g.root, id: o.positionals[0], force: o.bool("force")) { g.log.warning(w) }
        return 0
    case "list":
        // As runc: an unknown format fails (but with -q, which prints only ids); `-q` with no
        // container prints nothing, not an empty line.
        let format = o.string("format") ?? "table"
        guard o.bool("quiet") || format == "table" || format == "json" else {
            throw RuntimeError(.invalidArgument, "invalid format option")
        }
        let out = listOutput(listContainers(root: g.root), format: format, quiet: o.bool("quiet"))
        if !out.isEmpty { printOut(out) }
        return 0
    case "exec":
        return try execVerb(o, g)
    case "spec":
        try specVerb(o)
        return 0
    case "features":
        var features = Features.current(
            mountOptions: supportedMountOptions(), seccomp: SeccompFilter.features(),
            appArmor: LSM.appArmorEnabled, seLinux: LSM.seLinuxEnabled,
            cgroupV1: true, cgroupV2: true, rdma: rdmaControllerAvailable(),
            intelRdt: resctrlMounted(), memoryPolicy: MemoryPolicyPlan.supported())
        // The systemd driver only where systemd is PID 1 and answers on D-Bus (systemdUser: the
        // user's instance on $DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus, for rootless runs).
        features.linux?.cgroup?.systemd = systemdCgroupDriverAvailable()
        features.linux?.cgroup?.systemdUser = systemdCgroupDriverAvailable(userBus: true)
        printOut(encodeJSON(features, pretty: true))
        return 0
    case "pause", "resume":
        try pauseContainer(root: g.root, id: o.positionals[0], pause: verb == "pause")
        return 0
    case "ps":
        return try psVerb(o, g)
    case "update":
        return try updateVerb(o, g)
    case "events":
        return try eventsVerb(o, g)
    case "checkpoint":
        return try checkpointVerb(o, g)
    case "restore":
        return try restoreVerb(o, g)
    default:
        throw RuntimeError(.unsupported, "\(verb): not implemented yet in swiftlet")
    }
}

func createOptions(_ o: ParsedOptions, _ g: Globals, id: String) throws -> CreateOptions {
    var c = CreateOptions(root: g.root, id: id, bundle: o.string("bundle") ?? ".")
    c.consoleSocket = o.string("console-socket").flatMap { $0.isEmpty ? nil : $0 }
    c.pidFile = o.string("pid-file").flatMap { $0.isEmpty ? nil : $0 }
    c.pidfdSocket = o.string("pidfd-socket").flatMap { $0.isEmpty ? nil : $0 }
    c.noPivot = o.bool("no-pivot")
    c.noNewKeyring = o.bool("no-new-keyring")
    c.preserveFds = try o.int("preserve-fds") ?? 0
    c.systemdCgroup = g.systemdCgroup
    c.rootlessCgroups = g.rootlessCgroups
    return c
}

/// `run`: create + start; in the foreground wait, forward signals, then delete (unless --keep).
func runVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    let id = o.positionals[0]
    var c = try createOptions(o, g, id: id)
    let detach = o.bool("detach")
    c.foreground = !detach
    c.noSubreaper = o.bool("no-subreaper")
    c.startsAtOnce = true
    let created = try createContainer(c)
    for w in created.warnings { g.log.warning(w) }
    do { try startCreated(created, root: g.root) } catch {
        _ = try? deleteContainer(root: g.root, id: id, force: true)
        throw error
    }
    if detach { return 0 }
    let code = waitForeground(pid: created.state.pid, pty: created.ptyMaster)
    if !o.bool("keep") { for w in try deleteContainer(root: g.root, id: id, force: true) { g.log.warning(w) } }
    return code
}

func execVerb(_ o: ParsedOptions, _ g: Globals) throws -> Int32 {
    guard let id = o.positionals.first else {
        throw RuntimeError(.invalidArgument, "swiftlet: \"exec\" requires a minimum of 1 argument")
    }
    let configured = try containerProcess(root: g.root, id: id)
    var process: OCI.Process
    if let path = o.string("process"), !path.isEmpty {
        let bytes: [UInt8]
        do { bytes = try FS.readFile(path) } catch {
            throw RuntimeError(.invalidArgument, "exec --process", cause: error)
        }
        do {
            // As runc: a process.json without "user" runs as 0:0.
            var json = try JSONValue.parse(bytes)
            if case .object(var fields) = json, fields["user"] == nil {
                fields.members.append((key: "user", value: .object(["uid": .number("0"), "gid": .number("0")])))
                json = .object(fields)
            }
            process = try decodeJSON(OCI.Process.self, from: json)
        } catch {
            throw RuntimeError(.invalidArgument, "exec --process \(path)", cause: error)
        }
    } else {
        guard o.positionals.count > 1 else { throw RuntimeError(.invalidArgument, "process args cannot be empty") }
        var ov = ExecOverrides()
        ov.args = Array(o.positionals.dropFirst())
        ov.env = o.strings("env")
        ov.cwd = o.string("cwd").flatMap { $0.isEmpty ? nil : $0 }
        ov.user = o.string("user").flatMap { $0.isEmpty ? nil : $0 }
        ov.additionalGids = o.strings("additional-gids")
        ov.caps = o.strings("cap")
        ov.tty = o.bool("tty")
        ov.noNewPrivs = o.bool("no-new-privs")
        ov.appArmorProfile = o.string("apparmor").flatMap { $0.isEmpty ? nil : $0 }
        ov.processLabel = o.string("process-label").flatMap { $0.isEmpty ? nil : $0 }
        process = try ov.apply(to: configured ?? OCI.Process())
    }
    var e = ExecOptions(root: g.root, id: id, process: process)
    e.consoleSocket = o.string("console-socket").flatMap { $0.isEmpty ? nil : $0 }
    e.pidFile = o.string("pid-file").flatMap { $0.isEmpty ? nil : $0 }
    e.pidfdSocket = o.string("pidfd-socket").flatMap { $0.isEmpty ? nil : $0 }
    e.detach = o.bool("detach")
    e.preserveFds = try o.int("preserve-fds") ?? 0
    e.ignorePaused = o.bool("ignore-paused")
    e.subCgroups = try parseExecCgroups(o.strings("cgroup"))
    return try execInContainer(e) { g.log.warning($0) }
}

func specVerb(_ o: ParsedOptions) throws {
    let bundle = o.string("bundle").flatMap { $0.isEmpty ? nil : $0 } ?? "."
    let path = bundle + "/config.json"
    if FS.exists(path) { throw RuntimeError(.exists, "File \(path) exists. Remove it first") }
    // runc adds a cgroup namespace only when /sys/fs/cgroup itself is cgroup2 (unified mode).
    let unified = CgroupLayout.detect() == .v2(mountPoint: "/sys/fs/cgroup")
    let spec = Spec.defaultSpec(rootless: o.bool("rootless"), uid: getuid(), gid: getgid(), cgroupNamespace: unified)
    do {
        try FS.writeFileAtomic(path, Array((encodeJSON(spec, pretty: true) + "\n").utf8), mode: 0o666, durable: false)
    } catch {
        throw RuntimeError(.internal, "write \(path)", cause: error)
    }
}

func listOutput(_ states: [State], format: String, quiet: Bool) -> String {
    if quiet { return states.map(\.id).joined(separator: "\n") }
    // runc encodes a nil slice: `null`, not `[]`, when there is no container.
    if format == "json" { return states.isEmpty ? "null" : encodeJSON(states) }
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    let rows =
        [header] + states.map { [$0.id, String($0.pid), $0.status, $0.bundle, $0.created ?? "", $0.owner ?? ""] }
    var widths = [Int](repeating: 12, count: header.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count + 3) } }
    return rows.map { r in
        r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
            .joined()
    }.joined(separator: "\n")
}

/// Mount options `features` reports: the option table, plus `noswap` only where tmpfs has it (6.4+).
func supportedMountOptions() -> [String] {
    MountOptions.knownNames + (Kernel.tmpfsNoswap() ? ["noswap"] : [])
}

/// Whether linux.resources.rdma can be applied here: the kernel has the rdma controller and it is
/// mounted (a v1 hierarchy, or offered by the cgroup2 root on a pure v2 host).
func rdmaControllerAvailable() -> Bool {
    let enabled = ((try? FS.readString("/proc/cgroups")) ?? "").split(separator: "\n").contains { line in
        let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
        return f.count >= 4 && f[0] == "rdma" && f[3] == "1"
    }
    guard enabled else { return false }
    switch CgroupLayout.detect() {
    case .v2(let root):
        let controllers = (try? FS.readString(root + "/cgroup.controllers")) ?? ""
        return controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("rdma")
    case let layout:
        return layout.hierarchies["rdma"] != nil
    }
}
