import XCTest

@testable import Argv

/// A small app shaped like runc's (a few globals, verbs with aliases, typed and repeatable options).
let testApp = AppSpec(
    name: "tester",
    usage: "a test runtime",
    description: "Longer words about\nthe test runtime.",
    version: "1.0\nspec: 9.9",
    globalOptions: [
        .bool("debug", usage: "debug logging"),
        .string("log", usage: "log file"),
        .string("log-format", usage: "log format", default: "text"),
        .string("root", usage: "state directory", default: "/run/tester"),
    ],
    commands: [
        CommandSpec(
            name: "create", usage: "create a container", argsUsage: "<container-id>",
            description: "Creates one.\nSecond line.",
            options: [
                .string("bundle", "b", usage: "bundle directory"),
                .string("pid-file", usage: "pid file"),
                .bool("no-pivot", usage: "skip pivot_root"),
                .bool("detach", "d", usage: "detach"),
                .int("preserve-fds", usage: "extra fds"),
                .string("secret", usage: "not shown", hidden: true),
            ],
            argCount: .exactly(1)),
        CommandSpec(
            name: "exec", usage: "run a process", argsUsage: "<container-id> <command>",
            options: [
                .stringSlice("env", "e", usage: "environment"),
                .bool("tty", "t", usage: "terminal"),
                .string("user", "u", usage: "user"),
                .int64Slice("additional-gids", "g", usage: "groups"),
                .bool("detach", "d", usage: "detach"),
            ],
            stopAtFirstPositional: true, argCount: .atLeast(1)),
        CommandSpec(
            name: "kill", usage: "signal a container", argsUsage: "<container-id> [signal]",
            options: [.bool("all", "a", usage: "every process")], argCount: .between(1, 2)),
        CommandSpec(
            name: "events", usage: "show events", argsUsage: "<container-id>",
            options: [
                .duration("interval", usage: "interval", default: "5s"),
                .bool("stats", usage: "once"),
            ],
            argCount: .exactly(1)),
        CommandSpec(name: "state", usage: "show state", argsUsage: "<container-id>", argCount: .exactly(1)),
        CommandSpec(
            name: "args", usage: "echo arguments", options: [.string("value", "x", usage: "a value")]),
    ])

struct Invocation {
    var globals: ParsedOptions
    var command: CommandSpec
    var options: ParsedOptions
}

/// Parses and expects a verb to run.
func invoke(
    _ argv: [String], app: AppSpec = testApp, file: StaticString = #filePath, line: UInt = #line
) throws -> Invocation {
    switch try parseCommandLine(argv, app: app) {
    case .command(let globals, let command, let options):
        return Invocation(globals: globals, command: command, options: options)
    case .help:
        XCTFail("got help for \(argv)", file: file, line: line)
    case .version:
        XCTFail("got version for \(argv)", file: file, line: line)
    }
    throw ArgvError(message: "unexpected result")
}

/// Parses and expects an error.
func failure(
    _ argv: [String], app: AppSpec = testApp, programName: String? = nil, file: StaticString = #filePath,
    line: UInt = #line
) -> ArgvError {
    do {
        let result = try parseCommandLine(argv, app: app, programName: programName)
        XCTFail("expected an error for \(argv), got \(result)", file: file, line: line)
    } catch {
        return error
    }
    return ArgvError(message: "")
}

/// Parses and expects help or version text.
func output(
    _ argv: [String], app: AppSpec = testApp, file: StaticString = #filePath, line: UInt = #line
) throws -> String {
    switch try parseCommandLine(argv, app: app) {
    case .help(let text), .version(let text):
        return text
    case .command(_, let command, _):
        XCTFail("got command \(command.name) for \(argv)", file: file, line: line)
        return ""
    }
}
