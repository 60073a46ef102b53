// conmon's command line (GLib option syntax): `--opt value`, `--opt=value`, `-o value`, `-ovalue`.
// Unknown options are an error; stray positional words are ignored (podman passes `--api-version 1`,
// where `--api-version` is a boolean and `1` is a stray word). Spec/monitor.md lists every flag.

public struct MonitorOptions: Sendable {
    public var apiVersion = false
    public var cid: String?
    public var cuuid: String?
    public var name: String?
    public var runtime: String?
    public var runtimeArgs: [String] = []
    public var runtimeOpts: [String] = []
    public var bundle: String?
    public var containerPidFile: String?
    public var conmonPidFile: String?
    public var exitDir: String?
    public var persistDir: String?
    public var exitCommand: String?
    public var exitCommandArgs: [String] = []
    public var exitDelay = 0
    public var logPaths: [String] = []
    public var logSizeMax: Int64 = -1
    public var logGlobalSizeMax: Int64 = -1
    public var logTag: String?
    public var logLevel: String?
    public var socketDirPath: String?
    public var fullAttach = false
    public var terminal = false
    public var stdin = false
    public var leaveStdinOpen = false
    public var noPivot = false
    public var noNewKeyring = false
    public var replaceListenPid = false
    public var sync = false
    public var syslog = false
    public var exec = false
    public var execAttach = false
    public var execProcessSpec: String?
    public var restore: String?
    public var timeout = 0
    /// Control-socket connections that send nothing for this long are closed (swiftlet's own option).
    public var controlIdleTimeout = 30
    public var systemdCgroup = false
    public var sdnotifySocket: String?
    public var version = false
    public var help = false
    public init() {}
}

private enum Kind { case flag, value }

/// (long name, short name, takes a value).
private let table: [(String, Character?, Kind)] = [
    ("api-version", nil, .flag), ("cid", "c", .value), ("cuuid", "u", .value), ("name", "n", .value),
    ("runtime", "r", .value), ("runtime-arg", nil, .value), ("runtime-opt", nil, .value),
    ("restore-arg", nil, .value), ("bundle", "b", .value), ("container-pidfile", "p", .value),
    ("pidfile", nil, .value), ("conmon-pidfile", "P", .value), ("exit-dir", nil, .value),
    ("persist-dir", "0", .value), ("exit-command", nil, .value), ("exit-command-arg", nil, .value),
    ("exit-delay", nil, .value), ("log-path", "l", .value), ("log-size-max", nil, .value),
    ("log-global-size-max", nil, .value), ("log-tag", nil, .value), ("log-level", nil, .value),
    ("socket-dir-path", nil, .value), ("full-attach", nil, .flag), ("terminal", "t", .flag),
    ("stdin", "i", .flag), ("leave-stdin-open", nil, .flag), ("no-pivot", nil, .flag),
    ("no-new-keyring", nil, .flag), ("replace-listen-pid", nil, .flag), ("sync", nil, .flag),
    ("no-sync-log", nil, .flag), ("syslog", nil, .flag), ("exec", "e", .flag), ("exec-attach", nil, .flag),
    ("exec-process-spec", nil, .value), ("restore", nil, .value), ("timeout", "T", .value),
    ("control-idle-timeout", nil, .value),
    ("systemd-cgroup", "s", .flag), ("sdnotify-socket", nil, .value),
    ("seccomp-notify-socket", nil, .value), ("seccomp-notify-plugins", nil, .value),
    ("version", nil, .flag), ("help", "h", .flag),
]

public func parseMonitorOptions(_ args: [String]) throws(MonitorFailure) -> MonitorOptions {
    var o = MonitorOptions()
    var i = 0
    while i < args.count {
        let arg = args[i]
        i += 1
        var name: String
        var inline: String?
        if arg.hasPrefix("--") && arg.count > 2 {
            let body = arg.dropFirst(2)
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                inline = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
            }
        } else if arg.hasPrefix("-") && arg.count > 1 && arg != "--" {
            let letter = arg[arg.index(after: arg.startIndex)]
            guard let entry = table.first(where: { $0.1 == letter }) else {
                throw MonitorFailure("Unknown option \(arg)")
            }
            name = entry.0
            let rest = arg.dropFirst(2)
            if !rest.isEmpty {
                guard entry.2 == .value else { throw MonitorFailure("Unknown option \(arg)") }
                inline = String(rest)
            }
        } else {
            continue  // stray positional word: ignored, as GLib leaves it
        }
        guard let entry = table.first(where: { $0.0 == name }) else {
            throw MonitorFailure("Unknown option --\(name)")
        }
        var value = ""
        if entry.2 == .value {
            if let inline {
                value = inline
            } else {
                guard i < args.count else { throw MonitorFailure("Missing argument for --\(name)") }
                value = args[i]
                i += 1
            }
        } else if inline != nil {
            throw MonitorFailure("Option --\(name) does not take an argument")
        }
        try apply(&o, name, value)
    }
    return o
}

private func integer(_ name: String, _ value: String) throws(MonitorFailure) -> Int64 {
    guard let v = Int64(value) else {
        throw MonitorFailure("Cannot parse integer value “\(value)” for --\(name)")
    }
    return v
}

private func apply(_ o: inout MonitorOptions, _ name: String, _ v: String) throws(MonitorFailure) {
    switch name {
    case "api-version": o.apiVersion = true
    case "cid": o.cid = v
    case "cuuid": o.cuuid = v
    case "name": o.name = v
    case "runtime": o.runtime = v
    case "runtime-arg": o.runtimeArgs.append(v)
    case "runtime-opt", "restore-arg": o.runtimeOpts.append(v)
    case "bundle": o.bundle = v
    case "container-pidfile", "pidfile": o.containerPidFile = v
    case "conmon-pidfile": o.conmonPidFile = v
    case "exit-dir": o.exitDir = v
    case "persist-dir": o.persistDir = v
    case "exit-command": o.exitCommand = v
    case "exit-command-arg": o.exitCommandArgs.append(v)
    case "exit-delay": o.exitDelay = Int(try integer(name, v))
    case "log-path": o.logPaths.append(v)
    case "log-size-max": o.logSizeMax = try integer(name, v)
    case "log-global-size-max": o.logGlobalSizeMax = try integer(name, v)
    case "log-tag": o.logTag = v
    case "log-level": o.logLevel = v
    case "socket-dir-path": o.socketDirPath = v
    case "full-attach": o.fullAttach = true
    case "terminal": o.terminal = true
    case "stdin": o.stdin = true
    case "leave-stdin-open": o.leaveStdinOpen = true
    case "no-pivot": o.noPivot = true
    case "no-new-keyring": o.noNewKeyring = true
    case "replace-listen-pid": o.replaceListenPid = true
    case "sync": o.sync = true
    case "syslog": o.syslog = true
    case "exec": o.exec = true
    case "exec-attach": o.execAttach = true
    case "exec-process-spec": o.execProcessSpec = v
    case "restore": o.restore = v
    case "timeout": o.timeout = Int(try integer(name, v))
    case "control-idle-timeout": o.controlIdleTimeout = Int(try integer(name, v))
    case "systemd-cgroup": o.systemdCgroup = true
    case "sdnotify-socket": o.sdnotifySocket = v
    case "version": o.version = true
    case "help": o.help = true
    default: break  // accepted for compatibility, no effect (no-sync-log, seccomp-notify-*)
    }
}

/// Checks the combinations conmon checks; the message names the flag.
public func validate(_ o: MonitorOptions) throws(MonitorFailure) {
    guard let cid = o.cid, !cid.isEmpty else { throw MonitorFailure("Container ID not provided. Use --cid") }
    if !o.exec && o.cuuid == nil { throw MonitorFailure("Container UUID not provided. Use --cuuid") }
    guard let runtime = o.runtime, !runtime.isEmpty else {
        throw MonitorFailure("Runtime path not provided. Use --runtime")
    }
    if o.exec && o.execProcessSpec == nil {
        throw MonitorFailure("Exec process spec path not provided. Use --exec-process-spec")
    }
    if o.execAttach && !o.exec { throw MonitorFailure("Attach can only be specified with exec") }
    if o.execAttach && !o.apiVersion {
        throw MonitorFailure("Attach can only be specified for a non-legacy exec session")
    }
    if o.timeout < 0 { throw MonitorFailure("--timeout must not be negative") }
    if !(1...86400).contains(o.controlIdleTimeout) {
        throw MonitorFailure("--control-idle-timeout must be 1 to 86400 seconds")
    }
    if o.restore != nil && o.exec { throw MonitorFailure("--restore cannot be combined with --exec") }
    // As conmon: --log-tag needs journald among the drivers; journald needs an id over 12 characters.
    let journald = o.logPaths.contains { $0 == "journald" || $0.hasPrefix("journald:") }
    for l in o.logPaths where l.hasPrefix("k8s-file:") && o.logTag != nil && !journald {
        throw MonitorFailure("k8s-file doesn't support --log-tag")
    }
    if journald && cid.count <= 12 {
        throw MonitorFailure("Container ID must be longer than 12 characters")
    }
}

public let monitorUsage = """
    Usage:
      swiftlet-monitor [OPTION...] - a per-container monitor with conmon's command line

    Help Options:
      -h, --help                  Show help options

    Application Options:
      --api-version               Conmon API version to use
      -b, --bundle                Location of the OCI Bundle path
      -c, --cid                   Identification of Container
      -P, --conmon-pidfile        PID file for the monitor process
      --control-idle-timeout      Close control-socket connections idle this many seconds (default 30)
      -p, --container-pidfile     PID file for the initial pid inside of container
      -u, --cuuid                 Container UUID
      -e, --exec                  Exec a command into a running container
      --exec-attach               Attach to an exec session
      --exec-process-spec         Path to the process spec for execution
      --exit-command              Path to the program to execute when the container terminates
      --exit-command-arg          Additional arg to pass to the exit command. Can be specified multiple times
      --exit-delay                Delay before invoking the exit command (in seconds)
      --exit-dir                  Path to the directory where exit files are written
      --full-attach               Don't truncate the path to the attach socket
      --leave-stdin-open          Leave stdin open when attached client disconnects
      --log-level                 Print debug logs based on log level
      -l, --log-path              Log file path (k8s-file:PATH, PATH, journald:, passthrough, none)
      --log-size-max              Maximum size of log file
      --log-global-size-max       Maximum size of all log files
      --log-tag                   Additional tag to use for logging
      -n, --name                  Container name
      --no-new-keyring            Do not create a new session keyring for the container
      --no-pivot                  Do not use pivot_root
      --no-sync-log               Do not manually call sync on logs after container shutdown
      -0, --persist-dir           Persistent directory for a container that can be used for storing container data
      --replace-listen-pid        Replace listen pid if set for oci-runtime pid
      --restore                   Restore a container from a checkpoint
      -r, --runtime               Path to store runtime data for the container
      --runtime-arg               Additional arg to pass to the runtime. Can be specified multiple times
      --runtime-opt               Additional opts to pass to the restore or exec command. Can be specified multiple times
      --sdnotify-socket           Path to the host's sd-notify socket to relay messages to
      --socket-dir-path           Location of container attach sockets
      -i, --stdin                 Open up a pipe to pass stdin to the container
      --sync                      Keep the main process running as the container's parent (do not double-fork)
      --syslog                    Log to syslog (use with cgroupfs cgroup manager)
      -s, --systemd-cgroup        Enable systemd cgroup manager, rather then use the cgroupfs directly
      -t, --terminal              Allocate a pseudo-TTY. The default is false
      -T, --timeout               Kill container after specified timeout in seconds.
      --version                   Print the version and exit

    swiftlet-monitor also serves a control socket (<bundle>/monitor.sock) for exec-sync and probes: Spec/monitor.md.
    """
