// Checks RuntimeCLI's table against runc 1.1's command line. Compiled only where the test target
// depends on RuntimeCLI and defines ARGV_TABLE_TESTS (the isolated Argv package does; to run it in
// the main package, add "RuntimeCLI" to ArgvTests' dependencies and .define("ARGV_TABLE_TESTS")).
#if ARGV_TABLE_TESTS
    import XCTest
    import Argv
    import RuntimeCLI

    final class CommandTableTests: XCTestCase {
        private func command(_ name: String, file: StaticString = #filePath, line: UInt = #line) -> CommandSpec {
            guard let spec = swiftletApp.command(named: name) else {
                XCTFail("no verb \(name)", file: file, line: line)
                return CommandSpec(name: name, usage: "")
            }
            return spec
        }

        private func names(_ options: [OptionSpec]) -> [String] {
            options.map { $0.names.joined(separator: ",") }
        }

        func testGlobalOptions() {
            let globals = swiftletApp.globalOptions
            XCTAssertEqual(
                names(globals), ["debug", "log", "log-format", "root", "criu", "systemd-cgroup", "rootless"])
            XCTAssertEqual(globals.map(\.kind), [.bool, .string, .string, .string, .string, .bool, .string])
            XCTAssertEqual(globals.map(\.defaultValue), [nil, nil, "text", "/run/swiftlet", "criu", nil, "auto"])
        }

        func testVerbsInRuncOrder() {
            XCTAssertEqual(
                swiftletApp.commands.map(\.name),
                [
                    "checkpoint", "create", "delete", "events", "exec", "kill", "list", "pause", "ps", "restore",
                    "resume",
                    "run", "spec", "start", "state", "update", "features",
                ])
            XCTAssertEqual(swiftletApp.commands.filter(\.stopAtFirstPositional).map(\.name), ["exec", "ps"])
        }

        func testOptionsPerVerb() {
            let expected: [String: [String]] = [
                "checkpoint": [
                    "image-path", "work-path", "parent-path", "leave-running", "tcp-established", "ext-unix-sk",
                    "shell-job", "lazy-pages", "status-fd", "page-server", "file-locks", "pre-dump",
                    "manage-cgroups-mode", "empty-ns", "auto-dedup",
                ],
                "create": [
                    "bundle,b", "console-socket", "pid-file", "pidfd-socket", "no-pivot", "no-new-keyring",
                    "preserve-fds",
                ],
                "delete": ["force,f"],
                "events": ["interval", "stats"],
                "exec": [
                    "console-socket", "cwd", "env,e", "tty,t", "user,u", "additional-gids,g", "process,p", "detach,d",
                    "pid-file", "pidfd-socket", "process-label", "apparmor", "no-new-privs", "cap,c", "preserve-fds",
                    "cgroup",
                    "ignore-paused",
                ],
                "kill": ["all,a"],
                "list": ["format,f", "quiet,q"],
                "pause": [],
                "ps": ["format,f"],
                "restore": [
                    "console-socket", "image-path", "work-path", "tcp-established", "ext-unix-sk", "shell-job",
                    "file-locks", "manage-cgroups-mode", "bundle,b", "detach,d", "pid-file", "no-subreaper",
                    "no-pivot", "empty-ns", "auto-dedup", "lazy-pages", "lsm-profile", "lsm-mount-context",
                ],
                "resume": [],
                "run": [
                    "bundle,b", "console-socket", "detach,d", "keep", "pid-file", "pidfd-socket", "no-subreaper",
                    "no-pivot",
                    "no-new-keyring", "preserve-fds",
                ],
                "spec": ["bundle,b", "rootless"],
                "start": [],
                "state": [],
                "update": [
                    "resources,r", "blkio-weight", "cpu-period", "cpu-quota", "cpu-burst", "cpu-idle", "cpu-share",
                    "cpu-rt-period",
                    "cpu-rt-runtime", "cpuset-cpus", "cpuset-mems", "kernel-memory", "kernel-memory-tcp", "memory",
                    "memory-reservation", "memory-swap", "pids-limit", "l3-cache-schema", "mem-bw-schema",
                ],
                "features": [],
            ]
            XCTAssertEqual(Set(expected.keys), Set(swiftletApp.commands.map(\.name)))
            for (verb, options) in expected {
                XCTAssertEqual(names(command(verb).options), options, verb)
            }
        }

        func testValueTypesAndDefaults() {
            func option(_ verb: String, _ name: String) -> OptionSpec? {
                command(verb).options.first { $0.name == name }
            }
            let kinds: [(String, String, OptionKind, String?)] = [
                ("create", "preserve-fds", .int, "0"), ("run", "preserve-fds", .int, "0"),
                ("exec", "preserve-fds", .int, "0"), ("exec", "env", .stringSlice, nil),
                ("exec", "cap", .stringSlice, nil),
                ("exec", "cgroup", .stringSlice, nil), ("exec", "additional-gids", .int64Slice, nil),
                ("exec", "tty", .bool, nil), ("exec", "user", .string, nil), ("checkpoint", "status-fd", .int, "-1"),
                ("checkpoint", "empty-ns", .stringSlice, nil), ("restore", "empty-ns", .stringSlice, nil),
                ("events", "interval", .duration, "5s"), ("list", "format", .string, "table"),
                ("ps", "format", .string, "table"),
                ("update", "blkio-weight", .int, "0"), ("update", "pids-limit", .int, "0"),
                ("update", "memory", .string, nil),
                ("update", "cpu-period", .string, nil),
            ]
            for (verb, name, kind, defaultValue) in kinds {
                XCTAssertEqual(option(verb, name)?.kind, kind, "\(verb) --\(name)")
                XCTAssertEqual(option(verb, name)?.defaultValue, defaultValue, "\(verb) --\(name)")
            }
            XCTAssertEqual(
                command("update").options.filter(\.hidden).map(\.name), ["kernel-memory", "kernel-memory-tcp"])
        }

        func testArgumentCounts() {
            let counts: [String: ArgCount] = [
                "checkpoint": .exactly(1), "create": .exactly(1), "delete": .exactly(1), "events": .exactly(1),
                "exec": .atLeast(1), "kill": .between(1, 2), "list": .exactly(0), "pause": .exactly(1),
                "ps": .atLeast(1),
                "restore": .exactly(1), "resume": .exactly(1), "run": .exactly(1), "spec": .exactly(0),
                "start": .exactly(1),
                "state": .exactly(1), "update": .exactly(1), "features": .exactly(0),
            ]
            for spec in swiftletApp.commands {
                XCTAssertEqual(spec.argCount, counts[spec.name], spec.name)
            }
        }

        func testEveryVerbHelpListsItsOptions() throws {
            for spec in swiftletApp.commands {
                let text = try output(["help", spec.name], app: swiftletApp)
                XCTAssertEqual(try output([spec.name, "--help"], app: swiftletApp), text)
                XCTAssertTrue(text.hasPrefix("NAME:\n   swiftlet \(spec.name) - \(spec.usage)\n"), spec.name)
                for option in spec.options {
                    for name in option.names {
                        let shown = (name.count == 1 ? "-" : "--") + name
                        let listed = ["   \(shown) ", "   \(shown),", ", \(shown) "].contains { text.contains($0) }
                        XCTAssertEqual(listed, !option.hidden, "\(spec.name) \(shown)")
                    }
                }
            }
        }

        func testAppHelpAndVersion() throws {
            let text = try output(["--help"], app: swiftletApp)
            XCTAssertTrue(text.hasPrefix("NAME:\n   swiftlet - "), text)
            for spec in swiftletApp.commands {
                XCTAssertTrue(text.contains("\n   \(spec.name) "), spec.name)
            }
            for option in swiftletApp.globalOptions {
                XCTAssertTrue(text.contains("   --\(option.name)"), option.name)
            }
            XCTAssertTrue(text.contains(#"(default: "/run/swiftlet")"#))
            XCTAssertEqual(try output(["--version"], app: swiftletApp), "swiftlet version 0.1.0\nspec: 1.3.0\n")
            XCTAssertEqual(try output(["-v"], app: swiftletApp), "swiftlet version 0.1.0\nspec: 1.3.0\n")
        }

        // Command lines as container engines write them.
        func testEngineInvocations() throws {
            let create = try invoke(
                [
                    "--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json",
                    "--systemd-cgroup",
                    "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--console-socket", "/tmp/pty.sock",
                    "ctr1",
                ], app: swiftletApp)
            XCTAssertEqual(create.globals.string("root"), "/run/containerd/runc/k8s.io")
            XCTAssertEqual(create.globals.string("log-format"), "json")
            XCTAssertTrue(create.globals.bool("systemd-cgroup"))
            XCTAssertEqual(create.globals.string("criu"), "criu")
            XCTAssertEqual(create.globals.string("rootless"), "auto")
            XCTAssertEqual(create.options.string("console-socket"), "/tmp/pty.sock")
            XCTAssertEqual(create.options.positionals, ["ctr1"])

            let exec = try invoke(
                [
                    "exec", "--process", "/tmp/p.json", "--detach", "--pid-file", "/tmp/e.pid", "ctr1",
                ], app: swiftletApp)
            XCTAssertEqual(exec.options.string("process"), "/tmp/p.json")
            XCTAssertTrue(exec.options.bool("detach"))

            let shell = try invoke(
                ["exec", "-t", "-e", "TERM=xterm", "-u", "0:0", "--cap", "CAP_SYS_ADMIN", "ctr1", "sh", "-c", "ls -l"],
                app: swiftletApp)
            XCTAssertEqual(shell.options.positionals, ["ctr1", "sh", "-c", "ls -l"])
            XCTAssertEqual(shell.options.strings("cap"), ["CAP_SYS_ADMIN"])

            let update = try invoke(["update", "--resources", "-", "ctr1"], app: swiftletApp)
            XCTAssertEqual(update.options.string("resources"), "-")
            XCTAssertEqual(update.options.positionals, ["ctr1"])

            XCTAssertEqual(
                try invoke(["kill", "--all", "ctr1", "KILL"], app: swiftletApp).options.positionals, ["ctr1", "KILL"])
            XCTAssertTrue(try invoke(["delete", "--force", "ctr1"], app: swiftletApp).options.bool("force"))
            XCTAssertEqual(
                try invoke(["ps", "--format", "json", "ctr1"], app: swiftletApp).options.string("format"), "json")
            XCTAssertEqual(try invoke(["ps", "ctr1", "-ef"], app: swiftletApp).options.positionals, ["ctr1", "-ef"])
            XCTAssertEqual(try invoke(["list", "-q"], app: swiftletApp).options.string("format"), "table")
            XCTAssertEqual(
                try invoke(["run", "-d", "--keep", "-b", "/b", "c"], app: swiftletApp).options.values.count, 3)

            let events = try invoke(["events", "--interval", "10s", "ctr1"], app: swiftletApp)
            XCTAssertEqual(try events.options.duration("interval"), .seconds(10))

            let checkpoint = try invoke(
                [
                    "--criu", "/usr/sbin/criu", "checkpoint", "--image-path", "/i", "--work-path", "/w",
                    "--leave-running",
                    "--status-fd", "3", "--empty-ns", "network", "ctr1",
                ], app: swiftletApp)
            XCTAssertEqual(try checkpoint.options.int("status-fd"), 3)
            XCTAssertEqual(checkpoint.options.strings("empty-ns"), ["network"])
            XCTAssertEqual(try invoke(["checkpoint", "ctr1"], app: swiftletApp).options.int("status-fd"), -1)
            // Engines probe for options by their Go error wording.
            XCTAssertEqual(
                failure(["checkpoint", "--status-fd"], app: swiftletApp).message, "flag needs an argument: -status-fd")
            XCTAssertEqual(
                failure(["restore", "--lsm-profile"], app: swiftletApp).message, "flag needs an argument: -lsm-profile")
        }
    }
#endif
