// Argv: a small command-line parser that behaves like runc 1.1's (urfave/cli v1.22.1 on top of Go's
// `flag` package). Standard library only: no Foundation, so start-up stays cheap.
//
// What it mirrors (see Spec/cli.md):
//   - `-flag`, `--flag`, `-flag=value`, `--flag value`; a bool flag never takes the next word;
//   - global options stop at the verb; verb options are parsed after urfave's argument reordering
//     unless the command sets `stopAtFirstPositional` (runc's `SkipArgReorder`: exec, ps);
//   - `--` ends option parsing; Go's error wording ("flag provided but not defined: -x", ...);
//   - `--help`/`-h`, `--version`/`-v`, the `help`/`h` verb, "No help topic for 'x'" (exit 3).

/// The type of an option's value, as in urfave/cli's flag types.
public enum OptionKind: Sendable, Equatable {
    case bool  // BoolFlag
    case string  // StringFlag
    case int  // IntFlag: Go integer syntax (0x.., 0o.., 0b.., leading 0 = octal)
    case duration  // DurationFlag: Go duration syntax ("5s", "1m30s", "250ms")
    case stringSlice  // StringSliceFlag: repeatable
    case int64Slice  // Int64SliceFlag: repeatable, decimal
}

public struct OptionSpec: Sendable {
    /// All names without dashes; the first is canonical (the key in `ParsedOptions.values`).
    public var names: [String]
    public var kind: OptionKind
    public var usage: String
    /// Value used when the option is absent (also shown in help, like urfave's `Value`).
    public var defaultValue: String?
    /// Placeholder shown in help after each name.
    public var valueName: String
    /// Accepted but not listed in help.
    public var hidden: Bool

    public var name: String { names.first ?? "" }
    public var takesValue: Bool { kind != .bool }
    public var repeatable: Bool { kind == .stringSlice || kind == .int64Slice }

    public init(
        names: [String], kind: OptionKind, usage: String, defaultValue: String? = nil,
        valueName: String = "value", hidden: Bool = false
    ) {
        self.names = names
        self.kind = kind
        self.usage = usage
        self.defaultValue = defaultValue
        self.valueName = valueName
        self.hidden = hidden
    }

    public static func bool(_ names: String..., usage: String, hidden: Bool = false) -> OptionSpec {
        OptionSpec(names: names, kind: .bool, usage: usage, hidden: hidden)
    }

    public static func string(
        _ names: String..., usage: String, default defaultValue: String? = nil, hidden: Bool = false
    ) -> OptionSpec {
        OptionSpec(names: names, kind: .string, usage: usage, defaultValue: defaultValue, hidden: hidden)
    }

    public static func int(_ names: String..., usage: String, default defaultValue: Int = 0) -> OptionSpec {
        OptionSpec(names: names, kind: .int, usage: usage, defaultValue: String(defaultValue))
    }

    public static func duration(_ names: String..., usage: String, default defaultValue: String) -> OptionSpec {
        OptionSpec(names: names, kind: .duration, usage: usage, defaultValue: defaultValue)
    }

    public static func stringSlice(_ names: String..., usage: String) -> OptionSpec {
        OptionSpec(names: names, kind: .stringSlice, usage: usage)
    }

    public static func int64Slice(_ names: String..., usage: String) -> OptionSpec {
        OptionSpec(names: names, kind: .int64Slice, usage: usage)
    }
}

/// How many positional arguments a verb takes. Checked after `--help`, with runc's wording.
public enum ArgCount: Sendable, Equatable {
    case any
    case exactly(Int)
    case atLeast(Int)
    case between(Int, Int)
}

public struct CommandSpec: Sendable {
    public var name: String
    /// One line, shown in the command list and on the NAME line.
    public var usage: String
    /// Shown after the command on the USAGE line, e.g. "<container-id>".
    public var argsUsage: String
    public var description: String
    public var options: [OptionSpec]
    /// No reordering of options after positionals (runc's `SkipArgReorder`): options end at the
    /// first positional and everything after it is positional (exec, ps).
    public var stopAtFirstPositional: Bool
    public var argCount: ArgCount

    public init(
        name: String, usage: String, argsUsage: String = "", description: String = "",
        options: [OptionSpec] = [], stopAtFirstPositional: Bool = false, argCount: ArgCount = .any
    ) {
        self.name = name
        self.usage = usage
        self.argsUsage = argsUsage
        self.description = description
        self.options = options
        self.stopAtFirstPositional = stopAtFirstPositional
        self.argCount = argCount
    }
}

public struct AppSpec: Sendable {
    public var name: String
    /// One line, shown on the NAME line of the app help.
    public var usage: String
    /// Optional longer text for the app help's DESCRIPTION section.
    public var description: String
    /// Printed as "<name> version <version>"; may hold more lines ("0.1.0\nspec: 1.2.0").
    public var version: String
    public var globalOptions: [OptionSpec]
    public var commands: [CommandSpec]

    public init(
        name: String, usage: String, description: String = "", version: String,
        globalOptions: [OptionSpec], commands: [CommandSpec]
    ) {
        self.name = name
        self.usage = usage
        self.description = description
        self.version = version
        self.globalOptions = globalOptions
        self.commands = commands
    }

    public func command(named name: String) -> CommandSpec? {
        commands.first { $0.name == name }
    }
}

/// The options and positionals of one level (global or verb). Lookups use canonical names.
public struct ParsedOptions: Sendable, Equatable {
    /// Values given on the command line, by canonical name. Bools hold "true"/"false"; single-valued
    /// options hold only their last value; repeatable ones every value in order.
    public var values: [String: [String]]
    public var positionals: [String]
    /// Defaults of the options that have one, by canonical name.
    public var defaults: [String: String]

    public init(values: [String: [String]] = [:], positionals: [String] = [], defaults: [String: String] = [:]) {
        self.values = values
        self.positionals = positionals
        self.defaults = defaults
    }

    /// Whether the option was given on the command line (urfave's `IsSet`).
    public func has(_ name: String) -> Bool {
        values[name] != nil
    }

    /// The last value as a Go bool; false when absent or not a bool.
    public func bool(_ name: String) -> Bool {
        guard let value = values[name]?.last else { return false }
        return goParseBool(value) ?? false
    }

    /// The last value given, else the default, else nil (where runc would read "").
    public func string(_ name: String) -> String? {
        values[name]?.last ?? defaults[name]
    }

    /// Every value given, in order (for repeatable options).
    public func strings(_ name: String) -> [String] {
        values[name] ?? []
    }

    /// The value (or default) as a Go `int` (base prefixes allowed); nil when neither exists.
    public func int(_ name: String) throws(ArgvError) -> Int? {
        guard let text = string(name) else { return nil }
        switch parseGoInt(text, base: 0, bitSize: Int.bitWidth) {
        case .success(let value):
            return Int(truncatingIfNeeded: value)
        case .failure(let error):
            throw ArgvError(message: invalidValueMessage(text, flag: name, reason: error.flagReason))
        }
    }

    /// Every value as a decimal int64 (urfave's Int64Slice).
    public func int64s(_ name: String) throws(ArgvError) -> [Int64] {
        var result: [Int64] = []
        for text in strings(name) {
            switch parseGoInt(text, base: 10, bitSize: 64) {
            case .success(let value):
                result.append(value)
            case .failure(let error):
                throw ArgvError(message: invalidValueMessage(text, flag: name, reason: error.description))
            }
        }
        return result
    }

    /// The value (or default) as a Go duration; nil when neither exists.
    public func duration(_ name: String) throws(ArgvError) -> Duration? {
        guard let text = string(name) else { return nil }
        guard let value = goParseDuration(text) else {
            throw ArgvError(message: invalidValueMessage(text, flag: name, reason: "parse error"))
        }
        return value
    }
}

public enum ParseResult: Sendable {
    /// Print the text to stdout and exit 0.
    case help(String)
    /// Print the text to stdout and exit 0.
    case version(String)
    case command(globals: ParsedOptions, command: CommandSpec, options: ParsedOptions)
}

public struct ArgvError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The error itself, for stderr / the log (e.g. "flag provided but not defined: -foo").
    public var message: String
    /// The verb being parsed when the error happened, if any.
    public var commandName: String?
    /// What runc prints to stdout before failing ("Incorrect Usage..." and the help), if anything.
    public var usageText: String?
    /// runc's exit status for this error: 1, or 3 for "No help topic for '...'".
    public var exitCode: Int32
    /// The global options, when they parsed (so the caller can honour --log/--log-format).
    public var globals: ParsedOptions?

    public init(
        message: String, commandName: String? = nil, usageText: String? = nil, exitCode: Int32 = 1,
        globals: ParsedOptions? = nil
    ) {
        self.message = message
        self.commandName = commandName
        self.usageText = usageText
        self.exitCode = exitCode
        self.globals = globals
    }

    public var description: String { message }
}

/// Parses `argv` (without argv[0]) like runc 1.1. `programName` is used where runc prints os.Args[0]
/// (argument-count errors); it defaults to the app name.
public func parseCommandLine(_ argv: [String], app: AppSpec, programName: String? = nil) throws(ArgvError)
    -> ParseResult
{
    let global = parseFlags(argv, options: app.globalOptions + [helpOption, versionOption])
    // urfave reports a "two forms of the same flag" error ahead of a parse error at the app level.
    if let message = global.conflict {
        throw ArgvError(message: message, usageText: message + "\n" + helpText(app: app))
    }
    if let message = global.failure {
        throw ArgvError(message: message, usageText: "Incorrect Usage. " + message + "\n\n" + helpText(app: app))
    }
    var globals = global.parsed
    if globals.bool(helpOption.name) {
        return .help(helpText(app: app))
    }
    if globals.bool(versionOption.name) {
        return .version(versionText(app: app))
    }
    globals.values[helpOption.name] = nil
    globals.values[versionOption.name] = nil
    let rest = globals.positionals
    globals.positionals = []

    guard let verb = rest.first else {
        return .help(helpText(app: app))
    }
    let arguments = Array(rest.dropFirst())
    if let command = app.command(named: verb) {
        return try parseCommand(
            command, arguments: arguments, app: app, globals: globals, programName: programName ?? app.name)
    }
    if helpCommand.names.contains(verb) {
        return try parseHelpCommand(arguments, app: app, globals: globals)
    }
    throw noHelpTopic(verb, globals: globals)
}

/// What `--version` prints.
public func versionText(app: AppSpec) -> String {
    "\(app.name) version \(app.version)\n"
}

// MARK: - Verbs

let helpOption = OptionSpec.bool("help", "h", usage: "show help")
let versionOption = OptionSpec.bool("version", "v", usage: "print the version")

/// The built-in `help` verb (urfave adds it to every app).
struct BuiltinCommand: Sendable {
    var names: [String]
    var usage: String
    var argsUsage: String
}

let helpCommand = BuiltinCommand(
    names: ["help", "h"], usage: "show the list of commands, or the help of one command", argsUsage: "[command]")

private func parseCommand(
    _ command: CommandSpec, arguments: [String], app: AppSpec, globals: ParsedOptions, programName: String
) throws(ArgvError) -> ParseResult {
    let input = command.stopAtFirstPositional ? arguments : reorderArguments(arguments)
    let result = parseFlags(input, options: command.options + [helpOption])
    if let message = result.failure ?? result.conflict {
        throw ArgvError(
            message: message, commandName: command.name,
            usageText: "Incorrect Usage: " + message + "\n\n" + helpText(command: command, app: app),
            globals: globals)
    }
    var options = result.parsed
    if options.bool(helpOption.name) {
        return .help(helpText(command: command, app: app))
    }
    options.values[helpOption.name] = nil
    if let message = argumentCountError(command, count: options.positionals.count, programName: programName) {
        throw ArgvError(
            message: message, commandName: command.name,
            usageText: "Incorrect Usage.\n\n" + helpText(command: command, app: app), globals: globals)
    }
    return .command(globals: globals, command: command, options: options)
}

private func parseHelpCommand(_ arguments: [String], app: AppSpec, globals: ParsedOptions) throws(ArgvError)
    -> ParseResult
{
    let name = helpCommand.names[0]
    let result = parseFlags(reorderArguments(arguments), options: [helpOption])
    if let message = result.failure ?? result.conflict {
        throw ArgvError(
            message: message, commandName: name,
            usageText: "Incorrect Usage: " + message + "\n\n" + helpTextForHelpCommand(app: app), globals: globals)
    }
    if result.parsed.bool(helpOption.name) {
        return .help(helpTextForHelpCommand(app: app))
    }
    guard let topic = result.parsed.positionals.first else {
        return .help(helpText(app: app))
    }
    if let command = app.command(named: topic) {
        return .help(helpText(command: command, app: app))
    }
    if helpCommand.names.contains(topic) {
        return .help(helpTextForHelpCommand(app: app))
    }
    throw noHelpTopic(topic, globals: globals)
}

private func noHelpTopic(_ topic: String, globals: ParsedOptions) -> ArgvError {
    ArgvError(message: "No help topic for '\(topic)'", exitCode: 3, globals: globals)
}

private func argumentCountError(_ command: CommandSpec, count: Int, programName: String) -> String? {
    let prefix = "\(programName): \(goQuote(command.name)) requires"
    switch command.argCount {
    case .any:
        return nil
    case .exactly(let n):
        return count == n ? nil : "\(prefix) exactly \(n) argument(s)"
    case .atLeast(let n):
        return count >= n ? nil : "\(prefix) a minimum of \(n) argument(s)"
    case .between(let low, let high):
        if count < low { return "\(prefix) a minimum of \(low) argument(s)" }
        if count > high { return "\(prefix) a maximum of \(high) argument(s)" }
        return nil
    }
}

func invalidValueMessage(_ value: String, flag: String, reason: String) -> String {
    "invalid value \(goQuote(value)) for flag -\(flag): \(reason)"
}
