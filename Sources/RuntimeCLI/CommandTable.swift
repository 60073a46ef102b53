// runc 1.1's command line, as data: global options, verbs, their options and argument counts.
// Names, aliases, value types, defaults and argument rules follow runc 1.1 exactly (checked against
// its main.go and per-verb files); the help wording is our own. See Spec/cli.md.

import Argv
import OCI

public let swiftletApp = AppSpec(
    name: "swiftlet",
    usage: "a runc-compatible OCI container runtime",
    description: """
        swiftlet creates and runs containers from OCI bundles: a directory holding a root
        filesystem and a "config.json" runtime specification. Its commands and options match
        runc's, so container engines can use it in runc's place.
        """,
    version: "\(swiftletVersion)\nspec: \(ociRuntimeSpecVersion)",
    globalOptions: globalOptions,
    commands: [
        checkpointCommand, createCommand, deleteCommand, eventsCommand, execCommand, killCommand,
        listCommand, pauseCommand, psCommand, restoreCommand, resumeCommand, runCommand, specCommand,
        startCommand, stateCommand, updateCommand, featuresCommand,
    ])

private let globalOptions: [OptionSpec] = [
    .bool("debug", usage: "log debug messages"),
    .string("log", usage: "file to write log messages to (stderr when empty)"),
    .string("log-format", usage: "format of log messages: 'text' or 'json'", default: "text"),
    .string("root", usage: "directory holding container state, best on a tmpfs", default: "/run/swiftlet"),
    .string("criu", usage: "criu binary to use for checkpoint and restore", default: "criu"),
    .bool(
        "systemd-cgroup",
        usage: "manage cgroups through systemd; cgroupsPath must then read \"slice:prefix:name\", "
            + "e.g. \"system.slice:swiftlet:1234\""),
    .string("rootless", usage: "tolerate cgroup permission errors: 'true', 'false' or 'auto'", default: "auto"),
]

private let containerIDUsage = "<container-id>"

// Options shared, with the same meaning, by several verbs.
private let bundleOption = OptionSpec.string(
    "bundle", "b", usage: "bundle directory (default: the current directory)")
private let consoleSocketOption = OptionSpec.string(
    "console-socket",
    usage: "AF_UNIX socket to send the pseudoterminal's master file descriptor to")
private let pidFileOption = OptionSpec.string("pid-file", usage: "write the process id to this file")
private let pidfdSocketOption = OptionSpec.string(
    "pidfd-socket", usage: "AF_UNIX socket to send a pidfd of the process (init, or the exec'd process) to")
private let noPivotOption = OptionSpec.bool(
    "no-pivot", usage: "enter the rootfs without pivot_root (needed when it lives on a ramdisk)")
private let noNewKeyringOption = OptionSpec.bool(
    "no-new-keyring", usage: "keep the caller's session keyring instead of creating a new one")
private let preserveFDsOption = OptionSpec.int(
    "preserve-fds", usage: "pass N more file descriptors to the process (after stdio and $LISTEN_FDS)")
private let detachOption = OptionSpec.bool("detach", "d", usage: "return once the process has started")
private let noSubreaperOption = OptionSpec.bool(
    "no-subreaper", usage: "do not become a subreaper for orphaned processes")
private let workPathOption = OptionSpec.string(
    "work-path", usage: "directory for criu's work files and logs")
private let tcpEstablishedOption = OptionSpec.bool("tcp-established", usage: "allow established TCP connections")
private let externalUnixSocketsOption = OptionSpec.bool("ext-unix-sk", usage: "allow external unix sockets")
private let shellJobOption = OptionSpec.bool("shell-job", usage: "allow processes attached to a shell job")
private let lazyPagesOption = OptionSpec.bool("lazy-pages", usage: "transfer memory pages lazily (userfaultfd)")
private let fileLocksOption = OptionSpec.bool("file-locks", usage: "save and restore file locks")
private let manageCgroupsModeOption = OptionSpec.string(
    "manage-cgroups-mode", usage: "how criu handles cgroups: 'soft' (default), 'full' or 'strict'")
private let emptyNamespaceOption = OptionSpec.stringSlice(
    "empty-ns", usage: "namespace to create empty instead of restoring its contents")
private let autoDedupOption = OptionSpec.bool("auto-dedup", usage: "deduplicate memory images automatically")
private let formatOption = OptionSpec.string("format", "f", usage: "output format: table or json", default: "table")

private let checkpointCommand = CommandSpec(
    name: "checkpoint",
    usage: "save a running container's state to disk",
    argsUsage: containerIDUsage,
    description: "Dumps the container's processes and state with criu so that restore can resume them.",
    options: [
        .string("image-path", usage: "directory to write criu's image files to"),
        workPathOption,
        .string("parent-path", usage: "directory of a previous pre-dump's images"),
        .bool("leave-running", usage: "keep the container running after the checkpoint"),
        tcpEstablishedOption,
        externalUnixSocketsOption,
        shellJobOption,
        lazyPagesOption,
        .int("status-fd", usage: "file descriptor criu writes \\0 to once lazy pages can be served", default: -1),
        .string("page-server", usage: "ADDRESS:PORT of a criu page server"),
        fileLocksOption,
        .bool("pre-dump", usage: "dump memory only and leave the container running"),
        manageCgroupsModeOption,
        emptyNamespaceOption,
        autoDedupOption,
    ],
    argCount: .exactly(1))

private let createCommand = CommandSpec(
    name: "create",
    usage: "create a container from a bundle, without starting its process",
    argsUsage: containerIDUsage,
    description: """
        Sets up the container described by the bundle's config.json and leaves its process
        waiting; "start" runs it. The container id must be unique under --root.
        """,
    options: [
        bundleOption, consoleSocketOption, pidFileOption, pidfdSocketOption, noPivotOption, noNewKeyringOption,
        preserveFDsOption,
    ],
    argCount: .exactly(1))

private let deleteCommand = CommandSpec(
    name: "delete",
    usage: "remove a container and the resources it holds",
    argsUsage: containerIDUsage,
    description: "Removes a stopped (or only created) container; with --force, a running one too.",
    options: [.bool("force", "f", usage: "kill the container with SIGKILL first if it is still running")],
    argCount: .exactly(1))

private let eventsCommand = CommandSpec(
    name: "events",
    usage: "print container events and resource usage statistics",
    argsUsage: containerIDUsage,
    description: "Prints OOM notifications and cpu, memory and IO statistics as JSON, every --interval.",
    options: [
        .duration("interval", usage: "time between statistics", default: "5s"),
        .bool("stats", usage: "print the statistics once and exit"),
    ],
    argCount: .exactly(1))

private let execCommand = CommandSpec(
    name: "exec",
    usage: "run a new process inside a container",
    argsUsage: "<container-id> <command> [args...]  |  -p <process.json> <container-id>",
    description: """
        Starts a process in the running container. Options must come before the container id;
        every word after it belongs to the command. The command may be left out only with -p.
        """,
    options: [
        consoleSocketOption,
        .string("cwd", usage: "working directory of the process"),
        .stringSlice("env", "e", usage: "add an environment variable (NAME=value)"),
        .bool("tty", "t", usage: "give the process a pseudoterminal"),
        .string("user", "u", usage: "user to run as: <uid>[:<gid>]"),
        .int64Slice("additional-gids", "g", usage: "add a supplementary group id"),
        .string("process", "p", usage: "process.json describing the process to run"),
        detachOption,
        pidFileOption,
        pidfdSocketOption,
        .string("process-label", usage: "SELinux label for the process"),
        .string("apparmor", usage: "AppArmor profile for the process"),
        .bool("no-new-privs", usage: "set no_new_privs for the process"),
        .stringSlice("cap", "c", usage: "add a capability to the process"),
        preserveFDsOption,
        .stringSlice("cgroup", usage: "run in this existing sub-cgroup: [<controller>:]<cgroup>"),
        .bool("ignore-paused", usage: "allow exec into a paused container"),
    ],
    stopAtFirstPositional: true,
    argCount: .atLeast(1))

private let killCommand = CommandSpec(
    name: "kill",
    usage: "send a signal (SIGTERM by default) to a container's init process",
    argsUsage: "<container-id> [signal]",
    description: "The signal may be given by name (KILL, SIGKILL) or by number (9).",
    options: [.bool("all", "a", usage: "signal every process in the container")],
    argCount: .between(1, 2))

private let listCommand = CommandSpec(
    name: "list",
    usage: "list the containers under --root",
    argsUsage: "",
    description: "Lists every container whose state is kept under the global --root directory.",
    options: [formatOption, .bool("quiet", "q", usage: "print container ids only")],
    argCount: .exactly(0))

private let pauseCommand = CommandSpec(
    name: "pause",
    usage: "freeze every process in a container",
    argsUsage: containerIDUsage,
    description: "Suspends all of the container's processes with the cgroup freezer; resume thaws them.",
    argCount: .exactly(1))

private let psCommand = CommandSpec(
    name: "ps",
    usage: "show the processes running in a container",
    argsUsage: "<container-id> [ps options]",
    description: "Words after the container id are passed to ps(1) (table format only).",
    options: [formatOption],
    stopAtFirstPositional: true,
    argCount: .atLeast(1))

private let restoreCommand = CommandSpec(
    name: "restore",
    usage: "restore a container from a checkpoint",
    argsUsage: containerIDUsage,
    description: "Recreates a container and its processes from images written by checkpoint.",
    options: [
        consoleSocketOption,
        .string("image-path", usage: "directory holding criu's image files"),
        workPathOption,
        tcpEstablishedOption,
        externalUnixSocketsOption,
        shellJobOption,
        fileLocksOption,
        manageCgroupsModeOption,
        .string("bundle", "b", usage: "bundle directory"),
        detachOption,
        pidFileOption,
        noSubreaperOption,
        noPivotOption,
        emptyNamespaceOption,
        autoDedupOption,
        lazyPagesOption,
        .string("lsm-profile", usage: "LSM profile to restore with, as TYPE:NAME"),
        .string("lsm-mount-context", usage: "LSM mount context to restore with"),
    ],
    argCount: .exactly(1))

private let resumeCommand = CommandSpec(
    name: "resume",
    usage: "thaw the processes of a paused container",
    argsUsage: containerIDUsage,
    description: "Resumes every process that pause suspended.",
    argCount: .exactly(1))

private let runCommand = CommandSpec(
    name: "run",
    usage: "create a container from a bundle and run its process",
    argsUsage: containerIDUsage,
    description: """
        Creates the container described by the bundle's config.json and starts its process.
        Without --detach, waits for the process and exits with its status; the container is
        deleted afterwards unless --keep is given.
        """,
    options: [
        bundleOption,
        consoleSocketOption,
        detachOption,
        .bool("keep", usage: "keep the container after its process exits"),
        pidFileOption,
        pidfdSocketOption,
        noSubreaperOption,
        noPivotOption,
        noNewKeyringOption,
        preserveFDsOption,
    ],
    argCount: .exactly(1))

private let specCommand = CommandSpec(
    name: "spec",
    usage: "write a starter config.json",
    argsUsage: "",
    description: """
        Writes a default config.json (running "sh") into the bundle directory, ready to be
        edited. With --rootless, the configuration suits an unprivileged user.
        """,
    options: [
        .string("bundle", "b", usage: "bundle directory to write config.json in"),
        .bool("rootless", usage: "generate a configuration for a rootless container"),
    ],
    argCount: .exactly(0))

private let startCommand = CommandSpec(
    name: "start",
    usage: "run the process of a created container",
    argsUsage: containerIDUsage,
    description: "Lets the process of a container made by create run.",
    argCount: .exactly(1))

private let stateCommand = CommandSpec(
    name: "state",
    usage: "print a container's state as JSON",
    argsUsage: containerIDUsage,
    description: "Prints the OCI state of the container: id, status, pid, bundle and annotations.",
    argCount: .exactly(1))

private let updateCommand = CommandSpec(
    name: "update",
    usage: "change a container's resource limits",
    argsUsage: containerIDUsage,
    description: """
        Changes cgroup limits of a running container. With --resources, the limits come from a
        JSON file (or stdin for '-') shaped like config.json's linux.resources, and the other
        options are ignored.
        """,
    options: [
        .string("resources", "r", usage: "JSON file with the resources to set, or '-' for stdin"),
        .int("blkio-weight", usage: "block IO weight (10 to 1000)"),
        .string("cpu-period", usage: "CFS period in microseconds (0: system default)"),
        .string("cpu-quota", usage: "CFS quota in microseconds per period"),
        .string("cpu-burst", usage: "CFS burst in microseconds: CPU time saved up beyond the quota (0: none)"),
        .string("cpu-idle", usage: "1: the cgroup runs as SCHED_IDLE (cgroup v2), 0: default"),
        .string("cpu-share", usage: "CPU shares (weight relative to other containers)"),
        .string("cpu-rt-period", usage: "realtime period in microseconds (0: system default)"),
        .string("cpu-rt-runtime", usage: "realtime runtime in microseconds per period"),
        .string("cpuset-cpus", usage: "CPUs allowed, e.g. 0-3,6"),
        .string("cpuset-mems", usage: "memory nodes allowed"),
        .string("kernel-memory", usage: "obsolete; ignored with a warning", hidden: true),
        .string("kernel-memory-tcp", usage: "obsolete; ignored with a warning", hidden: true),
        .string("memory", usage: "memory limit in bytes (suffixes k, m, g allowed)"),
        .string("memory-reservation", usage: "memory soft limit in bytes"),
        .string("memory-swap", usage: "memory plus swap limit in bytes; -1 for unlimited swap"),
        .int("pids-limit", usage: "maximum number of processes"),
        .string("l3-cache-schema", usage: "Intel RDT L3 cache allocation schema"),
        .string("mem-bw-schema", usage: "Intel RDT memory bandwidth schema"),
    ],
    argCount: .exactly(1))

private let featuresCommand = CommandSpec(
    name: "features",
    usage: "print the features this runtime supports",
    argsUsage: "",
    description: "Prints the supported features as JSON (the OCI runtime features document).",
    argCount: .exactly(0))
